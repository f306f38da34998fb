"""The coordinator's settings: how a freed seat is given (grant or offer and hold, offer days,
fair share with a quota per institution beside the seats it holds now) and, per institution,
its opening days and verification policy. The registry (`service().policies`) validates and
audits; this module only reads the form and shows refusals next to their fields."""

from __future__ import annotations

from babel.dates import get_day_names
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import format_date, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from ..i18n import current_language
from ..registry.domain import LOCALES, RegistryError
from ..registry.policies import ProgrammeSettings
from ..registry.roles import Permission
from ..terminal.forms import ActionForm
from ..terminal.messages import message
from .base import current_staff, nav_item, place, requires, service
from .labels import PROMOTIONS, VERIFICATIONS
from .once import once

bp = Blueprint("settings", __name__)

nav_item(Permission.PROGRAMME, "staff.settings.index", _l("Settings"))



def _weekdays() -> list[tuple[int, str, str]]:
    """(ISO weekday, short name, full name) in the page's language, Monday first."""
    locale = LOCALES.get(current_language(), "en_GB")
    short = get_day_names("abbreviated", locale=locale)
    wide = get_day_names("wide", locale=locale)
    return [(day, short[day - 1], wide[day - 1]) for day in range(1, 8)]


def _page(settings: ProgrammeSettings, errors: dict[str, str] | None = None,
          posted: dict[str, object] | None = None) -> tuple[str, int]:
    errors = errors or {}
    lang = current_language()
    names = {i.code: i.names.get(lang) or i.code for i in settings.institutions}
    messages = {k: message(v) for k, v in errors.items()}
    closed = {code: "\n".join(format_date(day, "dd/MM/yyyy") for day in days)
              for code, days in service().closures.upcoming().items()}
    return render_template(
        "staff/settings/index.html", settings=settings, names=names, errors=errors,
        messages=messages, summary=[(_anchor(k), _label(k, names), messages[k]) for k in errors],
        posted=posted or {}, closed=closed,
        weekdays=_weekdays(), promotions=PROMOTIONS, verifications=VERIFICATIONS,
        form=ActionForm(formdata=None),
    ), 422 if errors else 200


def _anchor(key: str) -> str:
    """The element an error summary entry links to (the first radio or checkbox of a group)."""
    if key == "promotion":
        return "promotion_grant"
    if key.startswith("opening_days_"):
        return f"{key}_1"
    return key


def _label(key: str, names: dict[str, str]) -> str:
    if key == "promotion":
        return _("How a freed seat is given")
    if key == "offer_days":
        return _("Opening days an offer holds the seat")
    field, _sep, code = key.rpartition("_")
    name = names.get(code, code)
    if field == "quota":
        return _("Quota of %(name)s", name=name)
    if field == "opening_days":
        return _("Opening days of %(name)s", name=name)
    if field == "verification":
        return _("Verification at %(name)s", name=name)
    if field == "pending_days":
        return _("Days to show an identity document at %(name)s", name=name)
    if field == "closed_days":
        return _("Closed days of %(name)s", name=name)
    return name


@bp.get("/settings")
@requires(Permission.PROGRAMME)
def index() -> tuple[str, int]:
    return _page(service().policies.settings())


@bp.post("/settings/seats")
@requires(Permission.PROGRAMME)
@once
def seats() -> Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    if not ActionForm().validate_on_submit():
        return redirect(url_for("staff.settings.index"))
    settings = service().policies.settings()
    quotas = {i.code: request.form.get(f"quota_{i.code}", "") for i in settings.institutions}
    posted: dict[str, object] = {"promotion": request.form.get("promotion", ""),
                                 "offer_days": request.form.get("offer_days", ""),
                                 "fair_share": request.form.get("fair_share") == "y",
                                 **{f"quota_{k}": v for k, v in quotas.items()}}
    try:
        promoted = service().policies.set_seat_policy(
            str(posted["promotion"]), posted["offer_days"], bool(posted["fair_share"]), quotas,
            actor=staff.actor, where=place())
    except RegistryError as refusal:
        if refusal.code != "invalid":
            raise
        return _page(settings, refusal.fields, posted)
    flash(_("The seat settings are saved."))
    if promoted:
        flash(ngettext("%(num)s patron in line got a seat at once.",
                       "%(num)s patrons in line got a seat at once.", promoted))
    return redirect(url_for("staff.settings.index"))


@bp.post("/settings/institutions")
@requires(Permission.PROGRAMME)
@once
def institutions() -> Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    if not ActionForm().validate_on_submit():
        return redirect(url_for("staff.settings.index"))
    settings = service().policies.settings()
    changes: dict[str, tuple[list[object], str, object]] = {}
    posted: dict[str, object] = {}
    for inst in settings.institutions:
        code = inst.code
        days: list[object] = list(request.form.getlist(f"opening_days_{code}"))
        verification = request.form.get(f"verification_{code}", "")
        pending = request.form.get(f"pending_days_{code}", "")
        changes[code] = (days, verification, pending)
        posted.update({f"opening_days_{code}": [str(d) for d in days],
                       f"verification_{code}": verification, f"pending_days_{code}": pending})
    try:
        changed = service().policies.set_institution_policies(changes, actor=staff.actor,
                                                              where=place())
    except RegistryError as refusal:
        if refusal.code != "invalid":
            raise
        return _page(settings, refusal.fields, posted)
    flash(ngettext("Opening days and verification are saved for %(num)s institution.",
                   "Opening days and verification are saved for %(num)s institutions.",
                   changed))
    return redirect(url_for("staff.settings.index"))


@bp.post("/settings/closed-days")
@requires(Permission.PROGRAMME)
@once
def closed_days() -> Response | tuple[str, int]:
    """Public holidays and closures per institution: an offer's hold skips them."""
    staff = current_staff()
    assert staff is not None
    if not ActionForm().validate_on_submit():
        return redirect(url_for("staff.settings.index"))
    settings = service().policies.settings()
    lists = {i.code: request.form.get(f"closed_days_{i.code}", "") for i in settings.institutions}
    try:
        changed = service().closures.set_upcoming(lists, actor=staff.actor, where=place())
    except RegistryError as refusal:
        if refusal.code != "invalid":
            raise
        return _page(settings, refusal.fields,
                     {f"closed_days_{code}": text for code, text in lists.items()})
    if changed:
        flash(ngettext("The closed days of %(num)s institution are saved.",
                       "The closed days of %(num)s institutions are saved.", changed))
    else:
        flash(_("Nothing changed: the closed days were already as given."))
    return redirect(url_for("staff.settings.index"))
