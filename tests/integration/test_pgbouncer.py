"""The registry through PgBouncer in transaction pooling mode (Debian's pgbouncer, 1.18 on
Debian 12), where each transaction may run on another server connection and start-up options
are refused: migrated directly, then served through it — claims from many threads seat
exactly the cap, a claim waiting for a held programme row answers "busy" within its bound,
and housekeeping still runs on one host at a time. With the negative controls: the start-up
option the store used to send is refused, psycopg's prepared statements break there unless
DATABASE_POOLER is "pgbouncer", and a session's advisory lock excludes nobody."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import bindparam, column, func, select, table
from sqlalchemy.exc import DBAPIError

from kiosk.cli import main
from kiosk.registry.domain import RegistryError
from kiosk.registry.prepared import Prepared
from kiosk.registry.store import DIRECT, LOCK_TIMEOUT_MS, PGBOUNCER, Store, make_engine
from tests.support.factories import IN_CI, build_app
from tests.support.pgbouncer import PgBouncer, find_pgbouncer
from tests.support.storm_support import bulk_patrons, prepare_registry, read_seats

pytestmark = pytest.mark.postgres

LOCK_BOUND = 3.0  # seconds the terminals are promised: "busy" by then, whoever holds the row


@pytest.fixture
def pgbouncer(postgres_admin: str) -> Iterator[PgBouncer]:
    binary = find_pgbouncer()
    if binary is None:
        if IN_CI:
            pytest.fail("CI must run this test: Debian's pgbouncer package is needed")
        pytest.skip("needs PgBouncer (Debian's pgbouncer package)")
    bouncer = PgBouncer(binary, postgres_admin).start()
    yield bouncer
    bouncer.close()


@pytest.fixture
def direct_url(create_database) -> str:  # type: ignore[no-untyped-def]
    return create_database()


def _registry_through(bouncer: PgBouncer, direct_url: str, folder: Path,
                      threads: int = 2) -> Flask:
    """The registry server's app with DATABASE_URL on PgBouncer, as registry.env sets it,
    its pool sized for `threads` at once as `kiosk registry doctor` asks (a connection each,
    one more each in a burst): a request that waits POOL_TIMEOUT_S for one answers busy."""
    return build_app(folder, registry=True, DATABASE_URL=bouncer.url_for(direct_url),
                     DATABASE_POOLER=PGBOUNCER, AUTO_MIGRATE=False, SEED_DEMO=False,
                     DATABASE_POOL_SIZE=max(4, threads), DATABASE_MAX_OVERFLOW=max(4, threads))


def test_the_start_up_option_the_store_used_to_send_is_refused(pgbouncer, direct_url) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(pgbouncer.url_for(direct_url), connect_timeout=5,
                        options=f"-c lock_timeout={LOCK_TIMEOUT_MS}")


def test_claims_from_many_threads_through_pgbouncer_seat_exactly_the_cap(  # type: ignore[no-untyped-def]
        pgbouncer, direct_url, tmp_path) -> None:
    registry = prepare_registry(direct_url, cap=5, terminals=1)  # the migrations go direct
    patrons = bulk_patrons(direct_url, 16)
    app = _registry_through(pgbouncer, direct_url, tmp_path, threads=len(patrons))
    start = threading.Barrier(len(patrons))
    answers: dict[int, list[int]] = {}

    def patron(index: int) -> None:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {registry.terminal_tokens[0]}",
                   "X-Patron-Session": patrons[index].token}
        start.wait(timeout=30)
        claimed = client.post("/api/v1/me/claims", json={"course": registry.courses[0]},
                              headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
        # The same queries again and again on each pooled connection: past psycopg's
        # threshold for preparing them, were it on.
        statuses = [client.get("/api/v1/me/status", headers=headers).status_code
                    for _ in range(8)]
        answers[index] = [claimed.status_code, *statuses]

    threads = [threading.Thread(target=patron, args=(i,)) for i in range(len(patrons))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    app.extensions["registry_service"].store.engine.dispose()
    assert sorted(answers) == list(range(len(patrons)))
    assert all(statuses == [200] * 9 for statuses in answers.values()), answers
    seats = read_seats(direct_url)
    assert seats.problems() == [], seats.problems()
    assert len(seats.seated) == 5 and len(seats.waiting) == 11
    assert [seats.position(pid) for pid in seats.queue()] == list(range(1, 12))


def test_a_claim_waiting_for_a_held_programme_row_answers_busy_within_the_bound(  # type: ignore[no-untyped-def]
        pgbouncer, direct_url, tmp_path) -> None:
    registry = prepare_registry(direct_url, cap=5, terminals=1)
    [patron] = bulk_patrons(direct_url, 1)
    service = _registry_through(pgbouncer, direct_url, tmp_path).extensions["registry_service"]
    try:
        # Someone else holds the programme row, straight on PostgreSQL: an operator's open
        # transaction.
        with psycopg.connect(direct_url) as holder:
            holder.execute("SELECT 1 FROM programme FOR UPDATE")
            started = time.monotonic()
            with pytest.raises(RegistryError) as refused:
                service.claim(patron.token, registry.courses[0])
            waited = time.monotonic() - started
            holder.rollback()
        assert refused.value.code == "busy" and refused.value.detail["retry_after"] >= 1
        assert waited >= LOCK_TIMEOUT_MS / 1000 * 0.9, "it did not wait for the lock"
        assert waited <= LOCK_BOUND, waited
        assert service.claim(patron.token, registry.courses[0]).standing == "seated"
    finally:
        service.store.engine.dispose()


@pytest.mark.parametrize("pooler", [DIRECT, PGBOUNCER])
def test_prepared_statements_break_through_pgbouncer_unless_the_pooler_is_set(  # type: ignore[no-untyped-def]
        pgbouncer, direct_url, pooler) -> None:
    """The hot path prepares its statements on a connection the first time it runs them
    (kiosk.registry.libpq). Here one ran in a transaction on PgBouncer's one server
    connection, where it was prepared; then another client holds that server connection, so
    its second run goes to a new one (PgBouncer hands out the connection freed last), which
    never saw it."""
    url = pgbouncer.url_for(direct_url)
    store = Store(make_engine(url, pool_size=1, max_overflow=0, pooler=pooler))
    query = Prepared(select(func.count()).select_from(table("pg_class", column("relpages")))
                     .where(column("relpages") >= bindparam("pages")))
    try:
        with psycopg.connect(url) as other:
            with store.write() as s:
                assert query.first(s.connection(), {"pages": 0})[0] > 0
            other.execute("SELECT 1")  # its transaction holds the server connection
            with store.write() as s:
                if pooler == PGBOUNCER:
                    assert query.first(s.connection(), {"pages": 0})[0] > 0
                else:
                    with pytest.raises(DBAPIError, match="prepared statement .* does not exist"):
                        query.first(s.connection(), {"pages": 0})
    finally:
        store.engine.dispose()


def test_housekeeping_through_pgbouncer_runs_on_one_host_at_a_time(pgbouncer, direct_url) -> None:  # type: ignore[no-untyped-def]
    url = pgbouncer.url_for(direct_url)
    hosts = [Store(make_engine(url, pooler=PGBOUNCER)) for _ in range(2)]
    try:
        with hosts[0].alone("housekeeping") as first:
            assert first
            with hosts[1].alone("housekeeping") as second:
                assert not second
        with hosts[1].alone("housekeeping") as again:
            assert again  # released at the end
    finally:
        for store in hosts:
            store.engine.dispose()


def test_a_sessions_advisory_lock_excludes_nobody_through_pgbouncer(pgbouncer, direct_url) -> None:  # type: ignore[no-untyped-def]
    """Why `Store.alone` locks in a transaction: a session's lock stays on the server
    connection that took it, which PgBouncer then hands to the next client, who gets the
    "same" lock too."""
    url = pgbouncer.url_for(direct_url)
    with psycopg.connect(url, autocommit=True) as one, \
            psycopg.connect(url, autocommit=True) as other:
        assert one.execute("SELECT pg_try_advisory_lock(42)").fetchone() == (True,)
        assert other.execute("SELECT pg_try_advisory_lock(42)").fetchone() == (True,)


@pytest.mark.usefixtures("clean_kiosk_environment")
def test_the_registry_doctor_reads_the_database_through_pgbouncer(  # type: ignore[no-untyped-def]
        pgbouncer, direct_url, tmp_path) -> None:
    prepare_registry(direct_url, cap=5, terminals=1)
    settings = tmp_path / "registry.env"
    settings.write_text(f"KIOSK_DATABASE_URL={pgbouncer.url_for(direct_url)}\n"
                        f"KIOSK_DATABASE_POOLER={PGBOUNCER}\n"
                        f"KIOSK_INSTANCE_PATH={tmp_path / 'instance'}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["registry", "doctor", "--env-file", str(settings)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:2] == ["database", "OK"] for line in lines), result.output
    [connections] = [line for line in lines if line.startswith("connections")]
    assert connections.split()[1] == "SKIP"
    assert "through PgBouncer: 19 connections to it at full load" in connections
    assert "max_client_conn" in connections
