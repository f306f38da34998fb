"""A patron's id is never given twice (issue #13, item 9): the audit log names a patron by a
pseudonym (patron#id) and the academy's platform by an external id (kiosk-id), so after an
erasure the next patron gets a new number, on SQLite (AUTOINCREMENT) as on PostgreSQL (a
sequence). The upgrade of an older registry is tested in test_schema.py."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.schema import CreateTable

from kiosk.registry import schema
from kiosk.registry.services import RegistryService, pseudonym
from kiosk.registry.store import AuditEntry, Patron, make_engine
from tests.support.factories import patron_data


def patron_id(service: RegistryService, card: str) -> int:
    with service.store.read() as s:
        found = s.scalar(select(Patron.id).where(Patron.card_number == card))
    assert found is not None
    return found


def test_the_next_patron_after_an_erasure_gets_a_new_id(
        make_service) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = make_service()
    cards = [service.register(patron_data()) for _ in range(3)]
    ids = {card: patron_id(service, card) for card in cards}
    last = max(ids, key=ids.__getitem__)  # the highest id: the one a table would give again
    service.erase_by_card(last, actor="test")

    newcomer = patron_id(service, service.register(patron_data()))

    assert newcomer > ids[last]
    with service.store.read() as s:  # the erased patron's pseudonym still means them only
        actions = s.scalars(select(AuditEntry.action)
                            .where(AuditEntry.subject == pseudonym(ids[last]))
                            .order_by(AuditEntry.id)).all()
    assert actions == ["patron_registered", "patron_erased"]


def test_a_new_sqlite_registry_has_autoincrement_as_the_models_say(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    try:
        schema.upgrade(engine)
        with engine.connect() as conn:
            made = conn.execute(text(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'patrons'")).scalar()
        modelled = str(CreateTable(Patron.__table__).compile(dialect=engine.dialect))
        assert "AUTOINCREMENT" in made and "AUTOINCREMENT" in modelled
    finally:
        engine.dispose()
