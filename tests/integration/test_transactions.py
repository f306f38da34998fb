"""How the store opens a PostgreSQL transaction: one query of ours, `BEGIN … ; SET LOCAL …`,
in the round trip a bare BEGIN would take anyway, so the isolation level and the bounded lock
wait hold in every transaction, through PgBouncer too, at no extra round trip; and nothing of
it outlives the transaction. The round trips are counted from libpq's own protocol trace."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import pq
from sqlalchemy import text

from kiosk.registry.domain import RegistryError
from kiosk.registry.store import (
    CONNECT_TIMEOUT_S,
    LOCK_TIMEOUT_MS,
    POOL_TIMEOUT_S,
    Store,
    begin_statement,
    make_engine,
)
from tests.support.round_trips import traced

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(create_database) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    """One pooled connection, so every transaction below runs on the traced one."""
    made = Store(make_engine(create_database(), pool_size=1, max_overflow=0))
    yield made
    made.engine.dispose()


def _the_connection(store: Store) -> Any:
    """The pool's one psycopg connection, checked out once already (a fresh connection is
    pinged at its first checkout; this one has just been used)."""
    raw = store.engine.raw_connection()
    try:
        return raw.dbapi_connection
    finally:
        raw.close()


def test_a_write_costs_its_statements_and_two_round_trips_as_with_a_bare_begin(store) -> None:  # type: ignore[no-untyped-def]
    connection = _the_connection(store)
    with traced(connection) as sent, store.write() as s:
        s.execute(text("SELECT 1"))
    assert sent.simple_queries == [
        f"BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}",
        "SELECT 1", "COMMIT"]
    assert sent.round_trips == 3


def test_a_quick_write_turns_synchronous_commit_off_in_the_same_round_trip(store) -> None:  # type: ignore[no-untyped-def]
    connection = _the_connection(store)
    with traced(connection) as sent, store.write(durable=False) as s:
        assert s.execute(text("SHOW synchronous_commit")).scalar() == "off"
    assert sent.round_trips == 3
    assert sent.simple_queries[0] == begin_statement("READ COMMITTED", LOCK_TIMEOUT_MS,
                                                     durable=False)
    with store.write() as s:  # the next transaction on the same connection is durable again
        assert s.execute(text("SHOW synchronous_commit")).scalar() == "on"


def test_a_read_costs_its_statements_and_two_round_trips(store) -> None:  # type: ignore[no-untyped-def]
    connection = _the_connection(store)
    with traced(connection) as sent, store.read() as s:
        s.execute(text("SELECT 1"))
    assert sent.round_trips == 3
    assert sent.simple_queries[-1] == "ROLLBACK"


def test_the_lock_wait_is_bounded_inside_every_transaction_and_nothing_outlives_it(store) -> None:  # type: ignore[no-untyped-def]
    for transaction in (store.read, store.write):
        with transaction() as s:
            assert s.execute(text("SHOW lock_timeout")).scalar() == f"{LOCK_TIMEOUT_MS}ms"
            assert s.execute(text("SHOW transaction_isolation")).scalar() == "read committed"
    # The connection's own settings are the server's: a start-up option would show here.
    with _the_connection(store).cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone() == ("0",)


def test_a_transaction_left_without_commit_is_rolled_back(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        s.execute(text("CREATE TABLE seats_given (n integer)"))
    with pytest.raises(RuntimeError), store.write() as s:
        s.execute(text("INSERT INTO seats_given VALUES (1)"))
        raise RuntimeError("the use case failed")
    with store.read() as s:
        assert s.execute(text("SELECT count(*) FROM seats_given")).scalar() == 0
    assert _the_connection(store).info.transaction_status == pq.TransactionStatus.IDLE


def test_the_isolation_level_tests_pin_is_the_one_in_force(create_database) -> None:  # type: ignore[no-untyped-def]
    """The storm's REPEATABLE READ variant (the negative control of READ COMMITTED) still
    gets what it asks for."""
    store = Store(make_engine(create_database(), isolation="REPEATABLE READ"))
    try:
        with store.write() as s:
            assert s.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
    finally:
        store.engine.dispose()


def test_an_unknown_isolation_level_never_reaches_the_sql() -> None:
    with pytest.raises(ValueError, match="unknown isolation level"):
        begin_statement("READ COMMITTED; DROP TABLE patrons", LOCK_TIMEOUT_MS)


def test_a_request_that_finds_every_pooled_connection_in_use_is_busy_at_once(
        create_database) -> None:  # type: ignore[no-untyped-def]
    """Not held up for SQLAlchemy's 30 s: "busy, try again" within the pool's short wait."""
    store = Store(make_engine(create_database(), pool_size=1, max_overflow=0))
    try:
        with store.engine.connect():  # the pool's one connection, held (a leak, a stuck call)
            for transaction in (store.read, store.write):
                started = time.monotonic()
                with pytest.raises(RegistryError) as refused, transaction():
                    pass
                assert refused.value.code == "busy"
                assert time.monotonic() - started < POOL_TIMEOUT_S + 1.0
        with store.read() as s:  # given back: served again
            assert s.execute(text("SELECT 1")).scalar() == 1
    finally:
        store.engine.dispose()


def test_a_database_host_that_went_silent_is_busy_after_the_connect_deadline() -> None:
    """A listener that never answers (the kernel accepts, nobody reads): without its own
    deadline, psycopg would wait 130 s for PostgreSQL's first message."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = Store(make_engine(f"postgresql://kiosk@127.0.0.1:{port}/kiosk"))
        started = time.monotonic()
        with pytest.raises(RegistryError) as refused, store.read() as s:
            s.execute(text("SELECT 1"))
        waited = time.monotonic() - started
    assert refused.value.code == "busy"
    assert CONNECT_TIMEOUT_S - 0.5 <= waited <= CONNECT_TIMEOUT_S + 5, waited
