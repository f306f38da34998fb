"""Forms: CSRF and type coercion here; the rules on values live in the registry's domain."""

from __future__ import annotations

from collections.abc import Iterable

from babel.dates import get_month_names
from flask import request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    HiddenField,
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TelField,
)
from wtforms.validators import DataRequired, InputRequired, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..registry.domain import LOCALES, FieldRule, SignUpRules, has_control_chars
from .messages import MESSAGES, required


def options(pairs: Iterable[tuple[object, object]]) -> list[SelectChoice]:
    """(value, label) pairs as a select's choices (wtforms 3.4 drops plain tuples)."""
    return [SelectChoice(str(value), str(label)) for value, label in pairs]


def month_options(lang: str, placeholder: str) -> list[SelectChoice]:
    """The date of birth's month: its name in the page's language, the placeholder first."""
    months = get_month_names("wide", locale=LOCALES[lang])
    return options([("", placeholder), *((str(m), months[m]) for m in range(1, 13))])


def no_control_characters(form: FlaskForm, field: Field) -> None:
    """Refused here, at the edge: a NUL byte would make PostgreSQL fail the look-up, and no
    account can hold such characters (registration refuses them). A tab or line end around
    the value (a scanner's suffix) is only whitespace."""
    if field.data and has_control_chars(field.data.strip()):
        raise ValidationError(MESSAGES["invalid_characters"])


class DetailsForm(FlaskForm):
    """A patron's details as sign-up asks them: the registration form's fields, and a
    correction's at the desk (kiosk.staff.forms.DeskCorrectForm)."""

    first_name = StringField(_l("First name"), render_kw={"autocomplete": "off"})
    last_name = StringField(_l("Last name"), render_kw={"autocomplete": "off"})
    email = EmailField(_l("E-mail address"), render_kw={"autocomplete": "off"})
    birth_day = StringField(_l("Day"), render_kw={"inputmode": "numeric", "maxlength": 2})
    birth_month = SelectField(_l("Month"), choices=[], validate_choice=False)
    birth_year = StringField(_l("Year"), render_kw={"inputmode": "numeric", "maxlength": 4})
    postcode = StringField(
        _l("Postcode"), render_kw={"inputmode": "numeric", "maxlength": 4, "autocomplete": "off"}
    )
    library = StringField(_l("Your library"))  # rendered as a grouped <select>
    phone = TelField(_l("Phone number (optional)"), render_kw={"autocomplete": "off"})


class RegisterForm(DetailsForm):
    password = PasswordField(_l("Choose a password"), render_kw={"autocomplete": "new-password"})
    consent = BooleanField(_l("I have read the privacy statement and I agree."))
    # Assisted mode only (a librarian at the kiosk): shown and read only then.
    identity_checked = BooleanField(_l("Identity document checked"))
    # The sign-up rules the form was shown with (`sign_up_key`): sent for another library
    # with other rules, it is shown again for that one instead of being sent on.
    sign_up_shown = HiddenField()


def sign_up_key(rules: SignUpRules) -> str:
    """The rules a form was shown with, as its hidden field holds them."""
    return f"{rules.phone}:{rules.postcode}:{rules.min_age}"


def follow_sign_up_rules(form: RegisterForm, rules: SignUpRules) -> None:
    """The labels of the fields an institution may ask or not: "(optional)" only when it is.
    (Whether a field is shown at all is the template's: `rules` goes to it too.)"""
    form.phone.label.text = str(_l("Phone number (optional)") if rules.phone is
                                FieldRule.OPTIONAL else _l("Phone number"))
    form.postcode.label.text = str(_l("Postcode (optional)") if rules.postcode is
                                   FieldRule.OPTIONAL else _l("Postcode"))


class LoginForm(FlaskForm):
    # Empty fields are refused here: they never reach the registry, so they never count as a
    # wrong password towards the account's lock. A blank card number is empty; a password of
    # spaces is a password.
    identifier = StringField(
        _l("Library card number or e-mail address"),
        validators=[DataRequired(required("identifier")), no_control_characters],
        render_kw={"autofocus": True, "autocomplete": "off", "autocapitalize": "none",
                   "spellcheck": "false"},
    )
    password = PasswordField(_l("Password"),
                             validators=[InputRequired(required("password")),
                                         no_control_characters],
                             render_kw={"autocomplete": "current-password"})


class EraseForm(FlaskForm):
    password = PasswordField(_l("Your password"),
                             validators=[InputRequired(required("password")),
                                         no_control_characters],
                             render_kw={"autocomplete": "current-password"})


class AlertsForm(FlaskForm):
    """E-mails about new courses: a box per category (choices from the registry, checked
    there), and a consent of their own, never ticked in advance."""

    categories = SelectMultipleField(_l("Subjects"), choices=[], validate_choice=False,
                                     widget=ListWidget(prefix_label=False),
                                     option_widget=CheckboxInput())
    consent = BooleanField(_l("Yes, send me an e-mail about new courses in these subjects. "
                              "I can stop at any time."))


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


# The value of the confirmation page's button: a change that cannot be undone is made only
# when the form sent says so (templates/macros.html, confirm_step).
CONFIRM_FIELD = "confirm"
CONFIRMED = "yes"


class ConfirmForm(FlaskForm):
    """The second step of a change that cannot be undone (a seat given away, a course
    stopped or retired, a terminal revoked): done only when sent from its confirmation page,
    with CSRF and `confirm=yes`. Sent without it (a one-tap form of an older page, a script),
    nothing is done and the confirmation is shown, so keyboard and screen-reader users meet
    the same second step as everyone."""

    def confirmed(self) -> bool:
        return bool(self.validate_on_submit()) and \
            request.form.get(CONFIRM_FIELD) == CONFIRMED


class ChangePasswordForm(FlaskForm):
    """The patron's own new password (after a printed one-time password, before all else)."""

    old_password = PasswordField(_l("Your current password (the one you were given)"),
                                 validators=[InputRequired(required("old_password")),
                                             no_control_characters],
                                 render_kw={"autocomplete": "current-password"})
    new_password = PasswordField(_l("Choose your own password"),
                                 validators=[InputRequired(required("new_password")),
                                             no_control_characters],
                                 render_kw={"autocomplete": "new-password"})


class MyDetailsForm(FlaskForm):
    """The patron's own e-mail address and the language of their e-mails ("My data"); the
    password only when the e-mail address changes (the registry says so)."""

    email = EmailField(_l("E-mail address"), validators=[no_control_characters],
                       render_kw={"autocomplete": "off", "autocapitalize": "none",
                                  "spellcheck": "false"})
    language = SelectField(_l("Language of our e-mails"),
                           choices=options([("nl", "Nederlands"), ("fr", "Français"),
                                            ("en", "English")]), validate_choice=False)
    password = PasswordField(_l("Your password"),
                             validators=[no_control_characters],
                             render_kw={"autocomplete": "current-password"})


class StaffLoginForm(FlaskForm):
    """A librarian's log-in: on the staff pages (kiosk.staff.auth) and for a take-over on the
    kiosk (kiosk.terminal.assist), which so needs nothing of kiosk.staff."""

    username = StringField(
        _l("Staff user name"),
        validators=[DataRequired(required("username")), no_control_characters],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false",
                   "autofocus": True},
    )
    password = PasswordField(_l("Password"),
                             validators=[InputRequired(required("password")),
                                         no_control_characters],
                             render_kw={"autocomplete": "current-password"})
