"""Staff forms: CSRF and type coercion; the rules live in the registry."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Optional

from ..terminal.forms import no_control_characters
from ..terminal.messages import MESSAGES


class StaffLoginForm(FlaskForm):
    username = StringField(
        _l("Staff user name"),
        validators=[DataRequired(MESSAGES["required"]), no_control_characters],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false",
                   "autofocus": True},
    )
    password = PasswordField(_l("Password"),
                             validators=[InputRequired(MESSAGES["required"]),
                                         no_control_characters],
                             render_kw={"autocomplete": "current-password"})


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
