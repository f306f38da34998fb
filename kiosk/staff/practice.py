"""A practice registry's reset, by the coordinator: the demo back to its starting state (see
`kiosk.registry.practice`). Asked on the staff pages' confirmation step (`base.confirmation`)
that says what goes, with "Back" first: one tap on the band's link never resets anything.

Not `once`: the reset ends every staff session, the coordinator's own with it, so a form sent
again finds nobody logged in (and a second reset would only do the same again)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, current_app, flash, redirect, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from ..registry.domain import RegistryError
from ..registry.roles import Permission
from ..terminal.forms import ActionForm
from .base import confirmation, current_staff, place, requires, service

bp = Blueprint("practice", __name__)

# What a process adds to a practice registry after it starts (the demo's fictional patrons),
# done again after a reset: app.extensions[AFTER_RESET] is a list of callables.
AFTER_RESET = "after_practice_reset"


def after_reset(app_extensions: dict, action: Callable[[], None]) -> None:
    app_extensions.setdefault(AFTER_RESET, []).append(action)


@bp.get("/practice/reset")
@requires(Permission.PROGRAMME)
def confirm_reset() -> str:
    if not service().practice.active():
        abort(404)
    return confirmation(
        _("Start the practice again"),
        [_("This is a practice registry. Starting again removes everything done in it: "
           "patrons and their seats, the waiting list, changes to courses, libraries and "
           "settings, staff accounts added, and the audit log."),
         _("Then it is as the demo began: the same courses and libraries, and the practice "
           "accounts. The terminals stay connected."),
         _("Everyone is logged out of the staff pages, you too.")],
        back=url_for("staff.home"), button=_("Start again"), keep=_("Back, change nothing"),
        action=url_for("staff.practice.reset"))


@bp.post("/practice/reset")
@requires(Permission.PROGRAMME)
def reset() -> Response:
    if not ActionForm().validate_on_submit():
        return redirect(url_for("staff.practice.confirm_reset"))
    staff = current_staff()
    assert staff is not None
    try:
        service().practice.reset(actor=staff.actor, where=place())
    except RegistryError as refusal:
        if refusal.code == "not_practice":
            abort(404)
        raise
    for action in current_app.extensions.get(AFTER_RESET, []):
        action()
    flash(_("The practice is back at its start. Log in again with one of the practice "
            "accounts."))
    return redirect(url_for("staff.home"))  # which asks to log in again
