"""The pending-accounts queue: self-registered accounts of "verify" institutions that wait
for a librarian to see an identity document. Confirm ("identity document checked") or erase
with a reason. Only translation happens here: the rules are in kiosk.registry.verification
(`service().verification`)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from ..registry.domain import RegistryError
from ..registry.roles import Permission
from ..registry.verification import PendingAccount
from ..terminal.forms import ActionForm
from ..terminal.messages import message
from .base import current_staff, nav_item, place, requires, service, serving
from .forms import ReasonForm
from .once import once

bp = Blueprint("pending", __name__)

nav_item(Permission.PENDING, "staff.pending.index", _l("Pending accounts"))


def _account(patron_id: int) -> PendingAccount | Response:
    """The pending account, if this staff member serves its institution (404 otherwise); an
    account checked meanwhile (by a colleague) sends them back to the queue with a word."""
    staff = current_staff()
    assert staff is not None
    try:
        account = service().verification.pending_account(patron_id)
    except RegistryError as refusal:
        if refusal.code != "not_pending":
            raise
        serving(staff, str(refusal.detail.get("institution", "")))
        flash(message("not_pending"))
        return redirect(url_for("staff.pending.index"))
    serving(staff, account.institution_code)
    return account


@bp.get("/pending")
@requires(Permission.PENDING)
def index() -> str:
    staff = current_staff()
    assert staff is not None
    accounts = service().verification.pending(staff)
    return render_template("staff/pending/index.html", accounts=accounts)


@bp.post("/pending/<int:patron_id>/confirm")
@requires(Permission.PENDING)
@once
def confirm(patron_id: int) -> Response:
    staff = current_staff()
    assert staff is not None
    account = _account(patron_id)
    if isinstance(account, Response):
        return account
    if ActionForm().validate_on_submit():
        seated = service().verification.confirm_identity(patron_id, staff, where=place())
        who = f"{account.first_name} {account.last_name}"
        if seated:
            flash(_("%(who)s's identity is checked: the account is active, and a free seat "
                    "went to them.", who=who))
        else:
            flash(_("%(who)s's identity is checked: the account is active.", who=who))
    return redirect(url_for("staff.pending.index"))


@bp.route("/pending/<int:patron_id>/erase", methods=["GET", "POST"])
@requires(Permission.PENDING)
@once
def erase(patron_id: int) -> str | Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    account = _account(patron_id)
    if isinstance(account, Response):
        return account
    form = ReasonForm()
    if form.validate_on_submit():
        try:
            service().verification.erase_pending(patron_id, form.reason.data or "", staff,
                                                 where=place())
        except RegistryError as refusal:
            if refusal.code != "invalid" or "reason" not in refusal.fields:
                raise
            form.reason.errors = [*form.reason.errors, message(refusal.fields["reason"])]
        else:
            who = f"{account.first_name} {account.last_name}"  # not inline: Babel warns
            flash(_("The account of %(who)s is erased.", who=who))
            return redirect(url_for("staff.pending.index"))
    status = 422 if form.errors else 200
    return render_template("staff/pending/erase.html", account=account, form=form), status
