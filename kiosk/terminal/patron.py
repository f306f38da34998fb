"""The logged-in patron as the terminal knows them, and Flask-Login's loader for them.

Apart from the package (kiosk/terminal/__init__.py), which mounts the pages: the log-in page
(kiosk.terminal.account) makes a Patron without importing what mounts it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin
from werkzeug.wrappers import Response

from ..registry.domain import PatronView, RegistryError
from ..registry_setup import registry

login_manager = LoginManager()
login_manager.session_protection = "strong"


@dataclass
class Patron(UserMixin):
    """The logged-in patron as the terminal knows them: a registry session token and a name."""

    token: str
    view: PatronView

    def get_id(self) -> str:
        return self.token


@login_manager.user_loader
def load_patron(token: str) -> Patron | None:
    try:
        return Patron(token, registry().whoami(token))
    except RegistryError as refusal:
        if refusal.code == "session_invalid":
            return None
        raise  # unreachable registry: an honest "try again" page, not a silent log-out


@login_manager.unauthorized_handler
def ask_to_log_in() -> Response:
    flash(_("Please log in first. Then we bring you back here."))
    return redirect(url_for("account.login", next=request.full_path.rstrip("?")))
