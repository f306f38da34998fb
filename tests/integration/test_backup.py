"""Backup and restore (`kiosk registry backup` / `restore`): what comes back is what was there
— patrons, places with their queue numbers, the programme's counters, enrolments — on SQLite
(online, while a reader holds a transaction) and on PostgreSQL (pg_dump / pg_restore)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from kiosk.cli import main
from kiosk.registry.services import RegistryService
from kiosk.registry.store import EnrolmentRow, Patron, Place, Programme, Store, make_engine
from tests.support.factories import add_patron, new_store, patron_data


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["registry", *args])


def populated(url: str) -> RegistryService:
    """Cap 2: two seated (one with two courses), three waiting, one of whom left the line, so
    queue numbers have a gap and next_queue_no is past it."""
    service = RegistryService(new_store(url, cap=2))
    tokens = [add_patron(service)[1] for _ in range(5)]
    service.claim(tokens[0], "excel-basics")
    service.claim(tokens[0], "email-outlook")
    for token in tokens[1:]:
        service.claim(token, "excel-basics")
    service.leave_waiting_list(tokens[2])
    service.claim(tokens[4], "email-outlook")
    return service


def snapshot(store: Store) -> dict[str, list[tuple]]:
    with store.read() as s:
        return {
            "patrons": [tuple(r) for r in s.execute(
                select(*Patron.__table__.columns).order_by(Patron.id))],
            "places": [tuple(r) for r in s.execute(
                select(Place.patron_id, Place.status, Place.queue_no, Place.requested_at,
                       Place.seated_at).order_by(Place.patron_id))],
            "programme": [tuple(r) for r in s.execute(
                select(Programme.cap, Programme.seats_taken, Programme.over_cap,
                       Programme.next_queue_no, Programme.waiting))],
            "enrolments": [tuple(r) for r in s.execute(
                select(EnrolmentRow.patron_id, EnrolmentRow.course_id)
                .order_by(EnrolmentRow.patron_id, EnrolmentRow.course_id))],
        }


def assert_restored(url: str, original: dict[str, list[tuple]], output: str) -> None:
    store = Store(make_engine(url))
    try:
        assert snapshot(store) == original
        with store.read() as s:  # the counters still match the rows
            seated = s.scalar(select(func.count()).where(Place.status == "seated"))
            waiting = s.scalar(select(func.count()).where(Place.status == "waiting"))
            assert (seated, waiting) == (2, 2)
            assert s.execute(select(Programme.seats_taken, Programme.waiting)).one() == (2, 2)
        # The restored registry works: a patron logs in with the password of before.
        card = original["patrons"][0][1]
        RegistryService(store).login(card, patron_data().password)
    finally:
        store.engine.dispose()
    assert "Restored: 5 patron(s), 2 seat(s) taken, 2 waiting." in output


def change_everything(service: RegistryService) -> None:
    """What a backup protects against: an erasure, a newcomer, a raised cap."""
    with service.store.read() as s:
        card = s.scalar(select(Patron.card_number).order_by(Patron.id))
    service.erase_by_card(card, actor="test")
    add_patron(service)
    service.set_cap(10, actor="test")


def test_sqlite_backup_is_online_and_restores_what_was_there(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    service = populated(url)
    original = snapshot(service.store)
    dump = tmp_path / "backup.sqlite3"

    reader = sqlite3.connect(tmp_path / "registry.sqlite3", isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM patrons").fetchone() == (5,)
        made = cli("backup", str(dump), "--database-url", url)
        assert made.exit_code == 0, made.output
        # The kiosk keeps writing while the reader's transaction is still open (WAL).
        change_everything(service)
    finally:
        reader.close()
    assert dump.stat().st_mode & 0o077 == 0  # personal data: owner only
    assert "Backed up sqlite:///" in made.output

    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    restored = cli("restore", str(dump), "--database-url", fresh)
    assert restored.exit_code == 0, restored.output
    assert_restored(fresh, original, restored.output)

    # Onto the live database, which has changed since: only with --force.
    refused = cli("restore", str(dump), "--database-url", url)
    assert refused.exit_code == 1 and "--force" in refused.output
    assert snapshot(service.store) != original
    forced = cli("restore", str(dump), "--force", "--database-url", url)
    assert forced.exit_code == 0, forced.output
    assert snapshot(service.store) == original  # the running service reads the restored data
    service.store.engine.dispose()


@pytest.mark.parametrize("content, reason", [
    (None, "no such file"),
    (b"name,email\n", "not a registry backup"),
    (b"PGDMP\x01\x0e\x00", "a PostgreSQL dump"),
])
def test_sqlite_restore_refuses_what_is_not_a_backup(tmp_path: Path, content: bytes | None,
                                                     reason: str) -> None:
    src = tmp_path / "backup.file"
    if content is not None:
        src.write_bytes(content)
    target = tmp_path / "fresh.sqlite3"
    result = cli("restore", str(src), "--database-url", f"sqlite:///{target}")
    assert result.exit_code == 1
    assert reason in result.output and len(result.output.strip().splitlines()) == 1
    assert not target.exists() or target.stat().st_size == 0


def test_sqlite_backup_of_a_missing_database_says_so(tmp_path: Path) -> None:
    result = cli("backup", str(tmp_path / "b.sqlite3"),
                 "--database-url", f"sqlite:///{tmp_path / 'nothing.sqlite3'}")
    assert result.exit_code == 1 and "no such file" in result.output
    assert list(tmp_path.iterdir()) == []  # no half backup left behind


@pytest.mark.postgres
def test_postgres_backup_and_restore(tmp_path: Path,
                                     create_database: Callable[[], str]) -> None:
    url = create_database()
    service = populated(url)
    original = snapshot(service.store)
    dump = tmp_path / "registry.dump"

    made = cli("backup", str(dump), "--database-url", url)
    assert made.exit_code == 0, made.output
    assert dump.read_bytes().startswith(b"PGDMP")
    change_everything(service)

    fresh = create_database()
    restored = cli("restore", str(dump), "--database-url", fresh)
    assert restored.exit_code == 0, restored.output
    assert_restored(fresh, original, restored.output)

    refused = cli("restore", str(dump), "--database-url", url)
    assert refused.exit_code == 1 and "--force" in refused.output
    service.store.engine.dispose()  # pg_restore --clean drops tables the pool would hold
    forced = cli("restore", str(dump), "--force", "--database-url", url)
    assert forced.exit_code == 0, forced.output
    assert snapshot(service.store) == original

    wrong = cli("restore", str(tmp_path / "missing.dump"), "--database-url", fresh)
    assert wrong.exit_code == 1 and "no such file" in wrong.output
    service.store.engine.dispose()


@pytest.mark.postgres
def test_postgres_unreachable_is_one_line_without_the_password(
        tmp_path: Path, postgres_admin: str) -> None:
    url = "postgresql://kiosk:s3cret-pw@127.0.0.1:1/kiosk"
    for args in (["backup", str(tmp_path / "b.dump")], ["restore", str(tmp_path / "b.dump")]):
        if args[0] == "restore":
            (tmp_path / "b.dump").write_bytes(b"PGDMP\x01\x0e\x00")
        result = cli(*args, "--database-url", url)
        assert result.exit_code == 1
        assert "cannot reach postgresql://kiosk:***@127.0.0.1:1/kiosk" in result.output
        assert "s3cret" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_postgres_without_the_client_tools_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump, no pg_restore on it
    (tmp_path / "b.dump").write_bytes(b"PGDMP\x01\x0e\x00")
    url = "postgresql://kiosk@127.0.0.1:1/kiosk"
    for args, tool in ((["backup", str(tmp_path / "new.dump")], "pg_dump"),
                       (["restore", str(tmp_path / "b.dump")], "pg_restore")):
        result = cli(*args, "--database-url", url)
        assert result.exit_code == 1
        assert f"{tool} not found: install the PostgreSQL client tools" in result.output
