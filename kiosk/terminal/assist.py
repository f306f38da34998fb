"""Assisted mode on the kiosk: a librarian takes over the patron's journey, hands control back
for private steps (typing a password), and takes it again only with their own password.

The visit cookie holds the librarian's staff session token under a key of its own
(`staff_token`; the staff pages use another, both named in kiosk.security): a take-over
never opens the staff pages mounted on the same app, not even after it is handed back to the
patron, and a staff-page log-in never becomes a take-over. Under `assist` sits only whether
control is handed back (and, for a sign-up handed back half-way, whether the librarian ticked
"identity document checked"). Who the librarian is comes from the registry on every page, so
an ended staff session ends the mode at once. A patron's log-out or the idle reset end it
(`security.end_visit`).
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField
from wtforms.validators import InputRequired

from ..registry.domain import RegistryError
from ..registry.roles import StaffView
from ..registry_setup import registry
from ..security import TAKE_OVER_TOKEN_KEY, safe_next
from .forms import ActionForm, StaffLoginForm, no_control_characters
from .messages import account_locked, message, required

bp = Blueprint("assist", __name__, url_prefix="/<lang:lang>/assist")

TOKEN_KEY = TAKE_OVER_TOKEN_KEY  # ended by security.end_visit; never the staff pages' key
STATE_KEY = "assist"
# The staff session is over (or never could assist): assisted mode ends, the visit goes on.
ENDED = {"staff_session_invalid", "staff_forbidden"}


class TakeOverForm(FlaskForm):
    password = PasswordField(_l("Librarian's password"),
                             validators=[InputRequired(required("password")),
                                         no_control_characters],
                             render_kw={"autocomplete": "off", "autofocus": True})


# --- State, for the other patron pages --------------------------------------------------------


def assistant() -> StaffView | None:
    """The librarian assisting on this kiosk now, if any (asked once per request)."""
    if "assistant" not in g:
        g.assistant = None
        token = session.get(TOKEN_KEY)
        if token and STATE_KEY in session:
            try:
                g.assistant = registry().staff_whois(token)
            except RegistryError as refusal:
                if refusal.code not in ENDED:
                    raise
                forget()
                flash(_("Assisted mode has ended."))
    return g.assistant


def staff_token() -> str | None:
    """The token that tags the patron's actions "assisted by", while assisted mode lasts (also
    while handed back: the librarian is nearby and the journey is theirs together)."""
    if STATE_KEY not in session:
        return None
    return session.get(TOKEN_KEY)


def handed_back() -> bool:
    return bool(session.get(STATE_KEY, {}).get("handed_back"))


def hand_back_keeping(identity_checked: bool = False) -> None:
    """Hide the staff controls; what the librarian ticked on a sign-up is kept server-side,
    so that the patron cannot tick it in their place."""
    session[STATE_KEY] = {"handed_back": True, "identity_checked": identity_checked}
    token = session.get(TOKEN_KEY)
    if token:
        try:  # in the audit log: what the patron does next, they do on their own
            registry().staff_hand_back(token)
        except RegistryError:
            pass  # an ended session ends the mode on the next page anyway


def identity_checked_when_handed_back() -> bool:
    return bool(session.get(STATE_KEY, {}).get("identity_checked"))


def forget() -> None:
    session.pop(TOKEN_KEY, None)
    session.pop(STATE_KEY, None)
    g.assistant = None


def end() -> None:
    """End assisted mode: the staff session is revoked; the patron's visit goes on."""
    token = session.get(TOKEN_KEY)
    forget()
    if token:
        try:
            registry().staff_logout(token)
        except RegistryError:
            pass  # unreachable now: the staff session still ends by itself when idle


def banner_context() -> dict:
    """For base.html: the banner on every patron page while assisted."""
    try:
        helper = assistant()
    except RegistryError:
        helper = None  # an error page must still render when the registry is gone
    return {"assistant": helper, "assist_handed_back": helper is not None and handed_back()}


def _next() -> str:
    return safe_next(request.values.get("next"), url_for("start.home"))


# --- The pages ----------------------------------------------------------------------------------


@bp.route("/", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    """The librarian's log-in on the kiosk (the discreet "Librarian" link in the footer)."""
    form = StaffLoginForm()
    problem = None
    if form.validate_on_submit():
        try:
            token, staff = registry().staff_login(form.username.data or "",
                                                  form.password.data or "")
        except RegistryError as refusal:
            if refusal.code == "account_locked":
                problem = account_locked(refusal)
            elif refusal.code == "login_failed":
                problem = _("The user name or password is not right.")
            elif refusal.code == "staff_forbidden":
                problem = _("Your staff role does not include helping patrons at a kiosk.")
            elif refusal.code in ("unavailable", "busy"):
                problem = message(refusal.code)
            else:
                raise
        else:
            end()  # one librarian at a time: an earlier staff session on this kiosk ends
            session[TOKEN_KEY] = token
            session[STATE_KEY] = {"handed_back": False}
            flash(_("Assisted mode: you are helping as %(name)s.", name=staff.display_name))
            return redirect(_next())
        form.password.data = ""
    status = 422 if problem or form.errors else 200
    return render_template("assist/login.html", form=form, problem=problem,
                           next_url=_next()), status


@bp.post("/hand-back")
def hand_back() -> Response:
    if ActionForm().validate_on_submit() and assistant() is not None:
        hand_back_keeping()
    return redirect(_next())


@bp.route("/take-over", methods=["GET", "POST"])
def take_over() -> str | Response | tuple[str, int]:
    """Control back to the librarian: only with their password, never a click."""
    helper = assistant()
    if helper is None or not handed_back():
        return redirect(_next())
    form = TakeOverForm()
    problem = None
    if form.validate_on_submit():
        old = session[TOKEN_KEY]
        try:  # a new staff session for the same librarian; a wrong password counts
            token, _staff = registry().staff_login(helper.username, form.password.data or "")
        except RegistryError as refusal:
            if refusal.code == "account_locked":
                problem = account_locked(refusal)
            elif refusal.code == "login_failed":
                problem = _("This password is not right.")
            elif refusal.code in ("unavailable", "busy"):
                problem = message(refusal.code)
            else:
                raise
        else:
            session[TOKEN_KEY] = token
            session[STATE_KEY] = {"handed_back": False}
            try:
                registry().staff_logout(old)
            except RegistryError:
                pass
            flash(_("You have taken over again."))
            return redirect(_next())
        form.password.data = ""
    status = 422 if problem or form.errors else 200
    return render_template("assist/take_over.html", form=form, problem=problem,
                           next_url=_next()), status


@bp.post("/end")
def end_mode() -> Response:
    if ActionForm().validate_on_submit() and staff_token() and not handed_back():
        end()
        flash(_("Assisted mode has ended."))
    return redirect(_next())
