"""The negative control of the seat guard: a claim written the naive way (check, then act,
no lock, no conditional update). It must oversell under concurrency; if it does not, the
storm that shows the real claim never oversells proves nothing. Test code only: the product
has no switch that turns its guard off."""

from __future__ import annotations

import time

from sqlalchemy import insert, select, update

from kiosk.registry import domain
from kiosk.registry.domain import ClaimResult, Standing
from kiosk.registry.services import RegistryService, utcnow
from kiosk.registry.store import Course, EnrolmentRow, PatronSession, Place, Programme


class UnguardedClaims:
    """`claim(token, course)` as RegistryService has it, minus the guard; `pause` widens the
    window between the check and the write so the race shows reliably."""

    def __init__(self, service: RegistryService, pause: float = 0.0):
        self.service = service
        self.pause = pause

    def claim(self, token: str, course_slug: str, **_assisted: object) -> ClaimResult:
        store = self.service.store
        now = utcnow()
        with store.read() as s:
            taken, cap = s.execute(select(Programme.seats_taken, Programme.cap)).one()
        time.sleep(self.pause)
        with store.write() as s:
            patron_id = s.scalar(select(PatronSession.patron_id).where(
                PatronSession.token_hash == domain.token_hash(token)))
            course_id = s.scalar(select(Course.id).where(Course.slug == course_slug))
            if patron_id is None or course_id is None:
                raise domain.RegistryError("session_invalid" if patron_id is None
                                           else "course_not_found")
            if taken < cap:
                s.execute(insert(Place).values(patron_id=patron_id, status="seated",
                                               requested_at=now, seated_at=now))
                s.execute(update(Programme).values(seats_taken=taken + 1))
                standing = Standing.SEATED
            else:
                queue_no = s.scalar(select(Programme.next_queue_no)) or 1
                s.execute(update(Programme).values(next_queue_no=Programme.next_queue_no + 1,
                                                   waiting=Programme.waiting + 1))
                s.execute(insert(Place).values(patron_id=patron_id, status="waiting",
                                               queue_no=queue_no, requested_at=now))
                standing = Standing.WAITING
            s.execute(store.insert_ignoring_duplicates(EnrolmentRow).values(
                patron_id=patron_id, course_id=course_id, created_at=now))
            return ClaimResult(standing=standing, newly_granted=standing is Standing.SEATED)


def install(service: RegistryService, pause: float = 0.0) -> None:
    """Make a served registry claim unguardedly (the storm's negative control, behind
    gunicorn): its API calls `service.claim`."""
    service.claim = UnguardedClaims(service, pause).claim  # type: ignore[method-assign]
