"""What every staff page builds on: the blueprint, who is logged in, permissions, the menu,
and refusals shown in the staff member's language. The pages import this module; the package
(kiosk/staff/__init__.py) imports the pages and mounts them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from ..registry.domain import RegistryError, Standing
from ..registry.roles import Permission, StaffView
from ..registry.services import RegistryService
from ..security import STAFF_PAGES_TOKEN_KEY
from ..terminal.forms import ConfirmForm
from ..terminal.messages import field_message, message
from . import labels

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint("staff", __name__, url_prefix="/<lang:lang>/staff")
TOKEN_KEY = STAFF_PAGES_TOKEN_KEY  # never the take-over's key (kiosk.terminal.assist)


@dataclass(frozen=True)
class NavItem:
    permission: Permission
    endpoint: str
    label: Any  # a lazy string, shown in the staff member's language


NAV: list[NavItem] = []


def nav_item(permission: Permission, endpoint: str, label: Any) -> None:
    """A link in the staff menu, shown to whoever holds `permission`."""
    NAV.append(NavItem(permission, endpoint, label))


def service() -> RegistryService:
    return current_app.extensions["registry_service"]


def current_staff() -> StaffView | None:
    """The staff member logged in in this browser, if any (asked once per request)."""
    if "staff" not in g:
        g.staff = None
        token = session.get(TOKEN_KEY)
        if token:
            try:
                g.staff = service().staff.whois(token)
            except RegistryError as refusal:
                if refusal.code != "staff_session_invalid":
                    raise
                session.pop(TOKEN_KEY, None)
    return g.staff


def place() -> str:
    """Where a staff action comes from, for the audit log: the terminal or desk, and the
    address it called from."""
    where = current_app.config.get("LIBRARY_CODE") or "desk"
    return f"{where} {request.remote_addr or ''}".strip()


def staff_only(view: F) -> F:
    """Any staff member, whatever their role: others are sent to log in."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if current_staff() is None:
            return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, guarded)


def requires(permission: Permission) -> Callable[[F], F]:
    """Staff only, with this permission: others are sent to log in, or refused (403)."""

    def decorate(view: F) -> F:
        setattr(view, "permission", permission)  # noqa: B010 - read by the role matrix

        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            staff = current_staff()
            if staff is None:
                return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
            if not staff.can(permission):
                abort(403)
            return view(*args, **kwargs)

        return cast(F, guarded)

    return decorate


def serving(staff: StaffView, institution_code: str) -> None:
    """Refuse (404, as if it did not exist) a patron or entry outside a librarian's
    institution: they may not even learn that it exists."""
    if not staff.serves(institution_code):
        abort(404)


def staff_error(title: str, text: str, status: int) -> tuple[str, int]:
    return render_template("staff/error.html", title=title, text=text), status


def confirmation(title: str, lines: list[str], back: str, button: str, *, keep: str = "",
                 action: str | None = None) -> str:
    """The second step of an action that cannot be undone (ConfirmForm): what it will do,
    "Cancel" (or `keep`; back to `back`) first and focused, and the button that does it,
    posted to this address or to `action`."""
    return render_template("staff/confirm.html", title=title, lines=lines, back=back,
                           button=button, keep=keep or _("Cancel"), action=action,
                           form=ConfirmForm(formdata=None))


@bp.errorhandler(RegistryError)
def refused(error: RegistryError) -> Response | tuple[str, int]:
    if error.code == "staff_session_invalid":
        session.pop(TOKEN_KEY, None)
        flash(_("Your staff session has ended. Please log in again."))
        return redirect(url_for("staff.login"))
    if error.code == "not_found":
        return staff_error(_("Not found"), _("This no longer exists, or you may not see it."),
                           404)
    status = 503 if error.code in ("busy", "unavailable") else 409
    return staff_error(_("This did not work"), message(error.code, **_params(error)), status)


def _params(error: RegistryError) -> dict[str, object]:
    params: dict[str, object] = {"age": current_app.config["MIN_AGE"]}
    params.update((k, v) for k, v in error.detail.items() if isinstance(v, (str, int)))
    return params


def show_refusal(form: Any, refusal: RegistryError, rename: dict[str, str] | None = None,
                 params: dict[str, object] | None = None) -> None:
    """A registry's "invalid" answer as messages beside the form's fields (and so in the
    error summary), in the page's language; any other refusal, or a field the form does not
    have, goes on to the staff error page. `rename` maps the registry's field names to the
    form's ("library_code" → "library"); `params` fill the messages' placeholders."""
    if refusal.code != "invalid":
        raise refusal
    values = _params(refusal) | (params or {})
    for name, code in refusal.fields.items():
        field = getattr(form, (rename or {}).get(name, name), None)
        if field is None:
            raise refusal
        field.errors = [*field.errors, field_message(name, code, **values)]


@bp.errorhandler(403)
def forbidden(error: Exception) -> tuple[str, int]:
    return staff_error(_("Not allowed"),
                       _("Your staff role does not allow this page. Ask a coordinator if you "
                         "need it."), 403)


@bp.app_context_processor
def staff_context() -> dict:
    if request.blueprint is None or not request.blueprint.startswith("staff"):
        return {}
    staff = current_staff()
    items = [item for item in NAV if staff and staff.can(item.permission)]
    # The codes every staff template may show, through their labels (kiosk.staff.labels).
    return {"staff": staff, "staff_nav": items, "role_names": labels.ROLES,
            "state_names": labels.TERMINAL_STATES, "standings": labels.STANDINGS,
            "Standing": Standing, "label_of": labels.label_of,
            "actor_text": labels.actor_text, "practice": _practice(),
            "may_reset_practice": bool(staff and staff.can(Permission.PROGRAMME))}


def _practice() -> bool:
    """The practice band: a registry that cannot say now is taken as a real one."""
    try:
        return service().practice.active()
    except RegistryError:
        return False
