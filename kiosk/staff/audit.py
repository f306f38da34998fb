"""The audit log page: who did what, when, from where; filtered, newest first, paged. Every
code it holds is shown through kiosk.staff.labels, every time in Belgian time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from babel.dates import get_day_names
from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import Optional

from ..i18n import current_language, day_text, moment_text
from ..registry.days import BELGIUM
from ..registry.domain import LOCALES
from ..registry.roles import Permission
from ..registry.staff import AuditQuery, AuditView
from ..terminal.forms import no_control_characters, options
from . import labels
from .base import current_staff, nav_item, requires, service
from .forms import DayField
from .labels import Names, action_text, actor_text, detail_label, label_of

bp = Blueprint("audit", __name__)
PAGE_SIZE = 50

nav_item(Permission.AUDIT, "staff.audit.log", _l("Audit log"))

# Detail values that are codes, by the key they are written under.
CODED: dict[str, Mapping[str, Any]] = {
    "standing": labels.STANDINGS,
    "had": labels.STANDINGS,
    "how": labels.PASSWORD_WAYS,
    "standing_from": labels.MERGE_STANDING_FROM,
    "change": labels.ACADEMY_CHANGES,
    "role": labels.ROLES,
    "part": labels.PARTS,
    "promotion": labels.PROMOTIONS,
    "verification": labels.VERIFICATIONS,
    "phone": labels.SIGN_UP_FIELDS,  # an institution's sign-up (FieldRule)
    "postcode": labels.SIGN_UP_FIELDS,
    "reason": labels.REASONS,
    "why": labels.ACADEMY_WHY,
}
# Details that hold a mapping whose keys are codes of their own, by the key they are written
# under (the settings inside "before" and "after" are detail keys).
NESTED_KEYS: dict[str, Mapping[str, Any]] = {
    "counts": labels.SYNC_COUNTS,
}
# Detail values that are moments (ISO, naive UTC) or days (ISO).
MOMENTS = {"until"}
DAYS = {"ends_on", "starts", "ends", "closed_days"}


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
    since = DayField(_l("From (date, Belgian time)"), validators=[Optional()])
    until = DayField(_l("Up to and including (date, Belgian time)"), validators=[Optional()])


def _utc_midnight(day: date) -> datetime:
    """The start of a Belgian day as the naive UTC the database holds."""
    return (datetime.combine(day, time(), tzinfo=BELGIUM).astimezone(UTC)
            .replace(tzinfo=None))


def _subject(text: str) -> str:
    """'patron#12', '#12' or '12' all mean the patron with pseudonym patron#12."""
    text = text.strip().lower()
    digits = text.removeprefix("patron").lstrip("#").strip()
    return f"patron#{digits}" if digits.isdigit() else text


class DetailReader:
    """A detail value as a person reads it, in the page's language: codes through their
    labels, courses by title, moments in Belgian time; the keys inside it too ("before",
    "after"), and the field names a "changed" list holds. Anything it does not know is shown
    as written."""

    def __init__(self, names: Names, lang: str):
        self.names = names
        self.weekdays = get_day_names("wide", locale=LOCALES[lang])

    def __call__(self, value: object, key: str = "") -> str:
        if isinstance(value, bool):
            return _("yes") if value else _("no")
        if value is None or value == "":
            return "–"
        if isinstance(value, (list, tuple)):
            return ", ".join(self(v, key) for v in value)
        if isinstance(value, dict):
            # The page's punctuation: French puts a no-break space before the colon.
            return "; ".join(_("%(label)s: %(message)s", label=self._key(k, key),
                               message=self(v, k)) for k, v in value.items())
        return self._item(value, key)

    @staticmethod
    def _key(key: str, parent: str) -> str:
        """A key inside a detail: through its parent's own labels, or as a detail key."""
        if parent in NESTED_KEYS:
            return label_of(NESTED_KEYS[parent], key)
        return detail_label(key)

    def _item(self, value: object, key: str) -> str:
        text = str(value)
        if key == "changed":
            return detail_label(text)
        if key in CODED:
            return label_of(CODED[key], text)
        if key in ("course", "slug"):
            return self.names.course(text)
        if key == "category":
            return self.names.categories.get(text, text)
        if key == "library":
            return self.names.libraries.get(text, text)
        if key == "opening_days" and isinstance(value, int) and 1 <= value <= 7:
            return self.weekdays[value - 1]
        if key in MOMENTS or key in DAYS:
            return _when(text, moment=key in MOMENTS)
        return text


def _when(text: str, *, moment: bool) -> str:
    """An ISO moment (naive UTC) or day as Belgians read it; text that is neither, as is."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment_text(parsed) if moment else day_text(parsed.date())


@bp.get("/audit")
@requires(Permission.AUDIT)
def log() -> tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    form = AuditFilterForm(formdata=request.args)
    actions = service().staff.audit_actions()
    form.action.choices = options([("", _("Any action"))] + [
        (a, action_text(a)) for a in actions])
    names = Names.read(service(), current_language())
    form.institution.choices = options([("", _("All institutions"))]
                                       + list(names.institutions.items()))
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
                           page=page, pages=pages, filters=filters, names=names,
                           action_text=action_text, actor_text=actor_text,
                           label=detail_label,
                           readable=DetailReader(names, current_language())), \
        200 if valid else 422
