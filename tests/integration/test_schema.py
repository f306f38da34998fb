"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from kiosk.registry import schema
from kiosk.registry.domain import ProgrammeStatus, SignUpRules
from kiosk.registry.services import RegistryService, pseudonym, utcnow
from kiosk.registry.store import Base, Store, make_engine
from kiosk.registry_setup import require_current_schema
from tests.support.factories import patron_data
from tests.support.storm_support import free_port


def test_the_head_revision_named_in_the_code_is_the_newest_migration() -> None:
    """is_current reads HEAD_REVISION, not Alembic: a new migration must update it."""
    assert schema.HEAD_REVISION == schema.alembic_head()


def test_a_database_one_migration_behind_is_not_current(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    assert schema.current_revision(engine) is None
    schema.upgrade(engine, "0008")
    assert schema.current_revision(engine) == "0008" and not schema.is_current(engine)
    engine.dispose()


def test_a_registry_refuses_to_serve_a_database_one_migration_behind(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    schema.upgrade(engine, "0008")
    with pytest.raises(SystemExit, match="kiosk registry upgrade"):
        require_current_schema(engine)
    engine.dispose()


def test_a_registry_serves_while_its_database_is_away_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/kiosk")  # nobody there
    require_current_schema(engine)
    assert "does not answer" in caplog.text and "serving anyway" in caplog.text


def test_a_registry_names_a_database_that_does_not_exist(
        postgres_admin, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(postgres_admin.rsplit("/", 1)[0] + "/kiosk_no_such_database")
    require_current_schema(engine)
    assert 'database "kiosk_no_such_database" does not exist' in caplog.text


def test_a_new_database_is_migrated_in_a_child_process_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    assert schema.upgrade_in_child(url)
    engine = make_engine(url)
    assert schema.is_current(engine)
    engine.dispose()
    assert not schema.upgrade_in_child(url)  # at head: no child at all


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


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "registry_0001.sql"


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
    # Institutions from before sign-up rules ask what the programme asked (0013).
    assert {i.sign_up for i in service.institutions()} == {SignUpRules()}
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


FIXTURE_0003 = Path(__file__).resolve().parents[1] / "fixtures" / "registry_0003.sql"


def _load(engine, fixture: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """Run the fixture's INSERTs; answers the tables it fills."""
    tables: list[str] = []
    numbered: set[str] = set()  # tables whose ids the fixture names
    source = fixture.read_text(encoding="utf-8")
    # One INSERT per statement; a text value (an e-mail body) may span lines.
    statements = re.split(r";\n(?=INSERT |$)", source[source.index("INSERT "):])[:-1]
    assert len(statements) == source.count("\nINSERT ")
    with engine.begin() as conn:
        for statement in statements:
            if statement.startswith("INSERT"):
                conn.exec_driver_sql(statement)
                table = statement.split()[2]
                if table not in tables:
                    tables.append(table)
                if statement.startswith(f"INSERT INTO {table} (id, "):
                    numbered.add(table)
        if engine.dialect.name == "postgresql":  # the fixture names its ids: move the sequences
            for table in sorted(numbered):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))")
    return tables


def _by_name(engine, tables: list[str]) -> dict[str, list[dict]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        out = {}
        for t in tables:
            key = ", ".join(c.name for c in Base.metadata.tables[t].primary_key.columns)
            out[t] = [dict(r._mapping)
                      for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY {key}"))]
        return out


def test_a_registry_of_schema_0003_upgrades_with_no_loss(db_url) -> None:  # type: ignore[no-untyped-def]
    """The schema before the head, filled by its own code (staff, policies, offers, pending
    and duplicate accounts, notices, terminals, audit): after the upgrade every row of every
    table is there, column by column, and the registry works on it."""
    from kiosk.registry.roles import Role, StaffView

    engine = make_engine(db_url())
    schema.upgrade(engine, "0003")
    tables = _load(engine, FIXTURE_0003)
    assert len(tables) >= 15
    before = _by_name(engine, tables)
    schema.upgrade(engine)
    assert schema.is_current(engine)
    after = _by_name(engine, tables)
    for table, rows in before.items():
        assert [{k: row[k] for k in rows[0]} for row in after[table]] == rows, table

    with engine.connect() as conn:  # 0004: a pending account keeps the days it was told
        days = dict(conn.execute(text("SELECT id, pending_days FROM patrons")).all())
    assert days[9] == 7 and all(v is None for k, v in days.items() if k != 9)

    service = RegistryService(Store(engine))
    # The 0003 registry gave freed seats by offer and hold: still so.
    assert service.programme_status() == ProgrammeStatus(cap=4, seats_taken=4, waiting=1,
                                                         promotion="offer")
    # Migrated patrons are found at the desk by name and date of birth (search_name of 0003).
    els = StaffView(3, "els.maes", "Els Maes", Role.LIBRARIAN, "KOR", "KOR-CENTRUM",
                    "Centrum Kortrijk")
    from datetime import date

    hits = service.desk.find(els, "dubois elise", date(1949, 5, 6))
    assert [(hit.last_name, hit.masked_card[-3:]) for hit in hits] == [("Dubois", "704")]
    # Staff log in with the passwords of before; the coordinator's settings are still in force.
    staff_token, coordinator = service.staff.login("coordinator", "demo-coordinator")
    assert coordinator.role is Role.COORDINATOR
    settings = service.policies.settings()
    assert (settings.promotion, settings.offer_days, settings.fair_share) == ("offer", 3, True)
    assert {i.code: i.verification for i in settings.institutions}["KOR"] == "verify"
    # The offers of before pass on by the rules of now: their time is long over.
    swept = service.expire_offers()
    assert swept.expired == 2
    assert service.programme_status().cap == 4
    # A patron of before logs in and claims.
    token, _ = service.login("an.1@example.be", "correct horse")
    assert service.status(token).standing.name == "SEATED"
    engine.dispose()


def test_a_registry_of_schema_0007_never_gives_an_erased_patrons_id_again(db_url) -> None:  # type: ignore[no-untyped-def]
    """0008: the patron erased last before the upgrade had the highest id; after the upgrade
    (every row kept, the schema the models'), the next patron gets a new id, and so does the
    one after a new erasure. SQLite's counter starts past the ids the audit log names."""
    engine = make_engine(db_url())
    schema.upgrade(engine, "0003")
    tables = _load(engine, FIXTURE_0003)
    schema.upgrade(engine, "0007")
    with engine.begin() as conn:  # an erasure of before: the row goes, its pseudonym stays
        erased = conn.execute(text("SELECT max(id) FROM patrons")).scalar()
        conn.execute(text("DELETE FROM patrons WHERE id = :id"), {"id": erased})
        conn.execute(text("INSERT INTO audit_log (at, actor, action, terminal, detail, subject, "
                          "institution) VALUES (:at, 'test', 'patron_erased', '', '{}', "
                          ":subject, '')"), {"at": utcnow(), "subject": pseudonym(erased)})
    before = _by_name(engine, tables)
    schema.upgrade(engine)
    assert schema.is_current(engine)
    after = _by_name(engine, tables)
    for table, rows in before.items():
        assert [{k: row[k] for k in rows[0]} for row in after[table]] == rows, table
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []

    service = RegistryService(Store(engine))
    first = service.register(patron_data())
    with engine.connect() as conn:
        first_id = conn.execute(text("SELECT id FROM patrons WHERE card_number = :c"),
                                {"c": first}).scalar()
    assert first_id > erased
    service.erase_by_card(first, actor="test")
    second = service.register(patron_data())
    with engine.connect() as conn:
        second_id = conn.execute(text("SELECT id FROM patrons WHERE card_number = :c"),
                                 {"c": second}).scalar()
    assert second_id > first_id
    engine.dispose()
