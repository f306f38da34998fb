"""Staff log-in and log-out, one's own password, and the start page listing what this
role may do."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from ..registry.domain import RegistryError
from ..security import safe_next
from ..terminal.forms import ActionForm, StaffLoginForm
from ..terminal.messages import account_locked
from .base import TOKEN_KEY, bp, place, service, show_refusal, staff_only
from .forms import StaffPasswordForm
from .once import once


@bp.route("/login", methods=["GET", "POST"])
def login() -> tuple[str, int] | Response:
    form = StaffLoginForm()
    problem = None
    if form.validate_on_submit():
        try:
            token, staff = service().staff.login(form.username.data or "",
                                                 form.password.data or "", where=place())
        except RegistryError as refusal:
            if refusal.code == "account_locked":
                problem = account_locked(refusal)
            elif refusal.code == "login_failed":
                problem = _("The user name or password is not right.")
            else:
                raise
        else:
            old = session.pop(TOKEN_KEY, None)
            if old:
                service().staff.logout(old)
            session[TOKEN_KEY] = token
            flash(_("Logged in as %(name)s.", name=staff.display_name))
            return redirect(safe_next(request.args.get("next"), url_for("staff.home")))
    status = 200 if problem is None and not form.errors else 422
    return render_template("staff/login.html", form=form, problem=problem), status


@bp.post("/logout")
def logout() -> Response:
    if ActionForm().validate_on_submit():
        token = session.pop(TOKEN_KEY, None)
        if token:
            service().staff.logout(token)
        flash(_("You are logged out of the staff pages."))
    return redirect(url_for("staff.login"))


@bp.get("/")
@staff_only
def home() -> str | Response:
    return render_template("staff/home.html")


@bp.route("/password", methods=["GET", "POST"])
@staff_only
@once
def password() -> str | Response | tuple[str, int]:
    """One's own new password: the one a coordinator gave is theirs to change first. Too
    many wrong current passwords lock the account and end its sessions (kiosk.registry.staff)."""
    form = StaffPasswordForm()
    if form.validate_on_submit():
        try:
            service().staff.change_password(session[TOKEN_KEY], form.old_password.data or "",
                                            form.new_password.data or "", where=place())
        except RegistryError as refusal:
            if refusal.code != "account_locked":
                show_refusal(form, refusal)
            else:
                session.pop(TOKEN_KEY, None)
                flash(account_locked(refusal))
                return redirect(url_for("staff.login"))
        else:
            flash(_("Your new password is set. Use it from now on."))
            return redirect(url_for("staff.home"))
    form.old_password.data = form.new_password.data = ""
    return render_template("staff/password.html", form=form), 422 if form.errors else 200

