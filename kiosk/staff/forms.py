"""Staff forms: CSRF and type coercion; the rules live in the registry."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    DecimalField,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Optional

from ..registry.days import parse_day
from ..registry.member_system import DEFAULT_PORT, DEFAULT_TIMEOUT
from ..terminal.forms import DetailsForm, RegisterForm, no_control_characters, options
from ..terminal.messages import MESSAGES, required


class DayField(StringField):
    """A day typed as Belgians write it (03/04/1950; also 3-4-1950 or 1950-04-03): a text box.
    The browser's date box orders day and month as the browser's locale says, whatever the
    page's language, and differs from browser to browser; a typed day reads the same in every
    language. `data` is a date, or None when left empty."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = str(valuelist[0]).strip() if valuelist else ""
        self.data = parse_day(text) if text else None
        if text and self.data is None:
            raise ValueError(str(MESSAGES["day_invalid"]))

    def _value(self) -> str:
        if self.raw_data:  # as typed, mistakes included, so it can be corrected
            return str(self.raw_data[0])
        return self.data.strftime("%d/%m/%Y") if isinstance(self.data, date) else ""


class MaintenanceForm(FlaskForm):
    nl = TextAreaField(_l("Message in Dutch"), validators=[no_control_characters],
                       render_kw={"lang": "nl", "rows": 3})
    fr = TextAreaField(_l("Message in French"), validators=[no_control_characters],
                       render_kw={"lang": "fr", "rows": 3})
    en = TextAreaField(_l("Message in English"), validators=[no_control_characters],
                       render_kw={"lang": "en", "rows": 3})
    until = DateTimeLocalField(_l("Until (Belgian time)"), format="%Y-%m-%dT%H:%M",
                               validators=[Optional()])


class MemberSystemForm(FlaskForm):
    """An institution's member system (SIP2); the registry checks the values."""

    host = StringField(_l("Server (host name or address)"),
                       validators=[DataRequired(required("host")), no_control_characters],
                       render_kw={"autocomplete": "off", "spellcheck": "false"})
    port = IntegerField(_l("Port"), default=DEFAULT_PORT,
                        validators=[InputRequired(MESSAGES["port_invalid"])])
    tls = BooleanField(_l("Over TLS (encrypted)"))
    login_user = StringField(_l("SIP account (if the member system asks for one)"),
                             validators=[no_control_characters],
                             render_kw={"autocomplete": "off", "spellcheck": "false"})
    password_file = StringField(
        _l("File that holds the SIP account's password, on the registry's server"),
        validators=[no_control_characters],
        render_kw={"autocomplete": "off", "spellcheck": "false"})
    location_code = StringField(_l("Location code (CP)"), validators=[no_control_characters])
    sip_institution = StringField(_l("Institution code the member system expects (AO)"),
                                  validators=[no_control_characters])
    timeout = DecimalField(_l("Seconds to wait for an answer"), default=DEFAULT_TIMEOUT,
                           places=None,
                           validators=[InputRequired(MESSAGES["timeout_invalid"])])


class ReasonForm(FlaskForm):
    """A button whose action must be explained for the audit log."""

    reason = StringField(_l("Reason"), validators=[DataRequired(required("reason")),
                                                   no_control_characters],
                         render_kw={"maxlength": 200})


# --- The desk ---------------------------------------------------------------------------


class DeskSearchForm(FlaskForm):
    query = StringField(_l("Card number, e-mail address or name"),
                        validators=[DataRequired(required("query")), no_control_characters],
                        render_kw={"autocomplete": "off", "autocapitalize": "none",
                                   "spellcheck": "false", "autofocus": True, "maxlength": 254})
    birth_date = DayField(_l("Date of birth (needed to search by name)"),
                          validators=[Optional()], render_kw={"autocomplete": "off"})


class DeskEnrolForm(FlaskForm):
    course = SelectField(_l("Course"), choices=[], validate_choice=False,
                         validators=[DataRequired(required("course"))])


class StaffPasswordForm(FlaskForm):
    """A staff member's own new password, after the current one (kiosk.staff.auth)."""

    old_password = PasswordField(_l("Your current password"),
                                 validators=[InputRequired(required("old_password")),
                                             no_control_characters],
                                 render_kw={"autocomplete": "current-password"})
    new_password = PasswordField(_l("New password"),
                                 validators=[InputRequired(required("new_password")),
                                             no_control_characters],
                                 render_kw={"autocomplete": "new-password"})


class DeskPasswordForm(FlaskForm):
    password = PasswordField(_l("New password, typed by the patron"),
                             validators=[InputRequired(required("password")),
                                         no_control_characters],
                             render_kw={"autocomplete": "new-password"})


class DeskRegisterForm(RegisterForm):
    """The kiosk's registration form, filled in at the desk for the patron."""

    library = StringField(_l("Library"))  # rendered as a grouped <select>
    password = PasswordField(_l("Password, typed by the patron"),
                             render_kw={"autocomplete": "new-password"})
    language = SelectField(_l("The patron's language"),
                           choices=options([("nl", "Nederlands"), ("fr", "Français"),
                                            ("en", "English")]), default="nl")
    consent = BooleanField(_l("The patron has read the privacy statement and agrees."))
    identity_checked = BooleanField(_l("Identity document checked"))


class DeskCorrectForm(DetailsForm):
    """The patron's details, corrected at the desk: sign-up's fields, and why."""

    library = StringField(_l("Library"))  # rendered as a grouped <select>
    language = SelectField(_l("The patron's language"),
                           choices=options([("nl", "Nederlands"), ("fr", "Français"),
                                            ("en", "English")]), validate_choice=False)
    # Checked by the registry with the details (clean_reason), so every problem shows at once.
    reason = StringField(_l("Reason"), validators=[no_control_characters],
                         render_kw={"maxlength": 200})
    lookalike = BooleanField(_l("This is someone else with the same name and date of birth: "
                                "save anyway"))


# --- Staff accounts (coordinators) ----------------------------------------------------------


class StaffAccountForm(FlaskForm):
    username = StringField(_l("Staff user name"),
                           validators=[no_control_characters],
                           render_kw={"autocomplete": "off", "autocapitalize": "none",
                                      "spellcheck": "false", "maxlength": 60})
    display_name = StringField(_l("Name"), validators=[no_control_characters],
                               render_kw={"autocomplete": "off", "maxlength": 80})
    role = SelectField(_l("Role"), choices=[], validate_choice=False)
    library = SelectField(_l("Library"), choices=[], validate_choice=False)
    password = PasswordField(_l("Password"), validators=[no_control_characters],
                             render_kw={"autocomplete": "new-password"})
