"""Registry codes in the patron's language: one table for fields, pages and the API's codes."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

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
    "login_failed": _l("The card number, e-mail address or password is not right."),
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
}


def message(code: str, **params: object) -> str:
    text = MESSAGES.get(code)
    if text is None:
        return str(_l("Something went wrong. Please try again or ask a librarian."))
    return str(text) % params if params else str(text)
