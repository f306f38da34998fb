"""Who on the staff may do what: plain Python, no Flask, no SQL.

Three roles. A librarian works for the libraries of their own institution; a coordinator
(Muntpunt) for the whole programme; an IT admin only looks after terminals and the
maintenance message. Every staff page and staff API call names one permission, and this table
is the only place that says which roles hold it (tests/integration/test_role_matrix.py checks
each page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from . import domain


class Role(StrEnum):
    LIBRARIAN = "librarian"
    COORDINATOR = "coordinator"
    IT_ADMIN = "it_admin"


class Permission(StrEnum):
    DESK = "desk"  # find patrons and act for them: accounts, enrolments, passwords
    PENDING = "pending"  # check identity documents, the pending-accounts queue
    DUPLICATES = "duplicates"  # the possible-duplicates queue: merge or dismiss
    WAITING_LIST = "waiting_list"  # see the waiting list, remove an entry with a reason
    WAITING_LIST_MOVE = "waiting_list_move"  # change the order (audited reason)
    PROGRAMME = "programme"  # cap, promotion policy, fair share, opening days, verification
    CATALOGUE = "catalogue"  # add, edit, retire courses; the module of the month
    DASHBOARD = "dashboard"  # figures, charts and aggregate CSV exports
    PATRON_EXPORT = "patron_export"  # the audited export of personal data
    AUDIT = "audit"  # read the audit log
    STAFF_ACCOUNTS = "staff_accounts"  # create and disable staff accounts
    TERMINALS = "terminals"  # list terminals, revoke a token
    MAINTENANCE = "maintenance"  # the message every kiosk shows instead of the journey
    MEMBER_SYSTEMS = "member_systems"  # each institution's member system (library cards)


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.LIBRARIAN: frozenset({
        Permission.DESK, Permission.PENDING, Permission.DUPLICATES, Permission.WAITING_LIST,
    }),
    Role.COORDINATOR: frozenset({
        Permission.DESK, Permission.PENDING, Permission.DUPLICATES, Permission.WAITING_LIST,
        Permission.WAITING_LIST_MOVE, Permission.PROGRAMME, Permission.CATALOGUE,
        Permission.DASHBOARD, Permission.PATRON_EXPORT, Permission.AUDIT,
        Permission.STAFF_ACCOUNTS, Permission.MAINTENANCE, Permission.MEMBER_SYSTEMS,
    }),
    Role.IT_ADMIN: frozenset({Permission.TERMINALS, Permission.MAINTENANCE,
                              Permission.MEMBER_SYSTEMS}),
}


# The audit log's name for a staff member: this prefix and their user name.
STAFF_ACTOR = "staff:"


def staff_username(actor: str) -> str | None:
    """The user name in a staff member's audit name; None for any other actor."""
    return actor.removeprefix(STAFF_ACTOR) if actor.startswith(STAFF_ACTOR) else None


@dataclass(frozen=True)
class StaffView:
    """A staff member as the pages and the audit log know them (never their password)."""

    id: int
    username: str
    display_name: str
    role: Role
    institution_code: str | None  # a librarian's institution; None for programme-wide roles
    library_code: str | None  # where they usually work, for "assisted by … at …"
    library_name: str = ""

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    @property
    def programme_wide(self) -> bool:
        """Coordinators see every institution; a librarian only their own."""
        return self.role is Role.COORDINATOR

    def serves(self, institution_code: str) -> bool:
        """May this staff member act for a patron of that institution?"""
        return self.programme_wide or self.institution_code == institution_code

    @property
    def actor(self) -> str:
        """How the audit log names them."""
        return f"{STAFF_ACTOR}{self.username}"

    @property
    def assisted_label(self) -> str:
        """"<name> at <library>": the tag on everything done for a patron."""
        where = self.library_name or self.institution_code or "Muntpunt"
        return f"{self.display_name} ({where})"


USERNAME_MAX = 60


def validate_username(value: str) -> str | None:
    """A field code if the username cannot be used, else None: lower-case letters, digits,
    dots, hyphens and underscores, 3 to 60 characters."""
    if not value:
        return "required"
    if len(value) > USERNAME_MAX:
        return "too_long"
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{2,}", value):
        return "username_invalid"
    return None


def check_account(username: str, display_name: str, role: str, password: str) -> dict[str, str]:
    """What is wrong with a new staff account's own values ({field: code}; empty: nothing),
    before the database is asked (`kiosk registry init` checks its coordinator first). The
    values as the caller cleaned them (lower-case username, `domain.clean_name`,
    `domain.normalise_password`)."""
    errors: dict[str, str] = {}
    if (problem := validate_username(username)) is not None:
        errors["username"] = problem
    if not display_name or not domain.has_visible_chars(display_name):
        errors["display_name"] = "required"
    elif len(display_name) > 80 or domain.has_control_chars(display_name):
        errors["display_name"] = "too_long" if len(display_name) > 80 else "invalid_characters"
    if role not in Role.__members__.values():
        errors["role"] = "role_unknown"
    if (problem := staff_password_problem(password)) is not None:
        errors["password"] = problem
    return errors


def staff_password_problem(password: str) -> str | None:
    """What is wrong with a staff password (normalised), if anything: longer than a
    patron's, since it opens every patron's data."""
    if len(password) < domain.MIN_PASSWORD_LENGTH + 4:
        return "staff_password_too_short"
    if len(password) > domain.MAX_PASSWORD_LENGTH:
        return "too_long"
    return None
