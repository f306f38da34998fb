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
from ..registry.http_client import UNAVAILABLE as UNREACHABLE
from ..registry_setup import registry
from .messages import UNAVAILABLE

login_manager = LoginManager()
login_manager.session_protection = "strong"


@dataclass
class Patron(UserMixin):
    """The logged-in patron as the terminal knows them: a registry session token and who it
    belongs to — `known` is None when the registry could not be asked during this request.

    Such a patron stays logged in (the token is kept: when the registry is back, the visit
    goes on) and the page still has its header, log-out and idle timer; only what needs the
    patron's details (`view`) answers "unreachable", which the calm error page shows."""

    token: str
    known: PatronView | None

    @property
    def view(self) -> PatronView:
        if self.known is None:
            raise RegistryError(UNREACHABLE)
        return self.known

    def get_id(self) -> str:
        return self.token


@login_manager.user_loader
def load_patron(token: str) -> Patron | None:
    try:
        return Patron(token, registry().whoami(token))
    except RegistryError as refusal:
        if refusal.code == "session_invalid":
            return None
        if refusal.code in UNAVAILABLE:
            # Not a log-out, and not a crash of the page (or of the error page, whose header
            # asks again): the patron is kept, unconfirmed, for this request.
            return Patron(token, None)
        raise


@login_manager.unauthorized_handler
def ask_to_log_in() -> Response:
    flash(_("Please log in first. Then we bring you back here."))
    return redirect(url_for("account.login", next=request.full_path.rstrip("?")))
