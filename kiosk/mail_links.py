"""The link at the foot of the new-course e-mails (kiosk.registry.alerts): it stops them
without a log-in, on the registry's host (PUBLIC_URL), in the e-mail's language.

- GET shows one button and changes nothing: mail scanners and link previews follow links.
- POST stops every such e-mail of the link's patron; the same address takes the RFC 8058
  one-click POST a mail program sends for `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.

CSRF is off for this one address, on purpose: a mail program's one-click POST carries no form
token, and none is needed. What authorises the POST is the signed token in the address itself
(the registry's secret key, a salt of its own), which only the patron's own e-mail holds; a
page elsewhere could make a browser post it only by knowing that address, and then all it can
do is what the address already allows, to stop e-mails. It reads nothing and shows nothing
of the account.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, render_template, request
from flask_babel import gettext as _

from .i18n import current_language
from .registry.domain import RegistryError
from .registry.services import RegistryService
from .security import csrf

bp = Blueprint("mail_links", __name__, url_prefix="/<lang:lang>")


def _service() -> RegistryService:
    return current_app.extensions["registry_service"]


@bp.route("/new-courses/stop/<token>", methods=["GET", "POST"])
def stop(token: str) -> tuple[str, int]:
    alerts = _service().alerts
    if alerts.patron_of(token) is None:
        return _page("invalid"), 400
    if request.method == "POST":
        try:
            alerts.stop_by_link(token, where="e-mail link")
        except RegistryError as refusal:
            if refusal.code != "invalid_link":
                raise
            return _page("invalid"), 400
        return _page("stopped"), 200
    return _page("ask"), 200


def _page(state: str) -> str:
    return render_template("alerts/stop.html", state=state, lang=current_language(),
                           title=_("Stop e-mails about new courses"))


def init_app(app: Flask) -> None:
    """Where the registry runs in this process (the registry server, an embedded terminal)."""
    if "registry_service" not in app.extensions:
        return
    csrf.exempt(bp)
    app.register_blueprint(bp)
