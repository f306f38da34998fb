"""The librarian's desk: find a patron, see their record, act for them, create an account.

Searches are POSTed, never put in the address: a name, an e-mail address or a date of birth
would otherwise land in access logs and the browser history.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from ..i18n import current_language, moment_text
from ..registry.corrections import kept_by_library
from ..registry.desk import PatronRecord
from ..registry.domain import (
    Enrolment,
    NewPatron,
    PatronDetails,
    ProgrammeStatus,
    RegistryError,
    SignUpRules,
    Standing,
    format_card_number,
    format_phone,
)
from ..registry.roles import Permission, StaffView
from ..terminal.forms import (
    ActionForm,
    ConfirmForm,
    follow_sign_up_rules,
    month_options,
    options,
    sign_up_key,
)
from ..terminal.messages import message
from . import consequences
from .base import (
    confirmation,
    current_staff,
    nav_item,
    place,
    requires,
    service,
    show_refusal,
)
from .forms import (
    DeskCorrectForm,
    DeskEnrolForm,
    DeskPasswordForm,
    DeskRegisterForm,
    DeskSearchForm,
    ReasonForm,
)
from .once import once

bp = Blueprint("desk", __name__)

nav_item(Permission.DESK, "staff.desk.search", _l("Find a patron"))
nav_item(Permission.DESK, "staff.desk.register", _l("New patron account"))

# Refusals an action can meet because the patron's situation changed meanwhile: a message
# on their page, not an error page.
_ACTION_REFUSALS = {"not_enrolled", "not_seated", "not_waiting", "course_not_found", "busy",
                    "mail_not_set_up"}


def _staff() -> StaffView:
    staff = current_staff()
    assert staff is not None  # `requires` let the request in
    return staff


# The search's example: grouped as every card number is shown (format_card_number).
EXAMPLE_CARD = "2101123456789"


# --- Find -------------------------------------------------------------------------------------


@bp.route("/desk", methods=["GET", "POST"])
@requires(Permission.DESK)
def search() -> tuple[str, int]:
    form = DeskSearchForm()
    hits = None
    if form.validate_on_submit():
        try:
            hits = service().desk.find(_staff(), form.query.data or "", form.birth_date.data)
        except RegistryError as refusal:
            show_refusal(form, refusal)
    status = 422 if form.errors else 200
    return render_template("staff/desk/search.html", form=form, hits=hits,
                           example_card=format_card_number(EXAMPLE_CARD)), status


# --- One patron -------------------------------------------------------------------------------


def _patron_page(patron_id: int, enrol_form: DeskEnrolForm | None = None,
                 status: int = 200) -> tuple[str, int]:
    staff = _staff()
    lang = current_language()
    found = service().desk.patron(staff, patron_id, lang, where=place())
    form = enrol_form or DeskEnrolForm(formdata=None)
    enrolled = {e.course_slug for e in found.status.enrolments}
    form.course.choices = options([("", _("Choose a course"))] + [
        (c.slug, c.title) for c in service().catalogue(lang).courses if c.slug not in enrolled])
    return render_template(
        "staff/desk/patron.html", patron=found, enrol_form=form,
        card=format_card_number(found.card_number), phone=format_phone(found.phone),
        mail_on=service().desk.mail_on()), status


@bp.get("/desk/patrons/<int:patron_id>")
@requires(Permission.DESK)
def patron(patron_id: int) -> tuple[str, int]:
    return _patron_page(patron_id)


def _back(patron_id: int) -> Response:
    return redirect(url_for("staff.desk.patron", patron_id=patron_id))


def _act(patron_id: int, action: Callable[[], object], done: str) -> Response:
    """Run one action for the patron; a refusal becomes a message on their page."""
    if not ActionForm().validate_on_submit():
        return _back(patron_id)
    try:
        action()
    except RegistryError as refusal:
        if refusal.code not in _ACTION_REFUSALS:
            raise
        flash(message(refusal.code))
    else:
        flash(done)
    return _back(patron_id)


@bp.post("/desk/patrons/<int:patron_id>/enrol")
@requires(Permission.DESK)
@once
def enrol(patron_id: int) -> Response | tuple[str, int]:
    form = DeskEnrolForm()
    if not form.validate_on_submit():
        return _patron_page(patron_id, form, 422)
    slug = form.course.data or ""
    try:
        result = service().desk.enrol(_staff(), patron_id, slug, where=place())
    except RegistryError as refusal:
        if refusal.code not in _ACTION_REFUSALS:
            raise
        form.course.errors = [message(refusal.code)]
        return _patron_page(patron_id, form, 422)
    if result.standing is Standing.WAITING:
        flash(_("Enrolled on the waiting list: place %(position)s.", position=result.position))
    elif result.newly_granted:
        flash(_("Enrolled: the patron now has a seat."))
    else:
        flash(_("The course was added."))
    return _back(patron_id)


# Withdraw, give up the seat, leave the waiting list: each asked once more (GET, or a POST
# without confirm=yes: the one-tap form of an older page), then done.


# What a confirmation page says about one patron: (title, what will happen, button).
Page = Callable[[PatronRecord, str], tuple[str, list[str], str]]


def _confirm(patron_id: int, needs: Callable[[PatronRecord], bool], refusal: str,
             page: Page) -> Response | str:
    """The confirmation page for this patron, or their page saying why there is nothing to
    confirm any more (the course already stopped, the seat already gone)."""
    found = service().desk.patron(_staff(), patron_id, current_language(), where=place())
    if not needs(found):
        flash(message(refusal))
        return _back(patron_id)
    title, lines, button = page(found, f"{found.first_name} {found.last_name}")
    return confirmation(title, lines, url_for("staff.desk.patron", patron_id=patron_id), button)


def _seat_rules() -> tuple[ProgrammeStatus, int]:
    """The programme now and its offer days: what a seat given up becomes."""
    return service().programme_status(), service().policies.settings().offer_days


def _chosen(found: PatronRecord, slug: str) -> Enrolment | None:
    return next((e for e in found.status.enrolments if e.course_slug == slug), None)


@bp.route("/desk/patrons/<int:patron_id>/withdraw/<slug>", methods=["GET", "POST"])
@requires(Permission.DESK)
@once
def withdraw(patron_id: int, slug: str) -> Response | str:
    if ConfirmForm().confirmed():
        return _act(patron_id,
                    lambda: service().desk.withdraw(_staff(), patron_id, slug, where=place()),
                    _("The course was removed."))

    def page(found: PatronRecord, name: str) -> tuple[str, list[str], str]:
        course = _chosen(found, slug)
        return (_("Withdraw %(name)s from “%(title)s”?", name=name,
                  title=course.title if course else slug),
                consequences.withdraw(name, found.status, slug, *_seat_rules()),
                _("Yes, withdraw from this course"))

    return _confirm(patron_id, lambda found: _chosen(found, slug) is not None, "not_enrolled",
                    page)


@bp.route("/desk/patrons/<int:patron_id>/give-up-seat", methods=["GET", "POST"])
@requires(Permission.DESK)
@once
def give_up_seat(patron_id: int) -> Response | str:
    if ConfirmForm().confirmed():
        return _act(patron_id,
                    lambda: service().desk.give_up_seat(_staff(), patron_id, where=place()),
                    _("The seat was given up; it goes to the next in line."))
    return _confirm(
        patron_id, lambda found: found.status.standing is Standing.SEATED, "not_seated",
        lambda found, name: (_("Give up the seat of %(name)s?", name=name),
                             consequences.give_up_seat(name, *_seat_rules()),
                             _("Yes, give up the seat")))


@bp.route("/desk/patrons/<int:patron_id>/leave-waiting-list", methods=["GET", "POST"])
@requires(Permission.DESK)
@once
def leave_waiting_list(patron_id: int) -> Response | str:
    if ConfirmForm().confirmed():
        return _act(patron_id,
                    lambda: service().desk.leave_waiting_list(_staff(), patron_id,
                                                              where=place()),
                    _("The patron has left the waiting list."))
    return _confirm(
        patron_id, lambda found: found.status.standing is Standing.WAITING, "not_waiting",
        lambda found, name: (_("Take %(name)s off the waiting list?", name=name),
                             consequences.leave_waiting_list(name, found.status),
                             _("Yes, leave the waiting list")))


@bp.post("/desk/patrons/<int:patron_id>/receipt/email")
@requires(Permission.DESK)
@once
def email_receipt(patron_id: int) -> Response:
    return _act(patron_id,
                lambda: service().desk.email_receipt(_staff(), patron_id, where=place()),
                _("The receipt will be e-mailed to the patron in a moment."))


def _printed(template: str, language: str, **context: object) -> Response:
    """A page for the patron to take home: in their language, never kept by the browser."""
    with force_locale(language):
        page = render_template(template, print_lang=language, **context)
    response = Response(page, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/desk/patrons/<int:patron_id>/receipt")
@requires(Permission.DESK)
def receipt(patron_id: int) -> Response:
    if not ActionForm().validate_on_submit():
        return _back(patron_id)
    found = service().desk.receipt(_staff(), patron_id, where=place())
    printed_at = moment_text(found.printed_at, found.language)
    return _printed("staff/desk/receipt.html", found.language, receipt=found,
                    card=format_card_number(found.card_number), printed_at=printed_at,
                    patron_id=patron_id)


# --- A new password ---------------------------------------------------------------------------


@bp.route("/desk/patrons/<int:patron_id>/password", methods=["GET", "POST"])
@requires(Permission.DESK)
@once
def password(patron_id: int) -> Response | tuple[str, int]:
    staff = _staff()
    found = service().desk.patron(staff, patron_id, current_language(), where=place())
    form = DeskPasswordForm()
    if form.validate_on_submit():
        try:
            service().desk.set_password(staff, patron_id, form.password.data or "",
                                        where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("The patron's new password is set. They can log in with it now."))
            return _back(patron_id)
    form.password.data = ""
    status = 422 if form.errors else 200
    return render_template("staff/desk/password.html", patron=found, form=form), status


@bp.post("/desk/patrons/<int:patron_id>/one-time-password")
@requires(Permission.DESK)
def one_time_password(patron_id: int) -> Response:
    if not ActionForm().validate_on_submit():
        return redirect(url_for("staff.desk.password", patron_id=patron_id))
    staff = _staff()
    secret = service().desk.set_password(staff, patron_id, None, where=place())
    found = service().desk.patron(staff, patron_id, current_language(), where=place())
    return _printed("staff/desk/one_time.html", found.language, secret=secret,
                    first_name=found.first_name, card=format_card_number(found.card_number),
                    patron_id=patron_id)


# --- Erase -----------------------------------------------------------------------------------


@bp.route("/desk/patrons/<int:patron_id>/erase", methods=["GET", "POST"])
@requires(Permission.DESK)
@once
def erase(patron_id: int) -> Response | tuple[str, int]:
    staff = _staff()
    found = service().desk.patron(staff, patron_id, current_language(), where=place())
    form = ReasonForm()
    if form.validate_on_submit():
        try:
            service().desk.erase(staff, patron_id, form.reason.data or "", where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("The account is erased. A seat it held went to the next in line."))
            return redirect(url_for("staff.desk.search"))
    status = 422 if form.errors else 200
    return render_template("staff/desk/erase.html", patron=found, form=form), status


# --- Correct the patron's details ------------------------------------------------------------


def _fill(form: DeskCorrectForm, found: PatronRecord) -> None:
    """The form as the record is now: what the librarian corrects."""
    form.first_name.data, form.last_name.data = found.first_name, found.last_name
    form.email.data = found.email or ""
    if found.birth_date is not None:
        form.birth_day.data = str(found.birth_date.day)
        form.birth_month.data = str(found.birth_date.month)
        form.birth_year.data = str(found.birth_date.year)
    form.postcode.data, form.phone.data = found.postcode, format_phone(found.phone)
    form.library.data, form.language.data = found.library_code, found.language


@bp.route("/desk/patrons/<int:patron_id>/correct", methods=["GET", "POST"])
@requires(Permission.DESK)
@once
def correct(patron_id: int) -> Response | tuple[str, int]:
    """Correct the patron's details, checked as at sign-up; the reason goes in the audit
    log. A member's name, e-mail address and date of birth are their library's: shown, not
    asked."""
    staff = _staff()
    found = service().desk.patron(staff, patron_id, current_language(), where=place())
    form = DeskCorrectForm()
    form.birth_month.choices = month_options(current_language(), _("Month"))
    if not form.is_submitted():
        _fill(form, found)
    lookalike = False
    if form.validate_on_submit():
        details = PatronDetails(
            first_name=form.first_name.data or "", last_name=form.last_name.data or "",
            email=form.email.data or "",
            birth_date="-".join((p or "").strip() for p in (
                form.birth_year.data, form.birth_month.data, form.birth_day.data)),
            postcode=form.postcode.data or "", library_code=form.library.data or "",
            phone=form.phone.data or "", language=form.language.data or "")
        try:
            done = service().desk.correct(staff, patron_id, details, form.reason.data or "",
                                          lookalike_ok=bool(form.lookalike.data),
                                          where=place())
        except RegistryError as refusal:
            lookalike = refusal.fields.get("lookalike") == "lookalike_account"
            show_refusal(form, refusal, {"birth_date": "birth_day", "library_code": "library"},
                         params={"age": _sign_up_rules(details.library_code).min_age})
        else:
            if not done.changed:
                flash(_("Nothing was changed: the details were already so."))
            else:
                flash(_("The patron's details are corrected."))
            if "email" in done.changed and service().desk.mail_on():
                flash(_("An e-mail tells the patron at the old and the new address."))
            if done.possible_duplicate:
                flash(_("Someone with the same name and date of birth already has an account: "
                        "the pair is in the duplicates queue."))
            return _back(patron_id)
    status = 422 if form.errors else 200
    return render_template("staff/desk/correct.html", patron=found, form=form,
                           library_groups=_library_groups(staff, found),
                           kept=kept_by_library(bool(found.library_card)),
                           lookalike=lookalike or bool(form.lookalike.data)), status


# --- A new account ---------------------------------------------------------------------------


def _library_groups(staff: StaffView, found: PatronRecord | None = None
                    ) -> list[tuple[str, list[tuple[str, str]]]]:
    """The libraries this staff member may create accounts at, by institution; for a
    correction, those the patron may move to (a member: their own institution's only)."""
    lang = current_language()
    return [(inst.names.get(lang, inst.code), [(lib.code, lib.name) for lib in inst.libraries])
            for inst in service().institutions() if staff.serves(inst.code)
            and (found is None or not found.library_card
                 or inst.code == found.institution_code)]


@bp.route("/desk/new", methods=["GET", "POST"])
@requires(Permission.DESK)
@once
def register() -> Response | tuple[str, int]:
    staff = _staff()
    form = DeskRegisterForm()
    form.birth_month.choices = month_options(current_language(), _("Month"))
    if not form.is_submitted():
        form.library.data = staff.library_code or ""
        form.language.data = current_language()
    rules = _sign_up_rules(form.library.data or "")
    follow_sign_up_rules(form, rules)
    # Sent for another library whose institution asks other things: shown again for it,
    # nothing is sent (as at the kiosk).
    changed_library = bool(form.is_submitted() and form.sign_up_shown.data
                           and form.sign_up_shown.data != sign_up_key(rules))
    if not changed_library and form.validate_on_submit():
        data = NewPatron(
            first_name=form.first_name.data or "", last_name=form.last_name.data or "",
            email=form.email.data or "",
            birth_date="-".join((p or "").strip() for p in (
                form.birth_year.data, form.birth_month.data, form.birth_day.data)),
            postcode=form.postcode.data or "", library_code=form.library.data or "",
            phone=form.phone.data or "", password=form.password.data or "",
            language=form.language.data or "", consent=bool(form.consent.data))
        try:
            made, patron_id = service().desk.register(
                staff, data, identity_checked=bool(form.identity_checked.data), where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal, {"birth_date": "birth_day", "library_code": "library"},
                         params={"age": rules.min_age})
        else:
            flash(_("The account is created. Card number: %(card)s",
                    card=format_card_number(made.card_number)))
            if made.possible_duplicate:
                flash(_("Someone with the same name and date of birth already has an account: "
                        "the pair is in the duplicates queue."))
            return redirect(url_for("staff.desk.patron", patron_id=patron_id))
    form.password.data = ""
    form.sign_up_shown.data = sign_up_key(rules)
    status = 422 if form.errors else 200
    return render_template("staff/desk/register.html", form=form, rules=rules,
                           changed_library=changed_library,
                           library_groups=_library_groups(staff)), status


def _sign_up_rules(library_code: str) -> SignUpRules:
    """What a sign-up at this library asks (its institution's rules); the programme's for a
    library not offered (the registry refuses it)."""
    return next((inst.sign_up for inst in service().institutions()
                 if any(lib.code == library_code for lib in inst.libraries)),
                SignUpRules(min_age=service().min_age))
