"""The coordinator's cap change (form, preview, confirmation) and the waiting list.

Only translation happens here: the rules and the transactions are in
kiosk.registry.waitlist (`service().waitlist`).
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField, IntegerField, StringField
from wtforms.validators import DataRequired, InputRequired, NumberRange, Optional

from ..i18n import current_language
from ..registry.domain import REASON_MAX, RegistryError
from ..registry.roles import Permission
from ..registry.waitlist import PAGE_SIZE, CapPreview, WaitingEntry
from ..terminal.forms import no_control_characters
from ..terminal.messages import MESSAGES, field_message, message, required
from .base import current_staff, nav_item, place, requires, service, show_refusal
from .once import once

bp = Blueprint("seats", __name__)

nav_item(Permission.PROGRAMME, "staff.seats.cap", _l("Seats and cap"))
nav_item(Permission.WAITING_LIST, "staff.seats.waiting_list", _l("Waiting list"))


def _reason_field() -> StringField:
    return StringField(_l("Reason (kept in the audit log)"),
                       validators=[DataRequired(required("reason")), no_control_characters],
                       render_kw={"maxlength": REASON_MAX, "autocomplete": "off"})


class CapForm(FlaskForm):
    cap = IntegerField(_l("New cap (seats in the programme)"),
                       validators=[InputRequired(MESSAGES["cap_invalid"]),
                                   NumberRange(min=0, max=1_000_000,
                                               message=MESSAGES["cap_invalid"])],
                       render_kw={"inputmode": "numeric", "autocomplete": "off"})
    reason = _reason_field()


class CapConfirmForm(FlaskForm):
    """Step 3: what the coordinator saw, sent back; the fingerprint names the preview."""

    cap = IntegerField(validators=[InputRequired(), NumberRange(min=0, max=1_000_000)])
    reason = HiddenField(validators=[DataRequired()])
    fingerprint = HiddenField(validators=[DataRequired()])


class RemoveForm(FlaskForm):
    reason = _reason_field()


class MoveForm(FlaskForm):
    position = IntegerField(_l("New place in the line"),
                            validators=[Optional()],
                            render_kw={"inputmode": "numeric", "autocomplete": "off"})
    reason = _reason_field()


# --- The cap ------------------------------------------------------------------------------

@bp.route("/seats", methods=["GET", "POST"])
@requires(Permission.PROGRAMME)
def cap() -> str | tuple[str, int]:
    """Step 1 (the new cap and a reason) and, once both are valid, step 2 (the preview)."""
    form = CapForm()
    if form.validate_on_submit():
        try:
            preview = service().waitlist.preview_cap(form.cap.data, current_language())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            return _preview_page(preview, form.reason.data or "")
    status = 422 if form.errors else 200
    return render_template("staff/seats/cap.html", form=form,
                           programme=service().programme_status()), status


def _preview_page(preview: CapPreview, reason: str, stale: bool = False,
                  status: int = 200) -> tuple[str, int]:
    confirm = CapConfirmForm(formdata=None, cap=preview.new_cap, reason=reason,
                             fingerprint=preview.fingerprint)
    return render_template("staff/seats/preview.html", preview=preview, reason=reason,
                           confirm=confirm, stale=stale,
                           message_stale=message("preview_stale")), status


@bp.post("/seats/confirm")
@requires(Permission.PROGRAMME)
@once
def confirm_cap() -> Response | tuple[str, int]:
    """Step 3: apply, in one transaction, exactly the previewed change, or nothing."""
    staff = current_staff()
    assert staff is not None
    form = CapConfirmForm()
    if not form.validate_on_submit():
        # Only a tampered or truncated post gets here: start again at step 1.
        flash(_("Please fill in the new cap and the reason again."))
        return redirect(url_for("staff.seats.cap"))
    try:
        promoted = service().waitlist.change_cap(
            form.cap.data, form.reason.data or "", actor=staff.actor, where=place(),
            expected=form.fingerprint.data)
    except RegistryError as refusal:
        if refusal.code != "preview_stale":
            raise
        # The line changed between preview and confirmation (someone joined, left or was
        # freed a seat): nothing was applied; show what the change would do now.
        preview = service().waitlist.preview_cap(form.cap.data, current_language())
        return _preview_page(preview, form.reason.data or "", stale=True, status=409)
    flash(ngettext("The cap is now %(cap)s. %(num)s patron was promoted.",
                   "The cap is now %(cap)s. %(num)s patrons were promoted.",
                   promoted, cap=form.cap.data))
    return redirect(url_for("staff.seats.cap"))


# --- The waiting list ----------------------------------------------------------------------

@bp.get("/waiting-list")
@requires(Permission.WAITING_LIST)
def waiting_list() -> str:
    staff = current_staff()
    assert staff is not None
    institution = request.args.get("institution", "") if staff.programme_wide else ""
    institutions = service().institutions() if staff.programme_wide else []
    if institution and institution not in {i.code for i in institutions}:
        institution = ""
    page = service().waitlist.page(staff, current_language(),
                                   page=request.args.get("page", 1, type=int) or 1,
                                   institution=institution)
    return render_template("staff/seats/waiting_list.html", listing=page,
                           institution=institution, institutions=institutions,
                           may_move=staff.can(Permission.WAITING_LIST_MOVE))


@bp.route("/waiting-list/<int:patron_id>/remove", methods=["GET", "POST"])
@requires(Permission.WAITING_LIST)
@once
def remove(patron_id: int) -> str | Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    entry = _entry_or_404(patron_id)
    form = RemoveForm()
    if form.validate_on_submit():
        try:
            service().waitlist.remove(patron_id, form.reason.data or "", staff, where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("%(who)s is no longer on the waiting list; everyone behind moved up one "
                    "place.", who=entry.subject))
            return redirect(url_for("staff.seats.waiting_list"))
    status = 422 if form.errors else 200
    return render_template("staff/seats/remove.html", entry=entry, form=form), status


@bp.route("/waiting-list/<int:patron_id>/move", methods=["GET", "POST"])
@requires(Permission.WAITING_LIST_MOVE)
@once
def move(patron_id: int) -> str | Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    entry = _entry_or_404(patron_id)
    form = MoveForm()
    if form.validate_on_submit():
        direction = request.form.get("direction", "to")
        target = {"up": entry.position - 1, "down": entry.position + 1}.get(
            direction, form.position.data)
        if target is None:
            form.position.errors = [*form.position.errors, field_message("position", "required")]
        else:
            try:
                moved_to = service().waitlist.move(patron_id, target, form.reason.data or "",
                                                   staff, where=place())
            except RegistryError as refusal:
                show_refusal(form, refusal)
            else:
                flash(_("%(who)s is now number %(position)s on the waiting list.",
                        who=entry.subject, position=moved_to))
                return redirect(url_for("staff.seats.waiting_list",
                                        page=(moved_to - 1) // PAGE_SIZE + 1))
    status = 422 if form.errors else 200
    return render_template("staff/seats/move.html", entry=entry, form=form,
                           waiting=service().programme_status().waiting), status


def _entry_or_404(patron_id: int) -> WaitingEntry:
    """The waiting entry if this staff member may see it; 404 otherwise (a librarian may not
    learn that another institution's patron is on the list)."""
    staff = current_staff()
    assert staff is not None
    try:
        return service().waitlist.entry(patron_id, staff, current_language())
    except RegistryError as refusal:
        if refusal.code != "not_found":
            raise
        abort(404)
