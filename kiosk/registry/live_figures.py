"""What /metrics reads from the database when it is scraped (kiosk/metrics.py): the seats
against the cap, the waiting list, both outboxes' backlogs and the terminals by state.

One short read transaction, with a deadline: on PostgreSQL `statement_timeout` bounds each
statement (and the connection's `lock_timeout` any wait for a lock), so a scrape during a
migration or a stuck vacuum answers "busy" instead of holding a server thread. SQLite's
readers never wait for its writer (WAL). Six small statements: the programme row, two counts
over the unsent rows of each outbox (their indexes), and the terminals (tens of rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from . import academy, notices
from .domain import TerminalView, terminal_state
from .store import THE_PROGRAMME, Library, Programme, Store, Terminal

TERMINAL_STATES = ("online", "offline", "outdated", "revoked")  # domain.terminal_state's
DEADLINE_MS = 2000


@dataclass(frozen=True)
class Seats:
    cap: int
    taken: int  # seated or offered: never above cap + the seats kept over a lowered cap
    waiting: int


@dataclass(frozen=True)
class LiveFigures:
    seats: Seats | None  # None before the programme is set up
    notices_waiting: int
    notices_given_up: int
    academy_waiting: int
    academy_given_up: int
    terminals: dict[str, int]  # by state, every state present


def read(store: Store, now: datetime, version: str,
         deadline_ms: int = DEADLINE_MS) -> LiveFigures:
    """The figures as one transaction sees them. Raises RegistryError("busy") past the
    deadline or when the database cannot be reached."""
    with store.read() as s:
        if not store.is_sqlite:
            s.connection().exec_driver_sql(
                f"SET LOCAL statement_timeout = {int(deadline_ms)}")
        row = s.execute(select(Programme.cap, Programme.seats_taken, Programme.waiting)
                        .where(THE_PROGRAMME)).first()
        seats = Seats(row.cap, row.seats_taken, row.waiting or 0) if row else None
        notices_waiting, notices_given_up = notices.backlog(s)
        academy_waiting, academy_given_up = academy.backlog(s)
        terminals = dict.fromkeys(TERMINAL_STATES, 0)
        for t in s.execute(select(Terminal.id, Terminal.name, Library.code, Terminal.created_at,
                                  Terminal.last_seen_at, Terminal.version, Terminal.revoked_at)
                           .join(Library, Library.id == Terminal.library_id)):
            view = TerminalView(id=t.id, name=t.name, library_code=t.code,
                                created_at=t.created_at, last_seen_at=t.last_seen_at,
                                version=t.version, revoked=t.revoked_at is not None)
            terminals[terminal_state(view, now, version)] += 1
    return LiveFigures(seats, notices_waiting, notices_given_up, academy_waiting,
                       academy_given_up, terminals)
