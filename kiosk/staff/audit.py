"""The audit log page: who did what, when, from where; filtered, newest first, paged."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, render_template, request
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.validators import Optional

from ..i18n import current_language
from ..registry.roles import Permission
from ..registry.staff import AuditQuery, AuditView
from ..terminal.forms import no_control_characters, options
from .base import current_staff, nav_item, requires, service

bp = Blueprint("audit", __name__)
BELGIUM = ZoneInfo("Europe/Brussels")
PAGE_SIZE = 50

nav_item(Permission.AUDIT, "staff.audit.log", _l("Audit log"))

# Readable names for the actions and detail keys the registry writes
# (tests/integration/test_audit_page.py checks that every action and key written anywhere in
# kiosk/ has one); anything else is still shown, as written.
ACTIONS: dict[str, Any] = {
    "cap_changed": _l("Cap changed"),
    "settings_changed": _l("Settings changed"),
    "waiting_list_removed": _l("Removed from the waiting list"),
    "waiting_list_moved": _l("Moved in the waiting list"),
    "waiting_list_left": _l("Left the waiting list"),
    "offer_made": _l("Seat offered"),
    "offer_expiring": _l("Reminder sent: the seat offer ends soon"),
    "offer_accepted": _l("Seat offer accepted"),
    "offer_declined": _l("Seat offer declined"),
    "offer_expired": _l("Seat offer ended without an answer"),
    "seat_given_up": _l("Seat given up"),
    "patron_registered": _l("Account created"),
    "member_linked": _l("Library card linked to a new account"),
    "member_system_set": _l("Member system set (library cards)"),
    "member_system_removed": _l("Member system removed (library cards)"),
    "patron_viewed": _l("Patron's record viewed"),
    "patron_enrolled": _l("Enrolled in a course"),
    "patron_withdrawn": _l("Withdrawn from a course"),
    "patron_erased": _l("Account erased"),
    "patron_export": _l("List of patrons exported"),
    "password_set": _l("Password set at the desk"),
    "receipt_printed": _l("Receipt printed"),
    "receipt_emailed": _l("Receipt sent by e-mail"),
    "identity_checked": _l("Identity document checked"),
    "pending_erased": _l("Unchecked account erased"),
    "pending_expired": _l("Unchecked account erased: time for the check ran out"),
    "dismissed": _l("Possible duplicate dismissed"),
    "merged": _l("Duplicate accounts merged"),
    "course_added": _l("Course added"),
    "course_changed": _l("Course changed"),
    "course_retired": _l("Course retired"),
    "course_restored": _l("Course brought back"),
    "module_of_the_month_set": _l("Module of the month set"),
    "module_of_the_month_cleared": _l("Module of the month removed"),
    "notices_resent": _l("Given-up e-mails sent again"),
    "academy_user_changed": _l("Course platform account changed"),
    "academy_synced": _l("Course platform checked against the registry"),
    "academy_resent": _l("Given-up changes for the course platform sent again"),
    "academy_exported": _l("Seat holders exported for the course platform"),
    "staff_login": _l("Staff log-in"),
    "staff_login_failed": _l("Staff log-in failed"),
    "staff_logout": _l("Staff log-out"),
    "assist_handed_back": _l("Kiosk handed back to the patron (assisted mode)"),
    "staff_created": _l("Staff account created"),
    "staff_disabled": _l("Staff account disabled"),
    "staff_password_changed": _l("Staff password changed"),
    "terminal_added": _l("Terminal added"),
    "terminal_revoked": _l("Terminal revoked"),
    "maintenance_set": _l("Maintenance message set"),
    "maintenance_cleared": _l("Maintenance message removed"),
    "programme_end_set": _l("Programme end date set"),
}
# Keys of the details, and of the settings inside "before" and "after". A key ending in
# "_<something>" whose first part is here reads as that label and the rest: quota_ANT is
# "Quota ANT", title_nl "Title nl".
DETAIL_KEYS: dict[str, Any] = {
    "from": _l("From"),
    "change": _l("Change"),
    "why": _l("Why"),
    "counts": _l("Counts"),
    "to": _l("To"),
    "promoted": _l("Promoted"),
    "reason": _l("Reason"),
    "assisted_by": _l("Assisted by"),
    "position": _l("Place in the line"),
    "had": _l("Had"),
    "until": _l("Until"),
    "address": _l("Address"),
    "login": _l("SIP account"),
    "staff": _l("Staff account"),
    "role": _l("Role"),
    "terminal": _l("Terminal"),
    "library": _l("Library"),
    "identity_checked": _l("Identity document checked"),
    "ends_on": _l("Ends on"),
    "before": _l("Before"),
    "after": _l("After"),
    "part": _l("Part"),
    "slug": _l("Course code"),
    "old_slug": _l("Former course code"),
    "changed": _l("Changed"),
    "category": _l("Category"),
    "hours": _l("Hours"),
    "title": _l("Title"),
    "summary": _l("Summary"),
    "featured_cleared": _l("No longer module of the month"),
    "row_count": _l("Rows"),
    "starts": _l("First day"),
    "ends": _l("Last day"),
    "course": _l("Course"),
    "standing": _l("Standing"),
    "standing_from": _l("Standing taken from"),
    "how": _l("How"),
    "unlocked": _l("Unlocked"),
    "days": _l("Days"),
    "other": _l("Other account"),
    "merged_into": _l("Merged into"),
    "courses_moved": _l("Courses moved"),
    "erased": _l("Erased"),
    "activated": _l("Account made active"),
    "count": _l("Number"),
    "promotion": _l("Freed seats"),
    "offer_days": _l("Opening days an offer holds"),
    "fair_share": _l("Fair share"),
    "quota": _l("Quota"),
    "opening_days": _l("Opening days"),
    "verification": _l("New accounts"),
    "pending_days": _l("Days to show an identity document"),
    "closed_days": _l("Closed days"),
}
# What a "settings_changed" entry's part names.
PARTS: dict[str, Any] = {
    "seats": _l("How freed seats are given"),
    "institution": _l("Institution settings"),
    "closed_days": _l("Closed days"),
}


def label(key: str) -> str:
    """A detail key as a person reads it: its label, "Quota ANT" for quota_ANT, or the key
    with spaces."""
    if key in DETAIL_KEYS:
        return str(DETAIL_KEYS[key])
    prefix, _sep, rest = key.rpartition("_")
    if prefix in DETAIL_KEYS and rest:
        return f"{DETAIL_KEYS[prefix]} {rest}"
    return key.replace("_", " ")


class AuditFilterForm(FlaskForm):
    """GET filters: no CSRF (reading changes nothing), so a filtered page can be bookmarked."""

    class Meta:
        csrf = False

    action = SelectField(_l("Action"), choices=[], validate_choice=False)
    actor = StringField(_l("Who (staff user name or actor)"),
                        validators=[Optional(), no_control_characters],
                        render_kw={"maxlength": 80, "autocomplete": "off"})
    subject = StringField(_l("Patron (pseudonym, e.g. patron#12)"),
                          validators=[Optional(), no_control_characters],
                          render_kw={"maxlength": 40, "autocomplete": "off"})
    institution = SelectField(_l("Institution"), choices=[], validate_choice=False)
    since = DateField(_l("From (date, Belgian time)"), validators=[Optional()])
    until = DateField(_l("Up to and including (date, Belgian time)"), validators=[Optional()])


def _utc_midnight(day: date) -> datetime:
    """The start of a Belgian day as the naive UTC the database holds."""
    return (datetime.combine(day, time(), tzinfo=BELGIUM).astimezone(UTC)
            .replace(tzinfo=None))


def _subject(text: str) -> str:
    """'patron#12', '#12' or '12' all mean the patron with pseudonym patron#12."""
    text = text.strip().lower()
    digits = text.removeprefix("patron").lstrip("#").strip()
    return f"patron#{digits}" if digits.isdigit() else text


def _local(moment: datetime) -> str:
    return format_datetime(moment.replace(tzinfo=UTC), "medium")


def readable(value: object, key: str = "") -> str:
    """A detail value as a person reads it; the keys inside it too ("before", "after"), and
    the field names a "changed" list holds."""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if value is None or value == "":
        return "–"
    if isinstance(value, (list, tuple)):
        return ", ".join(label(v) if key == "changed" and isinstance(v, str) else readable(v)
                         for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{label(k)}: {readable(v, k)}" for k, v in value.items())
    if key == "part" and value in PARTS:
        return str(PARTS[str(value)])
    return str(value)


@bp.get("/audit")
@requires(Permission.AUDIT)
def log() -> tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    form = AuditFilterForm(formdata=request.args)
    actions = service().staff.audit_actions()
    form.action.choices = options([("", _("Any action"))] + [
        (a, ACTIONS.get(a, a.replace("_", " "))) for a in actions])
    institutions = service().institutions()
    form.institution.choices = options([("", _("All institutions"))] + [
        (i.code, i.names.get(current_language(), i.code))
        for i in institutions])
    valid = form.validate()
    if valid and form.since.data and form.until.data and form.until.data < form.since.data:
        form.until.errors = [*form.until.errors,
                             _("This date is before the first date.")]
        valid = False
    page = max(1, request.args.get("page", 1, type=int) or 1)
    entries: list[AuditView] = []
    total = 0
    if valid:
        query = AuditQuery(
            action=form.action.data or "",
            actor=(form.actor.data or "").strip(),
            subject=_subject(form.subject.data or ""),
            institution=form.institution.data or "",
            since=_utc_midnight(form.since.data) if form.since.data else None,
            until=(_utc_midnight(form.until.data + timedelta(days=1))
                   if form.until.data else None),
            limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        entries, total = service().staff.audit(query, staff)
    pages = max(1, -(-total // PAGE_SIZE))
    filters = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("staff/audit/log.html", form=form, entries=entries, total=total,
                           page=page, pages=pages, filters=filters, local=_local,
                           actions=ACTIONS, label=label,
                           readable=readable), 200 if valid else 422
