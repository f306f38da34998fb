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
from ..registry.staff import AuditQuery
from ..terminal.forms import no_control_characters
from . import current_staff, nav_item, requires, service

bp = Blueprint("audit", __name__)
BELGIUM = ZoneInfo("Europe/Brussels")
PAGE_SIZE = 50

nav_item(Permission.AUDIT, "staff.audit.log", _l("Audit log"))

# Readable names for the actions and detail keys the registry writes; anything else is shown
# as written (an action added later still shows, only less nicely).
ACTIONS: dict[str, Any] = {
    "cap_changed": _l("Cap changed"),
    "waiting_list_removed": _l("Removed from the waiting list"),
    "waiting_list_moved": _l("Moved in the waiting list"),
    "patron_registered": _l("Account created"),
    "patron_erased": _l("Account erased"),
    "staff_login": _l("Staff log-in"),
    "staff_login_failed": _l("Staff log-in failed"),
    "staff_created": _l("Staff account created"),
    "staff_disabled": _l("Staff account disabled"),
    "staff_password_changed": _l("Staff password changed"),
    "terminal_added": _l("Terminal added"),
    "terminal_revoked": _l("Terminal revoked"),
    "maintenance_set": _l("Maintenance message set"),
    "maintenance_cleared": _l("Maintenance message removed"),
    "programme_end_set": _l("Programme end date set"),
}
DETAIL_KEYS: dict[str, Any] = {
    "from": _l("From"),
    "to": _l("To"),
    "promoted": _l("Promoted"),
    "reason": _l("Reason"),
    "assisted_by": _l("Assisted by"),
    "position": _l("Place in the line"),
    "had": _l("Had"),
    "until": _l("Until"),
    "staff": _l("Staff account"),
    "role": _l("Role"),
    "terminal": _l("Terminal"),
    "library": _l("Library"),
    "identity_checked": _l("Identity document checked"),
    "ends_on": _l("Ends on"),
}


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


def readable(value: object) -> str:
    """A detail value as a person reads it."""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if value is None or value == "":
        return "–"
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {readable(v)}" for k, v in value.items())
    return str(value)


@bp.get("/audit")
@requires(Permission.AUDIT)
def log() -> tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    form = AuditFilterForm(formdata=request.args)
    actions = service().staff.audit_actions()
    form.action.choices = [("", _("Any action"))] + [
        (a, str(ACTIONS.get(a, a.replace("_", " ")))) for a in actions]
    institutions = service().institutions()
    form.institution.choices = [("", _("All institutions"))] + [
        (i.code, i.names.get(current_language(), i.code))
        for i in institutions]
    valid = form.validate()
    if valid and form.since.data and form.until.data and form.until.data < form.since.data:
        form.until.errors = [*form.until.errors,
                             _("This date is before the first date.")]
        valid = False
    page = max(1, request.args.get("page", 1, type=int) or 1)
    entries, total = [], 0
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
                           actions=ACTIONS, detail_keys=DETAIL_KEYS,
                           readable=readable), 200 if valid else 422
