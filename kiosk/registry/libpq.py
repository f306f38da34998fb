"""A round trip of the hot path's statements on libpq itself (psycopg's `pq` layer).

Through psycopg's cursors, each statement of a round trip costs Python generators to send it,
to wait and to fetch its result: a claim's three round trips took 14 waits and about a third
of its CPU in process (benchmarks/README.md). Here a round trip is every statement sent in
libpq's pipeline mode, one Sync, the socket waited on only when libpq has nothing to give, and
the results taken in order; rows are loaded by psycopg's own loaders (`Transformer`), so the
values are of the types psycopg gives.

The rules a statement sent here follows (`prepared.py` sends only such statements):

* its parameters are None, bool, int, str or a datetime (naive UTC, as the store keeps them;
  an aware one is turned into that), sent as text; the statement types them (SQLAlchemy
  writes `%(x)s::INTEGER`; a function's arguments are its own);
* it is prepared on the server once per connection under a name of this module's, unless the
  connection must not keep prepared statements (through PgBouncer), where it goes unnamed.
  psycopg must not prepare statements of its own on such a connection (`prepare_threshold`
  None): after a ROLLBACK it deallocates every prepared statement of the connection, these
  too;
* the first failure of the round trip is raised as psycopg raises it (`psycopg.errors`), once
  every result was read: the connection is left ready (its transaction failed) or, lost, is
  seen by psycopg as closed.
"""

from __future__ import annotations

import itertools
import re
import select
import threading
from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.adapt import Transformer
from psycopg.pq.abc import PGconn, PGresult

Params = Mapping[str, Any] | Sequence[Any] | None

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_FAILED = (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.PIPELINE_ABORTED)


@dataclass(frozen=True)
class Statement:
    """A statement written with psycopg's placeholders, as libpq takes it."""

    text: bytes  # with $1, $2… in place of %(name)s or %s
    names: tuple[str, ...] | None  # the parameters' names in order; None: positional
    name: bytes  # its name where it is prepared

    def values(self, params: Params) -> list[bytes | None]:
        if params is None:
            return []
        if self.names is None:
            assert not isinstance(params, Mapping)
            return [_text(value) for value in params]
        assert isinstance(params, Mapping)
        return [_text(params[name]) for name in self.names]


_statements: dict[str, Statement] = {}
_numbers = itertools.count(1)
_statements_lock = threading.Lock()


def statement(sql: str) -> Statement:
    """`sql` as libpq takes it, made once per process."""
    found = _statements.get(sql)
    if found is not None:
        return found
    names: list[str] = []
    positions = itertools.count(1)

    def placeholder(match: re.Match[str]) -> str:
        if match.group(0) == "%%":
            return "%"
        name = match.group(1)
        if name is None:
            return f"${next(positions)}"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    text = _PLACEHOLDER.sub(placeholder, sql).encode()
    with _statements_lock:
        found = _statements.get(sql)
        if found is None:
            found = _statements[sql] = Statement(text, tuple(names) if names else None,
                                                 f"kiosk_{next(_numbers)}".encode())
    return found


def _text(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return str(int(value)).encode()
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # the store's moments are naive UTC (context.utcnow)
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ").encode()
    raise TypeError(f"not a parameter of the hot path: {type(value).__name__}")


@dataclass
class Answers:
    """What a round trip answered: each statement's result (None for one that answers none,
    or that did not run), and the first failure, as psycopg raises it."""

    results: list[PGresult | None]
    error: psycopg.Error | None = None


def round_trip(driver: psycopg.Connection[Any], items: Sequence[tuple[str, Params]],
               prepared: set[bytes] | None) -> Answers:
    """Send `items` in one round trip and read every answer. `prepared`: the names this
    connection has prepared (kept by the caller, with the connection), added to as statements
    get prepared; None where it must not keep any (each statement then goes unnamed). A
    connection lost on the way raises psycopg's OperationalError."""
    pg = driver.pgconn
    # Written out first: a parameter refused here leaves nothing half sent.
    written = [(st, st.values(params)) for st, params in
               ((statement(sql), params) for sql, params in items)]
    # Per command sent: the name it prepares, or None for one of `items`.
    commands: list[bytes | None] = []
    with driver.lock:
        pg.enter_pipeline_mode()
        try:
            for st, values in written:
                if prepared is None:
                    pg.send_query_params(st.text, values)
                else:
                    if st.name not in prepared and st.name not in commands:
                        pg.send_prepare(st.name, st.text)
                        commands.append(st.name)
                    pg.send_query_prepared(st.name, values)
                commands.append(None)
            pg.pipeline_sync()
            while pg.flush():
                select.select([], [pg.socket], [])
            answers = _read(pg)
        finally:
            if pg.status == pq.ConnStatus.OK and pg.pipeline_status != pq.PipelineStatus.OFF:
                pg.exit_pipeline_mode()
    out = Answers([])
    for prepares, answer in zip(commands, answers, strict=True):
        result = answer[-1] if answer else None
        if out.error is None and result is not None \
                and result.status == pq.ExecStatus.FATAL_ERROR:
            out.error = errors.error_from_result(result, encoding=driver.info.encoding)
        if prepares is None:
            out.results.append(result if result is None or result.status not in _FAILED
                               else None)
        elif prepared is not None and result is not None \
                and result.status == pq.ExecStatus.COMMAND_OK:
            prepared.add(prepares)
    return out


def _read(pg: PGconn) -> list[list[PGresult]]:
    """Every command's results, in order, up to the Sync."""
    answers: list[list[PGresult]] = []
    current: list[PGresult] = []
    while True:
        while pg.is_busy():
            select.select([pg.socket], [], [])
            pg.consume_input()
        result = pg.get_result()
        if result is None:
            answers.append(current)
            current = []
        elif result.status == _SYNC:
            return answers
        else:
            current.append(result)


_row_types: dict[tuple[str, ...], Any] = {}


def rows(driver: psycopg.Connection[Any], result: PGresult | None) -> list[Any]:
    """The rows of `result`, with attribute access (as psycopg's `namedtuple_row`)."""
    if result is None or result.status != pq.ExecStatus.TUPLES_OK or not result.nfields:
        return []
    names = tuple((result.fname(i) or b"").decode() for i in range(result.nfields))
    row_type = _row_types.get(names)
    if row_type is None:
        row_type = _row_types.setdefault(names, _row_type(names))
    loader = Transformer(driver)
    loader.set_pgresult(result)
    return loader.load_rows(0, result.ntuples, row_type._make)


def _row_type(names: tuple[str, ...]) -> Any:
    return namedtuple("Row", names, rename=True)  # the columns are the query's
