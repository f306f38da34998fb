"""The hot path's statements (kiosk/registry/prepared.py): on PostgreSQL they go to the
driver's own connection and skip SQLAlchemy's machinery, and nothing the caller sees may
depend on that: the same rows, the same errors, the same "busy" for a lost connection, and a
write sent with the COMMIT commits with it or not at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from kiosk.registry.domain import RegistryError
from kiosk.registry.prepared import Prepared, send_ahead
from kiosk.registry.store import Store, at_commit, make_engine
from tests.support.round_trips import traced

metadata = MetaData()
notes = Table("notes", metadata, Column("id", Integer, primary_key=True),
              Column("body", Text), Column("seen_at", DateTime), Column("done", Boolean))

ADD = Prepared(insert(notes).values(id=bindparam("note"), body=bindparam("body"),
                                    seen_at=bindparam("at"), done=False)
               .returning(notes.c.id))
READ = Prepared(select(notes.c.id, notes.c.body, notes.c.seen_at, notes.c.done,
                       select(notes.c.id).where(notes.c.body == "none").scalar_subquery()
                       .label("missing"))
                .where(notes.c.id == bindparam("note")))
MARK_DONE = Prepared(update(notes).where(notes.c.id == bindparam("note")).values(done=True))
AT = datetime(2026, 12, 7, 9, 30, 15, 250000)


@pytest.fixture
def store(db_url) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    made = Store(make_engine(db_url(), pool_size=2, max_overflow=0))
    metadata.create_all(made.engine)
    yield made
    made.engine.dispose()


def test_a_prepared_statement_answers_the_rows_sqlalchemy_answers(store: Store) -> None:
    with store.write() as s:
        conn = s.connection()
        assert ADD.first(conn, {"note": 1, "body": "één", "at": AT}).id == 1
        ours = READ.run(conn, {"note": 1})
        theirs = conn.execute(READ.statement, {"note": 1}).all()
        assert [tuple(row) for row in ours] == [tuple(row) for row in theirs] \
            == [(1, "één", AT, False, None)]
        assert ours[0].seen_at == AT and ours[0].missing is None
        assert READ.first(conn, {"note": 2}) is None
        assert MARK_DONE.run(conn, {"note": 1}) == []
    with store.read() as s:
        assert s.execute(select(notes.c.done)).scalar() is True


def test_a_write_sent_with_the_commit_commits_with_the_transaction(store: Store) -> None:
    with store.write() as s:
        ADD.run(s.connection(), {"note": 1, "body": "a", "at": AT})
        at_commit(s, MARK_DONE, {"note": 1})
    with store.read() as s:
        assert s.execute(select(notes.c.done)).scalar() is True


def test_an_error_in_a_write_sent_with_the_commit_leaves_nothing_of_the_transaction(
        store: Store) -> None:
    with pytest.raises(IntegrityError), store.write() as s:  # the same key twice
        ADD.run(s.connection(), {"note": 1, "body": "a", "at": AT})
        at_commit(s, ADD, {"note": 1, "body": "again", "at": AT})
    with store.read() as s:
        assert s.execute(select(notes.c.id)).all() == []


@pytest.mark.postgres
def test_a_write_costs_two_round_trips_begin_first_commit_last(create_database) -> None:  # type: ignore[no-untyped-def]
    store = Store(make_engine(create_database(), pool_size=1, max_overflow=0))
    metadata.create_all(store.engine)
    raw = store.engine.raw_connection()
    connection = raw.dbapi_connection
    raw.close()
    try:
        with traced(connection) as sent, store.write() as s:
            ADD.run(s.connection(), {"note": 1, "body": "a", "at": AT})
            at_commit(s, MARK_DONE, {"note": 1})
        assert sent.round_trips == 2
        kinds = [kind for kind, _ in sent.messages]
        first = " ".join(body for _, body in sent.messages[:kinds.index("Sync")])
        last = " ".join(body for _, body in sent.messages[kinds.index("Sync") + 1:])
        assert "BEGIN ISOLATION LEVEL READ COMMITTED" in first and "INSERT INTO notes" in first
        assert "UPDATE notes" in last and "COMMIT" in last
        with traced(connection) as sent, store.write() as s:  # nothing run: nothing sent
            s.connection()
        assert sent.round_trips == 0
    finally:
        store.engine.dispose()


@pytest.mark.postgres
def test_a_connection_the_database_ended_answers_busy_to_retry_and_the_next_write_works(
        create_database, postgres_admin) -> None:  # type: ignore[no-untyped-def]
    store = Store(make_engine(create_database(), pool_size=2, max_overflow=0))
    metadata.create_all(store.engine)
    try:
        with pytest.raises(RegistryError) as refused, store.write() as s:
            conn = s.connection()
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            with psycopg.connect(postgres_admin, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            READ.run(conn, {"note": 1})
        assert refused.value.code == "busy" and refused.value.detail["reconnect"] is True
        with store.write() as s:
            assert ADD.first(s.connection(), {"note": 1, "body": "a", "at": AT}).id == 1
    finally:
        store.engine.dispose()


# --- A statement sent ahead of the next one (send_ahead) ------------------------------------


class Stop(Exception):
    pass


def _told(into: list) -> Callable[[list[Any] | None], None]:  # type: ignore[type-arg]
    """A check that notes the rows it is told and stops the transaction on none."""
    def check(rows: list[Any] | None) -> None:
        into.append(None if rows is None else [tuple(row) for row in rows])
        if rows == []:
            raise Stop
    return check


@pytest.mark.postgres
def test_a_statement_sent_ahead_goes_in_the_next_ones_round_trip_checked_first(
        create_database) -> None:  # type: ignore[no-untyped-def]
    store = Store(make_engine(create_database(), pool_size=1, max_overflow=0))
    metadata.create_all(store.engine)
    raw = store.engine.raw_connection()
    connection = raw.dbapi_connection
    raw.close()
    told: list[Any] = []
    try:
        with traced(connection) as sent, store.write() as s:
            conn = s.connection()
            send_ahead(conn, *ADD.bound(conn, {"note": 1, "body": "a", "at": AT}), _told(told))
            assert READ.first(conn, {"note": 1}).body == "a"  # the insert went first
            at_commit(s, MARK_DONE, {"note": 1})
        assert told == [[(1,)]] and sent.round_trips == 2
        with store.write() as s:  # sent with SQLAlchemy's first statement too, checked
            conn = s.connection()
            send_ahead(conn, *ADD.bound(conn, {"note": 2, "body": "b", "at": AT}), _told(told))
            assert conn.execute(select(notes.c.id).order_by(notes.c.id)).scalars().all() \
                == [1, 2]
        with store.write() as s:  # nothing run: committing sends it first
            conn = s.connection()
            send_ahead(conn, *ADD.bound(conn, {"note": 3, "body": "c", "at": AT}), _told(told))
        assert told == [[(1,)], [(2,)], [(3,)]]
    finally:
        store.engine.dispose()


@pytest.mark.postgres
def test_a_check_that_stops_leaves_nothing_of_the_transaction(create_database) -> None:  # type: ignore[no-untyped-def]
    store = Store(make_engine(create_database(), pool_size=1, max_overflow=0))
    metadata.create_all(store.engine)
    taken = Prepared(select(notes.c.id).where(notes.c.id == -1))  # answers no row: "stop"
    told: list[Any] = []
    try:
        with pytest.raises(Stop), store.write() as s:
            conn = s.connection()
            send_ahead(conn, *taken.bound(conn, {}), _told(told))
            ADD.run(conn, {"note": 1, "body": "a", "at": AT})  # ran, then rolled back
        with pytest.raises(Stop), store.write() as s:  # at the commit: its writes not sent
            conn = s.connection()
            send_ahead(conn, *taken.bound(conn, {}), _told(told))
            at_commit(s, ADD, {"note": 2, "body": "b", "at": AT})
        with store.read() as s:
            assert s.execute(select(notes.c.id)).all() == []
        assert told == [[], []]
    finally:
        store.engine.dispose()


@pytest.mark.postgres
def test_when_the_round_trip_fails_the_check_is_told_and_the_failure_raised(
        create_database) -> None:  # type: ignore[no-untyped-def]
    store = Store(make_engine(create_database(), pool_size=1, max_overflow=0))
    metadata.create_all(store.engine)
    told: list[Any] = []
    try:
        with pytest.raises(IntegrityError), store.write() as s:  # the next statement fails
            conn = s.connection()
            send_ahead(conn, *ADD.bound(conn, {"note": 1, "body": "a", "at": AT}), _told(told))
            ADD.run(conn, {"note": 1, "body": "again", "at": AT})
        with store.write() as s:
            ADD.run(s.connection(), {"note": 5, "body": "e", "at": AT})
        with pytest.raises(IntegrityError), store.write() as s:  # the one ahead fails
            conn = s.connection()
            send_ahead(conn, *ADD.bound(conn, {"note": 5, "body": "a", "at": AT}), _told(told))
            READ.run(conn, {"note": 5})
        assert told == [[(1,)], None]
        with store.read() as s:
            assert s.execute(select(notes.c.id)).scalars().all() == [5]
    finally:
        store.engine.dispose()


@pytest.mark.postgres
def test_the_hot_paths_statements_stay_prepared_after_a_rollback(create_database) -> None:  # type: ignore[no-untyped-def]
    """psycopg, had it prepared a statement of its own (it does after 5 runs), would drop
    every prepared statement of the connection after a ROLLBACK: the store lets it prepare
    none, so the hot path's stay."""
    store = Store(make_engine(create_database(), pool_size=1, max_overflow=0))
    metadata.create_all(store.engine)
    try:
        for _ in range(6):
            with store.write() as s:
                s.execute(select(notes.c.id).where(notes.c.id == 0)).all()
        with store.write() as s:
            ADD.run(s.connection(), {"note": 1, "body": "a", "at": AT})
        with pytest.raises(IntegrityError), store.write() as s:
            ADD.run(s.connection(), {"note": 1, "body": "again", "at": AT})
        for note in (2, 3):  # SQLAlchemy's statements, then the prepared one, on that connection
            with store.write() as s:
                s.execute(select(notes.c.id).where(notes.c.id == 0)).all()
                assert ADD.first(s.connection(), {"note": note, "body": "b", "at": AT}).id == note
    finally:
        store.engine.dispose()


@pytest.mark.postgres
def test_a_parameter_the_hot_path_does_not_send_is_refused_before_anything_goes(
        create_database) -> None:  # type: ignore[no-untyped-def]
    store = Store(make_engine(create_database(), pool_size=1, max_overflow=0))
    metadata.create_all(store.engine)
    try:
        with pytest.raises(TypeError), store.write() as s:
            ADD.run(s.connection(), {"note": 1, "body": "a", "at": AT.date()})
        with store.write() as s:  # the connection was left as it was
            assert ADD.first(s.connection(), {"note": 1, "body": "a", "at": AT}).id == 1
    finally:
        store.engine.dispose()
