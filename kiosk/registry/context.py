"""What every use case of the registry needs, and nothing more: the store, the clock, the
seat ledger with its event sink, and how a patron's password is hashed.

A use case is a small class built from this context plus the other use cases it calls,
passed to its constructor (see `services.RegistryService`, which builds them all). Settings
that only some use cases need (the minimum age, the log-in policy, session limits, the
terminal cache) are given to those use cases, not put here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import ledger
from .domain import Standing
from .ledger import Ledger, SeatEvents
from .passwords import hash_password
from .store import Runner, Store

# A patron session's (and a terminal's) last-seen time is written at most about this often,
# not on every request.
TOUCH_EVERY = timedelta(seconds=15)


def utcnow() -> datetime:
    """Naive UTC: what both SQLite and PostgreSQL `timestamp` columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class RegistryContext:
    """`events` is where seat events go once the ledger has written them
    (`seat_events.tell`: e-mail notices, the audit entries of offers). `hash_password`: argon2id
    (passwords.py) in every registry; only the demo's fictional patrons, who share one
    password, get one that hashes it once (`sample_patrons`)."""

    store: Store
    clock: Callable[[], datetime]
    events: SeatEvents
    hash_password: Callable[[str], str] = hash_password

    def seats(self, s: Runner) -> Ledger:
        """The seat ledger, the programme lock taken in `s`'s transaction (see ledger.py)."""
        return ledger.lock(s, clock=self.clock, events=self.events)

    def release(self, s: Runner, patron_id: int,
                only: Standing | None = None) -> Standing | None:
        """A patron's place given up, their courses with it, a freed seat served (see
        `ledger.release`: one round trip on PostgreSQL)."""
        return ledger.release(s, patron_id, only=only, clock=self.clock, events=self.events)
