"""Coordinators make and disable staff accounts (the CLI does the same: `kiosk registry
add-staff`). A librarian's institution is the one of the library chosen for them."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from ..i18n import current_language
from ..registry.domain import RegistryError
from ..registry.roles import Permission, Role
from ..terminal.forms import ActionForm, options
from .base import current_staff, nav_item, place, requires, service, show_refusal
from .forms import StaffAccountForm
from .labels import ROLES
from .once import once

bp = Blueprint("accounts", __name__)

nav_item(Permission.STAFF_ACCOUNTS, "staff.accounts.index", _l("Staff accounts"))

_FIELDS = {"library_code": "library", "institution_code": "library"}


def _prepare(form: StaffAccountForm) -> None:
    lang = current_language()
    form.role.choices = options([("", "–")] + [(role.value, ROLES[role]) for role in Role])
    form.library.choices = options([("", "–")] + [
        (lib.code, f"{lib.name} ({inst.names.get(lang, inst.code)})")
        for inst in service().institutions() for lib in inst.libraries])


@bp.route("/accounts", methods=["GET", "POST"])
@requires(Permission.STAFF_ACCOUNTS)
@once
def index() -> str | Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    form = StaffAccountForm()
    _prepare(form)
    if form.validate_on_submit():
        try:
            made = service().staff.create(
                form.username.data or "", form.display_name.data or "", form.role.data or "",
                form.password.data or "", library_code=form.library.data or None,
                actor=staff.actor, where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal, _FIELDS)
        else:
            flash(_("Staff account %(name)s made. Give the password to its owner in person.",
                    name=made.username))
            return redirect(url_for("staff.accounts.index"))
    status = 422 if form.errors else 200
    return render_template("staff/accounts/index.html", form=form,
                           accounts=service().staff.accounts()), status


@bp.post("/accounts/<username>/disable")
@requires(Permission.STAFF_ACCOUNTS)
@once
def disable(username: str) -> Response:
    staff = current_staff()
    assert staff is not None
    if ActionForm().validate_on_submit():
        if username == staff.username:
            flash(_("You cannot disable your own account."))
        else:
            service().staff.disable(username, actor=staff.actor, where=place())
            flash(_("Staff account %(name)s is disabled: it can no longer log in.",
                    name=username))
    return redirect(url_for("staff.accounts.index"))
