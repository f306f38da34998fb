"""Staff forms: CSRF and type coercion; the rules live in the registry."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Optional

from ..terminal.forms import RegisterForm, no_control_characters, options
from ..terminal.messages import MESSAGES


class MaintenanceForm(FlaskForm):
    nl = TextAreaField(_l("Message in Dutch"), validators=[no_control_characters],
                       render_kw={"lang": "nl", "rows": 3})
    fr = TextAreaField(_l("Message in French"), validators=[no_control_characters],
                       render_kw={"lang": "fr", "rows": 3})
    en = TextAreaField(_l("Message in English"), validators=[no_control_characters],
                       render_kw={"lang": "en", "rows": 3})
    until = DateTimeLocalField(_l("Until (Belgian time)"), format="%Y-%m-%dT%H:%M",
                               validators=[Optional()])


class ReasonForm(FlaskForm):
    """A button whose action must be explained for the audit log."""

    reason = StringField(_l("Reason"), validators=[DataRequired(MESSAGES["required"]),
                                                   no_control_characters],
                         render_kw={"maxlength": 200})


# --- The desk ---------------------------------------------------------------------------


class DeskSearchForm(FlaskForm):
    query = StringField(_l("Card number, e-mail address or name"),
                        validators=[DataRequired(MESSAGES["required"]), no_control_characters],
                        render_kw={"autocomplete": "off", "autocapitalize": "none",
                                   "spellcheck": "false", "autofocus": True, "maxlength": 254})
    birth_date = DateField(_l("Date of birth (needed to search by name)"),
                           validators=[Optional()])


class DeskEnrolForm(FlaskForm):
    course = SelectField(_l("Course"), choices=[], validate_choice=False,
                         validators=[DataRequired(MESSAGES["required"])])


class DeskPasswordForm(FlaskForm):
    password = PasswordField(_l("New password, typed by the patron"),
                             validators=[InputRequired(MESSAGES["required"]),
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
