"""The hot path's statements, sent to PostgreSQL on the driver's own connection.

A claim runs a handful of statements, and through SQLAlchemy's execution machinery (execution
context, result set-up, events) each costs about twice the CPU of the same statement run on
psycopg's connection directly (measured in process: 0.135 against 0.065 ms a statement).
`Prepared` holds one statement, written once as SQLAlchemy Core: on SQLite it runs as every
other statement does; on PostgreSQL it is compiled once and sent on the transaction's own
driver connection, where psycopg prepares it on the server once it ran a few times (unless the
store turned that off for PgBouncer). `run_sql` does the same for a statement
that only PostgreSQL has (`SELECT … FROM kiosk_claim(…)`).

What the caller sees does not depend on the path:

* rows with attribute access (`row.patron_id`), as SQLAlchemy's;
* the same values: only statements whose columns and parameters need no conversion on
  PostgreSQL (integers, text, booleans, timestamps without time zone) belong here,
  `tests/integration/test_prepared.py` compares both paths;
* a driver error is raised as SQLAlchemy raises it (a `DBAPIError` wrapping psycopg's), and
  a connection found dead is invalidated with the rest of the pool, so `store.Store`'s rule
  (a lock wait past its bound or a lost connection answers "busy", the latter with
  `reconnect`) holds unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Insert, Select, Update
from sqlalchemy.exc import DBAPIError


class Prepared:
    """One statement of the hot path (see the module's docstring)."""

    def __init__(self, statement: Select[*tuple[Any, ...]] | Insert | Update):
        self.statement = statement
        self._sql = ""
        self._defaults: dict[str, Any] = {}

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """All the rows the statement answers (none for a write without RETURNING)."""
        if conn.dialect.name != "postgresql":
            result = conn.execute(self.statement, dict(params))
            return list(result) if result.returns_rows else []
        return run_sql(conn, *self.bound(conn, params))

    def bound(self, conn: Connection, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The PostgreSQL statement and its parameters, as psycopg takes them."""
        if not self._sql:
            compiled = self.statement.compile(dialect=conn.dialect)
            # Values written into the statement (`state="running"`) are binds too.
            self._defaults = dict(compiled.params)
            self._sql = compiled.string
        return self._sql, {**self._defaults, **params}

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        rows = self.run(conn, params)
        return rows[0] if rows else None


Params = Mapping[str, Any] | Sequence[Any] | None
# Told the rows of a statement sent ahead (`send_ahead`), or None when its round trip failed
# before its answer came; raises to stop the transaction.
Check = Callable[[list[Any] | None], None]


# Where a connection keeps the BEGIN of its transaction until its first statement goes, and
# the statements to send ahead of that one.
_PENDING_BEGIN = "kiosk_pending_begin"
_AHEAD = "kiosk_ahead"


def begin_later(conn: Connection, begin: tuple[str, ...]) -> None:
    """Open the transaction with `begin` (BEGIN and its SET LOCALs), sent with the
    transaction's first statement rather than on its own: one round trip less per
    transaction, and none for one that runs no statement. Every statement then sends it
    first: ours (`run_sql`, `commit_with`) in the same round trip, SQLAlchemy's through
    `send_begin`, its `before_cursor_execute` hook. Set again at every BEGIN, so what a
    transaction that ran nothing leaves behind is never sent (nor what it sent ahead)."""
    conn.info[_PENDING_BEGIN] = begin
    conn.info.pop(_AHEAD, None)


def send_ahead(conn: Connection, sql: str, params: Params, check: Check) -> None:
    """Send a statement of the PostgreSQL transaction with its next one, in the same round
    trip, and `check` its rows before anything else runs: a check that raises ends the
    transaction (rolled back, that next statement with it). Where the round trip failed,
    its failure is raised, after the check was told (its rows, or None if none came; what
    it raises is dropped). Committing sends and checks it first, alone (as does
    `send_pending`)."""
    conn.info.setdefault(_AHEAD, []).append((sql, params, check))


def send_pending(conn: Connection) -> None:
    """Send now, checked, what goes ahead of the transaction's next statement (see
    `send_ahead`), with the BEGIN if still to be sent; nothing if nothing goes ahead."""
    if conn.info.get(_AHEAD):
        driver = _driver(conn)
        try:
            _send_pending(conn, driver)
        except psycopg.Error as exc:
            raise _as_sqlalchemy_raises(conn, exc, "", None) from exc


def send_begin(conn: Connection, cursor: Any) -> None:
    """Before one of SQLAlchemy's statements: the transaction's BEGIN, if still to be sent,
    as one simple-protocol query (one round trip, as a bare BEGIN); with what goes ahead,
    checked, in one round trip too."""
    if _AHEAD in conn.info:
        _send_pending(conn, _driver(conn))
        return
    begin = conn.info.pop(_PENDING_BEGIN, None)
    if begin:
        cursor.execute("; ".join(begin))


def run_sql(conn: Connection, sql: str, params: Params) -> list[Any]:
    """A PostgreSQL statement (psycopg's placeholders) on the transaction's driver
    connection: its rows (see the module's docstring). A BEGIN still to be sent goes in the
    same round trip (psycopg's pipeline mode), and so does what goes ahead (checked first)."""
    driver = _driver(conn)
    cursor = driver.cursor(row_factory=namedtuple_row)
    try:
        if _PENDING_BEGIN in conn.info or _AHEAD in conn.info:
            _send_pending(conn, driver, (cursor, sql, params))
        else:
            cursor.execute(sql, params)
        return _rows(cursor)
    except psycopg.Error as exc:
        raise _as_sqlalchemy_raises(conn, exc, sql, params) from exc
    finally:
        cursor.close()


def _send_pending(conn: Connection, driver: psycopg.Connection[Any],
                  then: tuple[psycopg.Cursor[Any], str, Params] | None = None) -> None:
    """The BEGIN still to be sent and what goes ahead, then `then`'s statement on its cursor,
    in one round trip; what went ahead is checked once all answered."""
    begin = conn.info.pop(_PENDING_BEGIN, ())
    ahead = conn.info.pop(_AHEAD, ())
    sent: list[psycopg.Cursor[Any]] = []
    try:
        with driver.pipeline():
            for part in begin:
                driver.execute(part)
            for sql, params, _check in ahead:
                sent.append(driver.execute(sql, params))
            if then is not None:
                cursor, sql, params = then
                cursor.execute(sql, params)
    except psycopg.Error:
        for i, (*_statement, check) in enumerate(ahead):  # each told; the failure is raised
            result = sent[i].pgresult if i < len(sent) else None
            answered = result is not None and result.status == ExecStatus.TUPLES_OK
            with contextlib.suppress(Exception):
                check(sent[i].fetchall() if answered else None)
        raise
    for before, (*_statement, check) in zip(sent, ahead, strict=True):
        with before:
            check(_rows(before))


def _rows(cursor: psycopg.Cursor[Any]) -> list[Any]:
    # Whether it answered rows, from the result itself: `cursor.description` would build a
    # Column object per column on every call, only to be thrown away.
    result = cursor.pgresult
    return cursor.fetchall() if result is not None and result.nfields else []


def commit_with(conn: Connection, statements: Sequence[tuple[str, Params]]) -> None:
    """Commit the PostgreSQL transaction with `statements` sent first, all in one round trip
    (psycopg's pipeline mode): writes whose rows nobody reads, which must commit with the
    transaction. An error in any of them rolls it all back, as it would one by one. The
    caller then ends the transaction in SQLAlchemy's books as usual (`conn.commit()`: the
    driver has nothing left to commit)."""
    send_pending(conn)  # what goes ahead: sent and checked before anything may commit
    driver = _driver(conn)
    begin = [(part, None) for part in conn.info.pop(_PENDING_BEGIN, ())]
    sql, params = "COMMIT", None
    try:
        # The pipeline's end is its one Sync (`driver.commit()` here would add a second).
        with driver.pipeline(), driver.cursor() as cursor:
            for sql, params in [*begin, *statements, ("COMMIT", None)]:
                cursor.execute(sql, params)
    except psycopg.Error as exc:
        raise _as_sqlalchemy_raises(conn, exc, sql, params) from exc


def _driver(conn: Connection) -> psycopg.Connection[Any]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def _as_sqlalchemy_raises(conn: Connection, exc: psycopg.Error, sql: str,
                          params: Params) -> DBAPIError:
    driver = _driver(conn)
    lost = driver.broken or driver.closed  # SQLAlchemy's own test for psycopg
    if lost:
        # As SQLAlchemy does with a connection it finds dead: this one is dropped, and the
        # pool's others too (a restarted database closed them all, unseen).
        conn.invalidate(exc)
        conn.engine.dispose()
    error = DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=lost)
    assert isinstance(error, DBAPIError)
    return error
