"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from kiosk.registry import schema
from kiosk.registry.domain import ProgrammeStatus
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Base, Store, make_engine

from .conftest import patron_data


def test_migrations_match_the_models_and_are_current(db_url) -> None:
    engine = make_engine(db_url())
    assert not schema.is_current(engine)
    schema.upgrade(engine)
    assert schema.is_current(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    schema.upgrade(engine)  # applying again changes nothing
    engine.dispose()


FIXTURE = Path(__file__).parent / "fixtures" / "registry_0001.sql"


def test_a_registry_of_the_previous_schema_upgrades_with_no_loss(db_url) -> None:
    """A database made by schema 0001 (the fixture) is upgraded to the head: every row is
    still there, the new waiting counter matches the rows, and the seat rules work on it."""
    engine = make_engine(db_url())
    schema.upgrade(engine, "0001")
    with engine.begin() as conn:
        for statement in FIXTURE.read_text().splitlines():
            if statement.startswith("INSERT"):
                conn.exec_driver_sql(statement)
        if engine.dialect.name == "postgresql":  # the fixture names its ids: move the sequences
            for table in ("institutions", "libraries", "courses", "patrons", "enrolments"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")
    before = _rows(engine, ["patrons", "places", "enrolments"])
    schema.upgrade(engine)
    assert schema.is_current(engine)
    after = _rows(engine, ["patrons", "places", "enrolments"])
    assert {t: [r[: len(before[t][0])] for r in rows] for t, rows in after.items()} == before
    with engine.connect() as conn:
        programme = conn.execute(text(
            "SELECT cap, seats_taken, waiting, next_queue_no, ends_on FROM programme")).one()
        assert tuple(programme) == (1, 1, 2, 3, None)
        active = conn.execute(text("SELECT count(*) FROM patrons "
                                   "WHERE last_active_at = created_at")).scalar()
        assert active == 3

    service = RegistryService(Store(engine))
    newcomer = patron_data(library_code="MUN-MUNTPUNT")
    service.register(newcomer)
    token, _ = service.login(newcomer.email, newcomer.password)
    assert service.claim(token, "excel-basics").position == 3  # behind the two already waiting
    service.erase_by_card("2109000000014", actor="test")  # the seated patron leaves
    assert service.programme_status() == ProgrammeStatus(cap=1, seats_taken=1, waiting=2)
    engine.dispose()


def _rows(engine, tables: list[str]) -> dict[str, list[tuple]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))]
                for t in tables}
