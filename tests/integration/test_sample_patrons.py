"""`kiosk demo`'s fictional patrons: spread over the last 60 days and the libraries, with
courses chosen, added once, and shown on the coordinator's dashboard."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from kiosk.registry.sample_patrons import PASSWORD, add_sample_patrons
from kiosk.registry.services import utcnow
from kiosk.registry.store import EnrolmentRow, Library, Patron
from tests.support.factories import log_in_staff


def test_sample_patrons_fill_a_new_demo_registry_once(app, service) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    assert add_sample_patrons(service, 15, now) == 15
    assert add_sample_patrons(service, 15, now) == 0  # not twice
    with service.store.read() as s:
        created = s.scalars(select(Patron.created_at)).all()
        libraries = s.scalar(select(func.count(func.distinct(Patron.library_id)))) or 0
        enrolments = s.scalar(select(func.count()).select_from(EnrolmentRow)) or 0
        assert (s.scalar(select(func.count()).select_from(Library)) or 0) == 27
    assert len(created) == 15 and libraries >= 8 and enrolments >= 15
    assert all(now - timedelta(days=60) <= moment <= now for moment in created)
    assert len({moment.date() for moment in created}) >= 8  # spread, not one day
    card = service.login(next(iter(_cards(service))), PASSWORD)[1].card_number
    assert len(card) == 13

    coordinator = app.test_client()
    log_in_staff(coordinator, "coordinator")
    page = coordinator.get("/en/staff/dashboard").get_data(as_text=True)
    assert "15 of 2,000 seats taken" in page, page[:3000]


def _cards(service) -> list[str]:  # type: ignore[no-untyped-def]
    with service.store.read() as s:
        return list(s.scalars(select(Patron.card_number)))
