"""The staff pages: the librarian's desk, the coordinator's console, branch IT's page.

They run where the registry runs in-process (the embedded default, and the central registry
server), under /<lang>/staff/. A staff log-in is separate from a patron's: its token sits in
the browser session under its own key, and every view names the one permission it needs
(kiosk.registry.roles holds the table of who has which). A librarian's take-over on a kiosk
keeps its token under another key (kiosk.terminal.assist): on the kiosk app, where these pages
are mounted too, a take-over handed back to the patron must never open them.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask, current_app, request
from flask_babel import gettext as _

from ..registry.api import crash_response, http_error_response
from . import (
    accounts,
    audit,
    auth,
    courses,
    dashboard,
    desk,
    duplicates,
    it,
    libraries,
    pending,
    practice,
    seats,
    settings,
)
from .base import NAV, NavItem, bp, forbidden, staff_error

# The staff page modules, in the order of the menu: the desk, the console, branch IT.
PAGES = (auth, desk, pending, duplicates, seats, settings, libraries, courses, dashboard, audit,
         accounts, it, practice)
_ATTACHED: set[str] = set()


def _menu_position(item: NavItem) -> int:
    """The menu follows PAGES, not the order in which the page modules were imported (each
    adds its own links as it loads): "staff.desk.search" is on the page whose blueprint is
    "desk"."""
    return [page.bp.name for page in PAGES].index(item.endpoint.split(".")[1])


NAV.sort(key=_menu_position)  # stable: a page's own links keep their order


_STAFF_PATH = re.compile(r"^/(?:nl|fr|en)/staff(?:/|$)")


def on_staff_page() -> bool:
    """On the registry server only /<lang>/staff/… are pages; everything else (the API, the
    probes, an unknown path a terminal asked for) is answered in JSON."""
    return bool(_STAFF_PATH.match(request.path))


def http_error(error: Any) -> Any:
    """On the registry server: JSON for the API, a staff page for the rest."""
    if not on_staff_page():
        return http_error_response(error)
    if error.code == 404:
        return staff_error(_("Not found"), _("This page does not exist."), 404)
    if error.code == 403:
        return forbidden(error)
    return staff_error(_("This did not work"), _("Please try again."), error.code or 400)


def crash(error: Exception) -> Any:
    if not on_staff_page():
        return crash_response()
    current_app.logger.exception("unhandled error")
    return staff_error(_("Something went wrong"), _("Please try again."), 500)


def init_app(app: Flask) -> None:
    """Mount the staff pages; only where the registry service runs in this process."""
    if "registry_service" not in app.extensions:
        return
    for module in PAGES:
        # Children are attached once, before the first app registers the parent (Flask
        # refuses set-up on a blueprint already registered); later apps reuse them.
        if module.bp is not bp and module.bp.name not in _ATTACHED:
            bp.register_blueprint(module.bp)
            _ATTACHED.add(module.bp.name)
    app.register_blueprint(bp)


