"""Registry helpers of the verification tests, shared with the duplicate-account tests:
an institution's verification policy, a staff member's view, the audit entries of an action,
the stored seat counts checked against the places, a patron's id by card."""

from __future__ import annotations

from sqlalchemy import func, select, update

from kiosk.registry.roles import StaffView
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, Institution, Patron, Place, Programme

from .factories import STAFF_PASSWORDS


def set_policy(service: RegistryService, code: str, verification: str,
               pending_days: int = 14) -> None:
    with service.store.write() as s:
        s.execute(update(Institution).where(Institution.code == code)
                  .values(verification=verification, pending_days=pending_days))


def staff(service: RegistryService, username: str) -> StaffView:
    return service.staff.login(username, STAFF_PASSWORDS[username])[1]


def audit(service: RegistryService, action: str) -> list:  # type: ignore[type-arg]
    with service.store.read() as s:
        return list(s.execute(select(AuditEntry.actor, AuditEntry.subject,
                                     AuditEntry.institution, AuditEntry.detail)
                              .where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)).all())


def counts_match_places(service: RegistryService) -> tuple[int, int]:
    """The stored counts are those of the places rows; answers (seats, waiting)."""
    with service.store.read() as s:
        prog = s.get(Programme, 1)
        assert prog is not None
        seats = s.scalar(select(func.count()).where(Place.status.in_(("seated", "offered"))))
        waiting = s.scalar(select(func.count()).where(Place.status == "waiting"))
        assert (prog.seats_taken, prog.waiting) == (seats, waiting)
        return prog.seats_taken, prog.waiting


def patron_id(service: RegistryService, card: str) -> int:
    with service.store.read() as s:
        found = s.scalar(select(Patron.id).where(Patron.card_number == card))
        assert found is not None
        return found
