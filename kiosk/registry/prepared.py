"""The hot path's statements, sent to PostgreSQL on the driver's own connection.

A claim runs a handful of statements, and through SQLAlchemy's execution machinery (execution
context, result set-up, events) each costs about twice the CPU of the same statement run on
psycopg's connection directly (measured in process: 0.135 against 0.065 ms a statement).
`Prepared` holds one statement, written once as SQLAlchemy Core: on SQLite it runs as every
other statement does; on PostgreSQL it is compiled once and sent on the transaction's own
driver connection through libpq itself (`kiosk.registry.libpq`: below psycopg's cursors, which
cost as much again), prepared on the server the first time on each connection (unless the
store turned that off for PgBouncer). `run_sql` does the same for a statement that only
PostgreSQL has (`SELECT … FROM kiosk_claim(…)`). What a transaction sends before its first
statement (the BEGIN, a statement sent ahead) and with its COMMIT goes in the same round trip.

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
from sqlalchemy import Connection, Insert, Select, Update
from sqlalchemy.exc import DBAPIError

from . import libpq


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


Params = libpq.Params
# Told the rows of a statement sent ahead (`send_ahead`), or None when its round trip failed
# before its answer came; raises to stop the transaction.
Check = Callable[[list[Any] | None], None]


# Where a connection keeps the BEGIN of its transaction until its first statement goes, and
# the statements to send ahead of that one.
_PENDING_BEGIN = "kiosk_pending_begin"
_AHEAD = "kiosk_ahead"
# The names of the statements prepared on the connection (kiosk.registry.libpq).
_PREPARED = "kiosk_prepared"


def keep_prepared(info: dict[str, Any]) -> None:
    """Let the hot path prepare its statements on the connection whose `info` (SQLAlchemy's,
    kept with the driver's connection) this is; without, each goes unnamed (PgBouncer)."""
    info[_PREPARED] = set()


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
        try:
            _send(conn, _driver(conn), [])
        except psycopg.Error as exc:
            raise _as_sqlalchemy_raises(conn, exc, "BEGIN", None) from exc


def send_begin(conn: Connection, cursor: Any) -> None:
    """Before one of SQLAlchemy's statements: the transaction's BEGIN, if still to be sent,
    as one simple-protocol query (one round trip, as a bare BEGIN); with what goes ahead,
    checked, in one round trip too (a failure raised as the driver's, which SQLAlchemy
    wraps as it wraps its own)."""
    if _AHEAD in conn.info:
        _send(conn, _driver(conn), [])
        return
    begin = conn.info.pop(_PENDING_BEGIN, None)
    if begin:
        cursor.execute("; ".join(begin))


def run_sql(conn: Connection, sql: str, params: Params) -> list[Any]:
    """A PostgreSQL statement (psycopg's placeholders) on the transaction's driver
    connection: its rows (see the module's docstring). A BEGIN still to be sent goes in the
    same round trip, and so does what goes ahead (checked first)."""
    driver = _driver(conn)
    try:
        (result,) = _send(conn, driver, [(sql, params)])
    except psycopg.Error as exc:
        raise _as_sqlalchemy_raises(conn, exc, sql, params) from exc
    return libpq.rows(driver, result)


def _send(conn: Connection, driver: psycopg.Connection[Any],
          statements: Sequence[tuple[str, Params]]) -> list[Any]:
    """The BEGIN still to be sent, what goes ahead, then `statements`, in one round trip on
    libpq (kiosk.registry.libpq): the results of `statements`. What went ahead is told its
    rows first; where the round trip failed, told what it can be, then the failure raised."""
    begin = [(part, None) for part in conn.info.pop(_PENDING_BEGIN, ())]
    ahead: list[tuple[str, Params, Check]] = conn.info.pop(_AHEAD, [])
    items = [*begin, *((sql, params) for sql, params, _check in ahead), *statements]
    try:
        answers = libpq.round_trip(driver, items, conn.info.get(_PREPARED))
    except psycopg.Error:
        for *_statement, check in ahead:
            with contextlib.suppress(Exception):
                check(None)
        raise
    told = answers.results[len(begin):len(begin) + len(ahead)]
    if answers.error is not None:
        for result, (*_statement, check) in zip(told, ahead, strict=True):
            with contextlib.suppress(Exception):
                check(libpq.rows(driver, result) if result is not None else None)
        raise answers.error
    for result, (*_statement, check) in zip(told, ahead, strict=True):
        check(libpq.rows(driver, result))
    return answers.results[len(begin) + len(ahead):]


def commit_with(conn: Connection, statements: Sequence[tuple[str, Params]]) -> None:
    """Commit the PostgreSQL transaction with `statements` sent first, all in one round trip
    (libpq's pipeline mode): writes whose rows nobody reads, which must commit with the
    transaction. An error in any of them rolls it all back, as it would one by one. The
    caller then ends the transaction in SQLAlchemy's books as usual (`conn.commit()`: the
    driver has nothing left to commit)."""
    send_pending(conn)  # what goes ahead: sent and checked before anything may commit
    try:
        _send(conn, _driver(conn), [*statements, ("COMMIT", None)])
    except psycopg.Error as exc:
        sql, params = statements[-1] if statements else ("COMMIT", None)
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
