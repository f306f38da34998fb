"""The coordinator's cap change (form, preview, confirmation), the waiting list and its
exports: the audited one with personal data (a reason asked), and the figures without any.

Only translation happens here: the rules and the transactions are in
kiosk.registry.waitlist (`service().waitlist`).
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, NumberRange, Optional

from ..i18n import current_language
from ..registry.domain import REASON_MAX, RegistryError, format_card_number
from ..registry.roles import Permission
from ..registry.waitlist import PAGE_SIZE, CapPreview, ExportRow, LineCount, WaitingEntry
from ..terminal.forms import no_control_characters
from ..terminal.messages import MESSAGES, field_message, message, required
from .base import current_staff, nav_item, place, requires, service, show_refusal
from .csv_files import attachment, csv_document, csv_stream, csv_time
from .labels import STANDINGS
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


class WaitingListExportForm(FlaskForm):
    # A coordinator's choice (a librarian's export is their institution's, always).
    institution = SelectField(_l("Institution"), choices=[], validate_choice=False)
    reason = StringField(_l("Reason for this export (kept in the audit log)"),
                         validators=[DataRequired(required("reason")), no_control_characters],
                         render_kw={"maxlength": REASON_MAX, "autocomplete": "off"})


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

def _institution_asked() -> str:
    """The institution a coordinator chose in the page's filter ("": all); a librarian's
    pages are their institution's whatever the address says."""
    staff = current_staff()
    assert staff is not None
    institution = request.args.get("institution", "") if staff.programme_wide else ""
    if institution and institution not in {i.code for i in service().institutions()}:
        return ""
    return institution


@bp.get("/waiting-list")
@requires(Permission.WAITING_LIST)
def waiting_list() -> str:
    staff = current_staff()
    assert staff is not None
    institution = _institution_asked()
    institutions = service().institutions() if staff.programme_wide else []
    page = service().waitlist.page(staff, current_language(),
                                   page=request.args.get("page", 1, type=int) or 1,
                                   institution=institution)
    return render_template("staff/seats/waiting_list.html", listing=page,
                           institution=institution, institutions=institutions,
                           may_move=staff.can(Permission.WAITING_LIST_MOVE),
                           counts_exports=COUNT_EXPORTS)


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


# --- Exporting the waiting list ------------------------------------------------------------


def _export_lines(rows: Iterator[ExportRow]) -> Iterator[list[object]]:
    """The rows as cells. The words are translated here, in the request: the lines are
    made later, while the file streams."""
    standings = {code: str(text) for code, text in STANDINGS.items()}
    yes, no = _("yes"), _("no")
    return (["" if r.position is None else r.position, standings[r.standing],
             "" if r.offer_ends is None else csv_time(r.offer_ends),
             csv_time(r.requested_at), yes if r.pending else no,
             format_card_number(r.card_number), r.first_name, r.last_name, r.email,
             r.institution_name, r.library_name, " | ".join(r.courses)] for r in rows)


@bp.route("/waiting-list/export", methods=["GET", "POST"])
@requires(Permission.WAITING_LIST)
def export() -> str | Response | tuple[str, int]:
    """The waiting list with personal data, in order, as CSV: audited with a reason before
    a row is read (as the patron export); a librarian's holds their institution's patrons."""
    staff = current_staff()
    assert staff is not None
    form = WaitingListExportForm(institution=_institution_asked())
    lang = current_language()
    if staff.programme_wide:
        form.institution.choices = [("", _("All institutions"))] + [
            (i.code, i.names.get(lang) or i.code) for i in service().institutions()]
    else:
        del form.institution
    if form.validate_on_submit():
        institution = form.institution.data if staff.programme_wide else ""
        if institution and institution not in {code for code, _name in
                                               form.institution.choices}:
            form.institution.errors = [*form.institution.errors,
                                       message("institution_unknown")]
        else:
            try:
                result = service().waitlist.export(staff, form.reason.data or "", lang,
                                                   institution=institution, where=place())
            except RegistryError as refusal:
                show_refusal(form, refusal)
            else:
                # The audit entry is committed: only now is the first row read and sent.
                header = [_("Place in the line"), _("Standing"),
                          _("Offer ends (Belgian time)"),
                          _("Joined the waiting list (Belgian time)"),
                          _("Pending: identity not checked yet"), _("Card number"),
                          _("First name"), _("Last name"), _("E-mail"), _("Institution"),
                          _("Library"), _("Courses")]
                return attachment(csv_stream(header, _export_lines(result.rows)),
                                  _("waiting list"), private=True)
    status = 422 if form.errors else 200
    return render_template("staff/seats/export.html", form=form), status


def _count_cells(c: LineCount) -> list[object]:
    return [c.waiting, c.pending, c.offered]


def _count_header() -> list[str]:
    return [_("Waiting"), _("Of them pending: identity not checked yet"),
            _("Offers not yet accepted")]


# by → (file name, what it holds); the figures of the line, no personal data.
COUNT_EXPORTS = {
    "institution": (_l("waiting list per institution"),
                    _l("Waiting, pending and offers, per institution")),
    "library": (_l("waiting list per library"), _l("Waiting, pending and offers, per library")),
    "course": (_l("waiting list per course"), _l("Waiting, pending and offers, per course")),
}


@bp.get("/waiting-list/per-<by>.csv")
@requires(Permission.WAITING_LIST)
def counts_export(by: str) -> Response:
    """The line's figures as CSV: no personal data, so no reason asked and no audit entry
    (as the dashboard's aggregate exports). A librarian's are their institution's."""
    staff = current_staff()
    assert staff is not None
    if by not in COUNT_EXPORTS:
        abort(404)
    counts = service().waitlist.counts(staff, current_language(), _institution_asked())
    header: list[str]
    rows: list[list[object]]
    if by == "institution":
        header = [_("Institution code"), _("Institution"), *_count_header()]
        rows = [[c.code, c.name, *_count_cells(c)] for c in counts.institutions]
    elif by == "library":
        header = [_("Institution code"), _("Library code"), _("Library"), *_count_header()]
        rows = [[c.institution_code, c.code, c.name, *_count_cells(c)]
                for c in counts.libraries]
    else:
        header = [_("Course code"), _("Course"), *_count_header()]
        rows = [[c.code, c.name, *_count_cells(c)] for c in counts.courses]
    return attachment(csv_document(header, rows), str(COUNT_EXPORTS[by][0]))
