"""The terminal's pages: start, account, catalogue, enrolment; errors in the patron's language."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from flask import Flask, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ..i18n import current_language, moment_text
from ..registry import request_scope
from ..registry.api import crash_response, http_error_response
from ..registry.domain import RegistryError
from ..security import end_visit, idle_limit_seconds
from . import account, alerts, assist, catalogue, enrol, reference, start
from .forms import CONFIRM_FIELD, CONFIRMED, ActionForm
from .messages import UNAVAILABLE, account_locked, message
from .patron import login_manager

_PATRON_BLUEPRINTS = {"start", "account", "catalogue", "enrol"}
_VISIT_ENDPOINTS = {"start.reset", "start.extend"}  # the idle timer keeps working


def init_page_budget(app: Flask) -> None:
    """Every page's registry calls share one budget (PAGE_BUDGET), and a form's writes carry
    its key (see kiosk.registry.request_scope). Opened before any other hook of the request
    may ask the registry (the visit's idle check ends a visit), closed at its very end."""

    @app.before_request
    def open_page_scope() -> None:
        if api_request() or request.endpoint == "static":
            return
        form_key = None
        if request.method == "POST":
            form_key = request_scope.parse_form_key(
                request.form.get(request_scope.FORM_KEY_FIELD))
        stack = ExitStack()
        stack.enter_context(request_scope.page(float(current_app.config["PAGE_BUDGET"]),
                                               form_key))
        g.page_scope = stack

    @app.teardown_request
    def close_page_scope(_error: BaseException | None) -> None:
        stack = g.pop("page_scope", None)
        if stack is not None:
            stack.close()


def form_key() -> str:
    """The key of the form being shown: the one it was sent with when it is shown again (so
    sending it again is the same request), else a new one. One per page: the writes of two
    different buttons still get different Idempotency-Keys (request_scope)."""
    if "form_key" not in g:
        sent = (request_scope.parse_form_key(request.form.get(request_scope.FORM_KEY_FIELD))
                if request.method == "POST" else None)
        g.form_key = str(sent) if sent else request_scope.new_form_key()
    return g.form_key


def form_key_field() -> Markup:
    """The hidden field every patron form carries (no id: a page has several forms)."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        request_scope.FORM_KEY_FIELD, form_key())


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.jinja_env.globals["form_key_field"] = form_key_field
    app.jinja_env.globals["aria_for"] = aria_for
    for bp in (start.bp, account.bp, catalogue.bp, enrol.bp, assist.bp, alerts.bp):
        app.register_blueprint(bp)

    @app.context_processor
    def assisted_context() -> dict:
        """The assisted-mode banner (patron pages only; the staff pages have their own)."""
        if request.blueprint and request.blueprint.startswith("staff"):
            return {}
        return {**assist.banner_context(), "practice": reference.practice()}

    @app.context_processor
    def terminal_context() -> dict:
        cfg = current_app.config
        return {
            "action_form": ActionForm(formdata=None),  # never bound to what was posted
            "idle": {
                "warning": cfg["IDLE_WARNING_SECONDS"],
                "countdown": cfg["IDLE_COUNTDOWN_SECONDS"],
                "limit": idle_limit_seconds(),
            },
            # A librarian's take-over is a visit too: the idle reset must end it.
            "has_visit": current_user.is_authenticated or "assist" in session,
            "text_size": session.get("text_size", "normal"),
        }

    @app.before_request
    def closed_for_maintenance() -> tuple[str, int] | None:
        """Every patron page gives way to the maintenance message while it lasts."""
        if request.blueprint not in _PATRON_BLUEPRINTS or request.endpoint in _VISIT_ENDPOINTS:
            return None
        try:
            found = reference.maintenance()
        except RegistryError:
            return None  # the page itself tells the patron the service cannot be reached
        if found is None:
            return None
        lang = current_language()
        until = moment_text(found.until)
        text = found.messages.get(lang) or found.messages.get("en", "")
        response = render_template("errors/maintenance.html", text=text, until=until)
        return response, 503

    @app.errorhandler(RegistryError)
    def registry_refused(error: RegistryError) -> Response | tuple[str, int]:
        if error.code == "session_invalid":
            end_visit()
            flash(_("Your visit has ended. Please log in again."))
            return redirect(url_for("account.login"))
        if error.code == "account_locked":  # too many wrong passwords typed again: logged out
            end_visit()
            flash(account_locked(error))
            return redirect(url_for("account.login"))
        if error.code in ("staff_session_invalid", "staff_forbidden"):
            g.pop("assistant", None)
            other_institution = (error.code == "staff_forbidden"
                                 and assist.assistant() is not None)
            assist.end()  # nothing is done "assisted": the patron may go on alone
            if other_institution:  # the librarian's session lives: it is this patron
                flash(_("Assisted mode has ended. This account belongs to a library of "
                        "another institution: its librarians or the coordinator can help. "
                        "Nothing was changed. You can go on by yourself."))
            else:
                flash(_("Assisted mode has ended. Nothing was changed: please try again."))
            return redirect(request.path)
        if error.code == "course_not_found":
            return error_page(_("Page not found"), error_text(error), 404)
        if error.code in UNAVAILABLE:
            return error_page(_("The course service cannot be reached right now"),
                              error_text(error), 503, retry=True)
        return error_page(_("This did not work"), error_text(error), 409)

    @app.errorhandler(CSRFError)
    def form_expired(error: CSRFError) -> tuple[str, int]:
        return error_page(
            _("This page has expired"),
            _("For your safety, a page left open too long cannot be sent. Please start over."),
            400,
        )

def http_error(error: HTTPException) -> tuple[str, int] | Response:
    """A 404, a 405…: a patron page in the address's language (kiosk.i18n.current_language),
    JSON under /api/."""
    if api_request():
        return http_error_response(error)
    if error.code == 404:
        return error_page(_("Page not found"),
                          _("We cannot find this page. Let us start over."), 404)
    if error.code == 413:
        return error_page(_("Too much text"),
                          _("What you sent is too long. Please try again."), 413)
    return error_page(_("Something went wrong"),
                      _("Please try again, or ask a librarian for help."), error.code or 400)


def crash(error: Exception) -> tuple[str, int] | Response:
    if api_request():
        return crash_response()
    current_app.logger.exception("unhandled error")
    return error_page(_("Something went wrong"),
                      _("Please try again, or ask a librarian for help."), 500)


def api_request() -> bool:
    """Errors under /api/ are answered in JSON by the API, also where no route matched."""
    return request.path.startswith("/api/") and "api" in current_app.blueprints


def aria_for(field: Any, hint: object = None) -> dict[str, str]:
    """aria-invalid and aria-describedby for a form field, tying it to its hint and error."""
    errors = getattr(field, "errors", [])
    ids = ([f"{field.id}-hint"] if hint else []) + ([f"{field.id}-error"] if errors else [])
    attrs = {"aria-invalid": "true" if errors else "false"}
    if ids:
        attrs["aria-describedby"] = " ".join(ids)
    return attrs


def error_text(error: RegistryError) -> str:
    return message(error.code)


# What a button's form sends (kiosk.terminal.forms.ActionForm, and a confirmation's
# ConfirmForm): such a form can be sent again from the error page as it was, its key (and its
# confirmation) included, so the retry is the same request.
_BUTTON_FIELDS = {"csrf_token", request_scope.FORM_KEY_FIELD, CONFIRM_FIELD}


def error_page(title: str, text: str, status: int, retry: bool = False) -> tuple[str, int]:
    """`retry`: offer "Try again" — the same address, or for a button the same form again."""
    retry_url = retry_form = None
    retry_confirmed = False
    if retry and request.method == "GET":
        retry_url = request.full_path.rstrip("?")
    elif retry and request.method == "POST" and set(request.form) <= _BUTTON_FIELDS:
        # The form is read only here: an oversized one (413) must not be read again.
        retry_form = request.full_path.rstrip("?")
        retry_confirmed = request.form.get(CONFIRM_FIELD) == CONFIRMED
    return render_template("errors/error.html", title=title, text=text, retry_url=retry_url,
                           retry_form=retry_form, retry_confirmed=retry_confirmed), status
