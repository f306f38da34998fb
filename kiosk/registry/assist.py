"""Assisted mode: a librarian takes over the kiosk a patron is using, and everything done then
is tagged "assisted by <staff> at <library>".

The terminal (in-process or over HTTP) only holds a staff session token; this class turns
that token into the staff member who may assist, and answers the one refusal of its own:
``staff_forbidden`` for a role that does not work at the desk (an IT admin).
"""

from __future__ import annotations

from .domain import RegistryError
from .roles import Permission, StaffView
from .staff import StaffAccounts


class Assistance:
    def __init__(self, staff: StaffAccounts):
        self.staff = staff

    def start(self, username: str, password: str, where: str = "") -> tuple[str, StaffView]:
        """Log a librarian in on a kiosk; only desk roles may take over."""
        token, view = self.staff.login(username, password, where=where)
        if not view.can(Permission.DESK):
            self.staff.logout(token)  # no idle staff session left behind on the kiosk
            raise RegistryError("staff_forbidden")
        return token, view

    def assistant(self, token: str) -> StaffView:
        """The staff member behind a live session, if they may act for patrons."""
        view = self.staff.whois(token)
        if not view.can(Permission.DESK):
            raise RegistryError("staff_forbidden")
        return view
