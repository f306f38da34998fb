"""The coordinator's dashboard: charts with their numbers, CSV exports of the aggregates, and
the audited export of patrons.

The figures come from kiosk.registry.reports (`service().reports`); this module draws them
(kiosk.staff.charts) and writes CSV.

CSV for Excel in Belgium: see kiosk.staff.csv_files. Decimals are written with a comma, as
Belgian Excel reads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import format_decimal, format_number, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms import StringField
from wtforms.validators import DataRequired

from ..i18n import current_language
from ..registry.domain import REASON_MAX, RegistryError
from ..registry.reports import SIGNUP_DAYS, TOP_COURSES, PatronRow, SeatSummary
from ..registry.roles import Permission
from ..terminal.forms import ActionForm, no_control_characters
from ..terminal.messages import required
from . import charts
from .base import current_staff, nav_item, place, requires, service, show_refusal
from .csv_files import attachment, csv_document, csv_stream, csv_time
from .labels import STANDINGS
from .once import once

bp = Blueprint("dashboard", __name__)

nav_item(Permission.DASHBOARD, "staff.dashboard.dashboard", _l("Dashboard"))

# --- CSV (pure) --------------------------------------------------------------------------


def decimal_comma(value: float | None, places: int = 1) -> str:
    """A decimal as Belgian Excel reads it: 12,5."""
    return "" if value is None else f"{value:.{places}f}".replace(".", ",")


def days(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds() / 86400


def belgian_day(day: date) -> str:
    """A date as written in Belgium: 03/03/2025."""
    return day.strftime("%d/%m/%Y")


# --- Pages -------------------------------------------------------------------------------


def _count(n: int | float) -> str:
    return format_number(n)


def _days_text(delta: timedelta | None) -> str:
    value = days(delta)
    if value is None:
        return "–"
    return _("%(days)s days", days=format_decimal(value, "0.0"))


def _summary_rows(summary: SeatSummary) -> list[tuple[str, str]]:
    return [
        (_("Cap (seats in the programme)"), _count(summary.cap)),
        (_("Seats taken"), _count(summary.seats_taken)),
        (_("Of which offers not yet accepted"), _count(summary.offered)),
        (_("Seats free"), _count(summary.free)),
        (_("Seats kept above the cap"), _count(summary.over_cap)),
        (_("Waiting list"), _count(summary.waiting)),
        (_("Median wait, request to seat (seated from the waiting list in the last 90 days)"),
         _days_text(summary.median_wait)),
        (_("Seated from the waiting list in the last 90 days"),
         _count(summary.seated_from_list)),
        (_("Median time already waited by those still waiting"),
         _days_text(summary.median_waited)),
    ]


@bp.get("/dashboard")
@requires(Permission.DASHBOARD)
def dashboard() -> str:
    staff = current_staff()
    assert staff is not None
    board = service().reports.dashboard(current_language())
    summary = board.summary
    caption = _("%(taken)s of %(cap)s seats taken", taken=_count(summary.seats_taken),
                cap=_count(summary.cap))
    seat_gauge = charts.gauge(
        "chart-seats", _("Seats taken against the cap"),
        _("%(taken)s of %(cap)s seats taken; %(waiting)s waiting.",
          taken=_count(summary.seats_taken), cap=_count(summary.cap),
          waiting=_count(summary.waiting)),
        summary.seats_taken, summary.cap, caption=caption)
    top = [c for c in board.courses if c.enrolments]
    course_chart = charts.bar_chart(
        "chart-courses", _("Enrolments per course, top %(n)s", n=TOP_COURSES),
        _("The most chosen courses; the table below gives the numbers."),
        [(c.title, c.enrolments) for c in top], fmt=_count)
    total_signups = sum(d.signups for d in board.signups)
    signup_chart = charts.column_chart(
        "chart-signups", _("Sign-ups per day, last %(n)s days", n=SIGNUP_DAYS),
        _("%(total)s new accounts from %(first)s to %(last)s.", total=_count(total_signups),
          first=belgian_day(board.signups[0].day), last=belgian_day(board.signups[-1].day)),
        [(d.day.strftime("%d/%m"), d.signups) for d in board.signups], fmt=_count)
    institution_chart = charts.bar_chart(
        "chart-institutions", _("Seats per institution"),
        _("Seats held by the patrons of each institution."),
        [(i.name, i.seats) for i in board.institutions], fmt=_count)
    library_chart = charts.bar_chart(
        "chart-libraries", _("Seats per library"),
        _("Seats held by the patrons of each library."),
        [(f"{lib.name} ({lib.institution_code})", lib.seats) for lib in board.libraries],
        fmt=_count)
    return render_template(
        "staff/dashboard/dashboard.html", board=board, summary_rows=_summary_rows(summary),
        seat_gauge=seat_gauge, course_chart=course_chart, top=top, signup_chart=signup_chart,
        total_signups=total_signups, institution_chart=institution_chart,
        library_chart=library_chart, count=_count, belgian_day=belgian_day,
        exports=EXPORTS, can_export_patrons=staff.can(Permission.PATRON_EXPORT),
        top_n=TOP_COURSES, signup_days=SIGNUP_DAYS, outbox=service().notices.outbox(),
        mail_reason=mail_reason, academy=service().academy.state())


# What the reason of a given-up e-mail (kiosk.registry.mailer.short_error) means, for the
# reasons a coordinator can act on; by prefix, the first that fits. Others are shown bare.
MAIL_REASONS = (
    ("SMTPNotSupportedError SMTPUTF8",
     _l("The address has a letter such as é that this mail server cannot take: it does not "
        "offer SMTPUTF8. Whoever runs the mail server can turn that on.")),
    ("SMTPRecipientsRefused 5",
     _l("The mail server refused the address: check it with the patron.")),
    ("SMTPDataError 5", _l("The mail server refused the message itself.")),
    ("UnicodeEncodeError", _l("The address cannot be written in an e-mail: check it with the "
                              "patron.")),
    ("ValueError", _l("The address cannot be written in an e-mail: check it with the "
                      "patron.")),
)


def mail_reason(reason: str) -> str:
    """The explanation of a given-up e-mail's reason in the page's language, or ""."""
    return next((str(text) for prefix, text in MAIL_REASONS if reason.startswith(prefix)), "")


@bp.post("/dashboard/notices/send-again")
@requires(Permission.DASHBOARD)
@once
def send_again() -> WerkzeugResponse:
    """The given-up e-mails get a fresh start (after the coordinator fixed their cause)."""
    staff = current_staff()
    assert staff is not None
    if ActionForm().validate_on_submit():
        count = service().notices.send_again(actor=staff.actor, where=place())
        flash(ngettext("%(num)s e-mail will be sent again.",
                       "%(num)s e-mails will be sent again.", count))
    return redirect(url_for("staff.dashboard.dashboard", _anchor="mail-heading"))


@bp.post("/dashboard/academy/send-again")
@requires(Permission.DASHBOARD)
@once
def academy_send_again() -> WerkzeugResponse:
    """The given-up academy changes get a fresh start (after the platform was fixed)."""
    staff = current_staff()
    assert staff is not None
    if ActionForm().validate_on_submit():
        count = service().academy.send_again(actor=staff.actor, where=place())
        flash(ngettext("%(num)s change will be sent to the academy again.",
                       "%(num)s changes will be sent to the academy again.", count))
    return redirect(url_for("staff.dashboard.dashboard", _anchor="academy-heading"))


# --- CSV exports of the aggregates (no personal data) ------------------------------------


def _export_summary(lang: str) -> tuple[list[str], list[list[object]]]:
    s = service().reports.summary()
    header = [_("Cap"), _("Seats taken"), _("Offers not yet accepted"), _("Seats free"),
              _("Seats kept above the cap"), _("Waiting list"),
              _("Seated from the waiting list in the last 90 days"),
              _("Median wait in days (request to seat)"),
              _("Median days already waited (still waiting)")]
    return header, [[s.cap, s.seats_taken, s.offered, s.free, s.over_cap, s.waiting,
                     s.seated_from_list, decimal_comma(days(s.median_wait)),
                     decimal_comma(days(s.median_waited))]]


def _export_institutions(lang: str) -> tuple[list[str], list[list[object]]]:
    rows = service().reports.institutions(lang)
    return ([_("Institution code"), _("Institution"), _("Seats"), _("Waiting"),
             _("Seat quota")],
            [[i.code, i.name, i.seats, i.waiting, "" if i.quota is None else i.quota]
             for i in rows])


def _export_libraries(lang: str) -> tuple[list[str], list[list[object]]]:
    rows = service().reports.libraries()
    return ([_("Institution code"), _("Library code"), _("Library"), _("Seats"), _("Waiting")],
            [[lib.institution_code, lib.code, lib.name, lib.seats, lib.waiting]
             for lib in rows])


def _export_courses(lang: str) -> tuple[list[str], list[list[object]]]:
    rows = service().reports.courses(lang)
    return ([_("Course code"), _("Course"), _("Retired"), _("Enrolments"),
             _("Of patrons with a seat"), _("Of patrons waiting")],
            [[c.slug, c.title, c.retired, c.enrolments, c.seated, c.waiting] for c in rows])


def _export_signups(lang: str) -> tuple[list[str], list[list[object]]]:
    rows = service().reports.signups()
    return [_("Date"), _("Sign-ups")], [[d.day.isoformat(), d.signups] for d in rows]


# kind → (file name, what it holds, rows); the seat export is the one per institution. The
# file names are words in the staff member's language (see file_name).
EXPORTS = {
    "summary": (_l("waiting list summary"), _l("Seats, cap and waiting list (summary)"),
                _export_summary),
    "seats": (_l("seats per institution"), _l("Seats per institution"), _export_institutions),
    "libraries": (_l("seats per library"), _l("Seats per library"), _export_libraries),
    "courses": (_l("enrolments per course"), _l("Enrolments per course (all courses)"),
                _export_courses),
    "signups": (_l("sign-ups per day"), _l("Sign-ups per day, last 60 days"), _export_signups),
}


@bp.get("/dashboard/<kind>.csv")
@requires(Permission.DASHBOARD)
def export(kind: str) -> Response:
    if kind not in EXPORTS:
        abort(404)
    name, _what, build = EXPORTS[kind]
    header, rows = build(current_language())
    return attachment(csv_document(header, rows), str(name))


# --- The audited patron export -----------------------------------------------------------


class PatronExportForm(FlaskForm):
    reason = StringField(_l("Reason for this export (kept in the audit log)"),
                         validators=[DataRequired(required("reason")), no_control_characters],
                         render_kw={"maxlength": REASON_MAX, "autocomplete": "off"})


def patron_csv(header: Sequence[str], rows: Iterator[PatronRow],
               standings: dict[str, str]) -> Iterator[str]:
    """The export as CSV text in pieces, so 165,000 rows never sit in memory at once."""
    return csv_stream(header, ([r.card_number, r.first_name, r.last_name, r.email,
                                r.library_code, standings.get(r.standing, r.standing),
                                " | ".join(r.courses), csv_time(r.created_at)] for r in rows))


@bp.route("/dashboard/patron-export", methods=["GET", "POST"])
@requires(Permission.PATRON_EXPORT)
def patron_export() -> str | Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    form = PatronExportForm()
    if form.validate_on_submit():
        try:
            result = service().reports.patron_export(form.reason.data or "", current_language(),
                                                     actor=staff.actor, where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            # The audit entry is committed: only now is the first row read and sent.
            header = [_("Card number"), _("First name"), _("Last name"), _("E-mail"),
                      _("Library"), _("Standing"), _("Courses"), _("Created (Belgian time)")]
            standings = {code: str(text) for code, text in STANDINGS.items()}
            return attachment(patron_csv(header, result.rows, standings), _("patrons"),
                               private=True)
    status = 422 if form.errors else 200
    return render_template("staff/dashboard/patron_export.html", form=form), status
