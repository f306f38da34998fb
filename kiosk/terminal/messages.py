"""Registry codes in the patron's language: one table for fields, pages and the API's codes."""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm

from ..i18n import time_text
from ..registry.domain import RegistryError

# Registry answers that mean "not now": the patron may simply try again.
UNAVAILABLE = {"unavailable", "busy", "not_set_up", "terminal_unauthorized", "terminal_revoked",
               "member_system_unavailable"}

MESSAGES = {
    "required": _l("Please fill this in."),
    "too_long": _l("This is too long. Please make it shorter."),
    "invalid_characters": _l("This contains characters we cannot accept."),
    "email_invalid": _l("This does not look like an e-mail address. Example: name@example.be"),
    "email_taken": _l("You already have an account with this e-mail address."),
    "birth_date_invalid": _l("Please check your date of birth."),
    "too_young": _l("You must be at least %(age)s years old to take part."),
    "postcode_invalid": _l("A Belgian postcode has 4 digits, for example 2000."),
    "library_unknown": _l("Please choose your library from the list."),
    "phone_invalid": _l("This phone number does not look right. Example: 0470 12 34 56"),
    "password_too_short": _l("Your password needs at least 8 characters."),
    "consent_required": _l("Please confirm that you have read the privacy statement."),
    "language_unknown": _l("Please choose a language."),
    "login_failed": _l("The card number, e-mail address, password or PIN is not right."),
    "card_needs_attention": _l(
        "Your library card needs attention at the desk. A librarian can help you with it, "
        "then you can log in here."),
    "member_system_unavailable": _l(
        "We cannot check library cards right now. Nothing was lost. Please try again in a "
        "few minutes, or ask a librarian."),
    "pin_wrong": _l("This PIN is not right. Nothing was erased."),
    "account_locked": _l(
        "Too many wrong passwords. For your safety this account is locked until %(time)s. "
        "A librarian can help you."
    ),
    "session_invalid": _l("Your visit has ended. Please log in again."),
    "course_not_found": _l("We cannot find this course. It may no longer be offered."),
    "not_enrolled": _l("You are not enrolled in this course."),
    "not_seated": _l("You do not have a seat at the moment."),
    "not_waiting": _l("You are not on the waiting list."),
    "password_wrong": _l("This password is not right. Nothing was erased."),
    "unavailable": _l(
        "The course service cannot be reached right now. Nothing was lost. Please try again "
        "in a moment, or ask a librarian."
    ),
    "busy": _l("It is very busy right now. Nothing was lost. Please try again in a moment."),
    "not_set_up": _l("This kiosk is not ready yet. Please ask a librarian."),
    "terminal_unauthorized": _l("This kiosk is not set up correctly. Please ask a librarian."),
    "terminal_revoked": _l("This kiosk is not set up correctly. Please ask a librarian."),
    # --- Staff pages -------------------------------------------------------------------
    "not_in_future": _l("Please choose a moment in the future."),
    "username_invalid": _l(
        "Use at least 3 lower-case letters, digits, dots, hyphens or underscores."),
    "username_taken": _l("This user name is already in use."),
    "role_unknown": _l("Please choose a role."),
    "staff_password_too_short": _l("A staff password needs at least 12 characters."),
    "institution_unknown": _l("Please choose an institution from the list."),
    "library_not_in_institution": _l("This library does not belong to that institution."),
    "staff_session_invalid": _l("Your staff session has ended. Please log in again."),
    # --- Seats, waiting list and audit (coordinator's console) -------------------------
    "cap_invalid": _l("Please give a whole number of 0 or more."),
    "position_invalid": _l("Please give a place between 1 and %(last)s."),
    "preview_stale": _l(
        "The waiting list changed since the preview. Nothing was changed: please check the "
        "new preview and confirm again."),
    "forbidden": _l("Your staff role does not allow this."),
    # --- Member systems (library cards) ------------------------------------------------
    "host_invalid": _l("Give a host name or address, without spaces."),
    "port_invalid": _l("Give a port between 1 and 65535."),
    "timeout_invalid": _l("Give a number of seconds between 0.5 and 30."),
    "password_file_needed": _l("A SIP account needs the file that holds its password."),
    "password_file_not_absolute": _l(
        "Give the file's full path, for example /etc/kiosk/sip-ant.secret."),
    "text_invalid": _l("This may not contain | or control characters."),
    # --- Catalogue (coordinator's console) ---------------------------------------------
    "slug_invalid": _l(
        "Use only lower-case letters a-z, digits and hyphens, for example word-basics."),
    "slug_taken": _l("Another course already uses this web address name."),
    "slug_cannot_generate": _l(
        "Please type one: the English title has no letters or digits to make it from."),
    "category_unknown": _l("Please choose a category from the list."),
    "alerts_consent_required": _l("Tick the box to say you want these e-mails."),
    "alerts_need_email": _l("Your account has no e-mail address. A librarian can add one "
                            "at the desk."),
    "hours_invalid": _l("Please give a whole number of hours between 1 and 999."),
    "course_position_invalid": _l("Please give a whole number between 0 and 9999."),
    "date_invalid": _l("This is not a date. Example: 31/03/2026"),
    "until_before_from": _l("The last day cannot be before the first day."),
    "date_in_past": _l("This day has passed. Please choose today or a later day."),
    "featured_overlap": _l(
        "“%(title)s” is already the module of the month from %(starts)s until %(ends)s. "
        "Choose other days, or remove that one first."),
    "course_retired": _l("This course is retired. Bring it back first."),
    # --- Desk (librarian's assisted mode) and choosing a new password ------------------
    "card_invalid": _l("This card number is not right: a card has 13 digits. Please check "
                       "them."),
    "birth_date_needed": _l("To find someone by name, also give their date of birth."),
    # A day typed on a staff page (kiosk.staff.forms.DayField).
    "day_invalid": _l("Type the date as day/month/year, for example 03/04/1950."),
    "library_not_served": _l("You can only create accounts at the libraries of your own "
                             "institution."),
    "current_password_wrong": _l("This is not your current password."),
    # --- Correcting a patron's details (kiosk.registry.corrections) -----------------------
    "library_out_of_reach": _l("Choose a library of your own institution."),
    "lookalike_account": _l("Another account has the same name and date of birth. If this "
                            "is someone else, tick the box to save anyway: the two accounts "
                            "go to the duplicates queue."),
    "email_from_library": _l("Your e-mail address comes from your library: ask there to "
                             "change it."),
    "password_change_required": _l("Please choose your own password first. Nothing was "
                                   "changed."),
    "password_unchanged": _l("Please choose a password that is different from the one you "
                             "were given."),
    "mail_not_set_up": _l("E-mail is not set up for this registry, so nothing can be sent."),
    # --- Verification and duplicates ---------------------------------------------------
    "not_pending": _l("This account no longer waits for an identity check."),
    "keep_unknown": _l("Please choose which of the two accounts to keep."),
    "duplicate_resolved": _l("Someone has already dealt with this warning."),
    # --- Take-over (assisted mode on a kiosk) --------------------------------------------
    "staff_forbidden": _l("Your staff role does not include helping patrons at a kiosk."),
    "staff_only": _l("Only a librarian in assisted mode can confirm an identity document."),
    # --- Promotion policy, fair share, opening days (coordinator's settings; seat offers) -
    "promotion_unknown": _l("Please choose how a freed seat is given."),
    "offer_days_invalid": _l("Please give a whole number of opening days from 1 to 30."),
    "quota_invalid": _l("Please give a whole number of 0 or more, or leave it empty for no "
                        "quota."),
    "opening_days_required": _l("Please tick at least one opening day."),
    "opening_days_invalid": _l("Please tick days of the week only."),
    "verification_unknown": _l("Please choose a verification policy."),
    "pending_days_invalid": _l("Please give a whole number of days from 1 to 365."),
    "no_offer": _l("There is no seat offer for you at the moment."),
    "offer_expired": _l("The time to take this seat has passed: it went to the next person "
                        "in line."),
    # --- Institutions and libraries (the coordinator's console) --------------------------
    "institution_code_invalid": _l("Use 2 to 12 capital letters or digits, starting with a "
                                   "letter, for example ANT."),
    "institution_code_taken": _l("Another institution already has this code."),
    "card_prefix_invalid": _l("Use the 4 digits the institution's card numbers start with, "
                              "for example 2101."),
    "card_prefix_taken": _l("Another institution's card numbers already start with these "
                            "digits."),
    "library_code_invalid": _l("Use capital letters, digits and hyphens, for example "
                               "ANT-PERMEKE."),
    "library_code_taken": _l("Another library already has this code."),
    # An institution's sign-up rules (kiosk.staff.libraries).
    "choice_unknown": _l("Please choose one of the options."),
    "min_age_invalid": _l("Please give a whole number of years from %(lowest)s to "
                          "%(highest)s."),
}


# "required" said of one field: what to type or choose there, not a generic "fill this in"
# (read in the error summary as "<label>: <message>"). Keyed by the form field's name, or by
# the registry's name for it where they differ (birth_date, library_code).
REQUIRED = {
    "first_name": _l("Type the first name."),
    "last_name": _l("Type the last name."),
    "email": _l("Type the e-mail address."),
    "birth_date": _l("Type the day, month and year."),
    "postcode": _l("Type the postcode."),
    "phone": _l("Type the phone number."),
    "library": _l("Choose the library from the list."),
    "library_code": _l("Choose the library from the list."),
    "password": _l("Type the password."),
    "identifier": _l("Type your library card number or your e-mail address."),
    "old_password": _l("Type the password you were given."),
    "new_password": _l("Type the password you choose."),
    "username": _l("Type the staff user name."),
    "display_name": _l("Type the name."),
    "query": _l("Type a card number, an e-mail address or a name."),
    "course": _l("Choose a course from the list."),
    "reason": _l("Type the reason."),
    "host": _l("Type the server's host name or address."),
    "role": _l("Choose a role."),
    "institution_code": _l("Choose an institution from the list."),
    "until": _l("Choose the last day and time."),
    "position": _l("Type the new place in the line."),
    # The coordinator's console: courses, the module of the month, institutions and
    # libraries; IT's maintenance message (one text per language).
    "title_nl": _l("Type the title in Dutch."),
    "title_fr": _l("Type the title in French."),
    "title_en": _l("Type the title in English."),
    "summary_nl": _l("Type the summary in Dutch."),
    "summary_fr": _l("Type the summary in French."),
    "summary_en": _l("Type the summary in English."),
    "category": _l("Choose a category from the list."),
    "hours": _l("Type the number of hours."),
    "featured_from": _l("Choose the first day."),
    "featured_until": _l("Choose the last day."),
    "name_nl": _l("Type the name in Dutch."),
    "name_fr": _l("Type the name in French."),
    "name_en": _l("Type the name in English."),
    "library_name": _l("Type the library's name."),
    "min_age": _l("Type the minimum age."),
    "nl": _l("Type the message in Dutch."),
    "fr": _l("Type the message in French."),
    "en": _l("Type the message in English."),
}


def required(name: str) -> str:
    """The "required" message for one field (lazy: for a form's validators). A name without
    its own message is a KeyError when the form is defined, so no form can fall back to the
    generic "fill this in"."""
    return REQUIRED[name]


def field_message(name: str, code: str, **params: object) -> str:
    """A registry's code for the field `name`, in the page's language."""
    if code == "required" and name in REQUIRED:
        return str(REQUIRED[name])
    return message(code, **params)


def message(code: str, **params: object) -> str:
    text = MESSAGES.get(code)
    if text is None:
        return str(_l("Something went wrong. Please try again or ask a librarian."))
    return str(text) % params if params else str(text)


def account_locked(refusal: RegistryError) -> str:
    """"Locked until 14:05": the end of a lock in Belgian time, in the page's language."""
    until = refusal.detail.get("until")
    return message("account_locked", time=time_text(until) if isinstance(until, datetime) else "–")


def refusal_on_form(form: FlaskForm, refusal: RegistryError) -> str | None:
    """A registry's refusal of a patron's form, shown where they look: each refused field's
    message under that field ("invalid"); for a registry that cannot answer now, the calm
    sentence to show above the form (answered). Any other refusal is not the form's: raised."""
    if refusal.code == "invalid":
        for name, code in refusal.fields.items():
            field = getattr(form, name, None)
            if field is not None:
                field.errors = [*field.errors, field_message(name, code)]
        return None
    if refusal.code in UNAVAILABLE:
        return message(refusal.code)
    raise refusal
