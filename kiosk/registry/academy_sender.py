"""Sending the academy's outbox (`academy_changes`) to the platform over SCIM, outside any
patron's request.

Per patron, in order: only the patron's oldest waiting change (their "head") is ever taken,
by a lease (one UPDATE that moves its `next_attempt_at` forward only if nobody moved it since
it was read), so two senders (gunicorn workers, a CLI run) never sync one patron at once, and
a later change of a patron never overtakes an earlier one. The sync reads the patron's state
then, makes the platform match it, and marks done exactly the rows it saw before reading (a
change committed meanwhile stays waiting for the next round). A sender that dies mid-sync
leaves the lease to expire; the sync is repeated, which is harmless (users are found by our
externalId). No SCIM call happens inside a database transaction.

Whose fault a failure is decides what it costs (see `academy_link`):
- the platform cannot be used (`LinkDown`): the head waits longer each time, up to
  OUTAGE_WAIT, and the round stops; it is never given up (an outage of days loses nothing,
  and the platform's return is noticed within minutes);
- the platform refuses this user (`Refused`): it waits longer each time and is given up after
  MAX_ATTEMPTS, for the coordinator (the dashboard counts it and can send it again).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import aliased

from .academy import MAX_ATTEMPTS, account_of
from .academy_link import AcademyLink, LinkDown, Refused, ScimConfig
from .periodic import run_every
from .staff import pseudonym, record
from .store import AcademyChange, Store

log = logging.getLogger("kiosk.academy")

# Waits after the 1st, 2nd, … failed attempt; the last one repeats.
BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10),
           timedelta(hours=1), timedelta(hours=6), timedelta(hours=24))
LEASE = timedelta(minutes=5)  # a claimed head is not claimed again before this
# While the platform is down each round tries one patron's head; its waits grow only to this,
# so every change goes within minutes of the platform's return, however long it was down.
OUTAGE_WAIT = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


@dataclass(frozen=True)
class Round:
    synced: int  # patrons whose platform user was checked and made to match
    changed: int  # of those, how many needed a change on the platform
    down: str  # why the platform could not be used this round ("" if it could)


# The platform problem last logged, per registry: an outage is logged when it starts or
# changes and when it is over, not every round.
_outages: weakref.WeakKeyDictionary[Store, str] = weakref.WeakKeyDictionary()
_outages_lock = threading.Lock()


def _down(store: Store, problem: str) -> None:
    with _outages_lock:
        if _outages.get(store) == problem:
            return
        _outages[store] = problem
    log.warning("academy platform unusable (tried again with back-off): %s", problem)


def _up(store: Store) -> None:
    with _outages_lock:
        if _outages.pop(store, None) is None:
            return
    log.info("academy platform usable again")


def due_heads(store: Store, now: datetime, limit: int) -> list[tuple[int, int, datetime]]:
    """(id, patron_id, next_attempt_at) of each patron's oldest waiting change, if due."""
    other = aliased(AcademyChange)
    head = (select(func.min(other.id))
            .where(other.patron_id == AcademyChange.patron_id, other.done_at.is_(None),
                   other.attempts < MAX_ATTEMPTS)
            .scalar_subquery())
    with store.read() as s:
        rows = s.execute(
            select(AcademyChange.id, AcademyChange.patron_id, AcademyChange.next_attempt_at)
            .where(AcademyChange.done_at.is_(None), AcademyChange.attempts < MAX_ATTEMPTS,
                   AcademyChange.next_attempt_at <= now, AcademyChange.id == head)
            .order_by(AcademyChange.id).limit(limit)).all()
    return [(r.id, r.patron_id, r.next_attempt_at) for r in rows]


def _claim(store: Store, change_id: int, seen: datetime, now: datetime) -> bool:
    with store.write(durable=False) as s:
        taken = s.connection().execute(
            update(AcademyChange)
            .where(AcademyChange.id == change_id, AcademyChange.done_at.is_(None),
                   AcademyChange.next_attempt_at == seen)
            .values(next_attempt_at=now + LEASE))
        return taken.rowcount == 1


def _done(store: Store, patron_id: int, ids: list[int], outcome: str, now: datetime) -> None:
    with store.write() as s:
        s.connection().execute(
            update(AcademyChange)
            .where(AcademyChange.id.in_(ids), AcademyChange.done_at.is_(None))
            .values(done_at=now, outcome=outcome, last_error=""))
        if outcome != "unchanged":
            record(s, now, "registry", "academy_user_changed", subject=pseudonym(patron_id),
                   change=outcome)


def _failed(store: Store, change_id: int, reason: str, now: datetime, *,
            give_up: bool) -> int:
    """Count an attempt on the head; the platform's outage never gives it up."""
    with store.write() as s:
        attempts = (s.scalar(select(AcademyChange.attempts)
                             .where(AcademyChange.id == change_id)) or 0) + 1
        wait = backoff(attempts)
        if not give_up:
            attempts = min(attempts, MAX_ATTEMPTS - 1)
            wait = min(wait, OUTAGE_WAIT)
        s.connection().execute(
            update(AcademyChange).where(AcademyChange.id == change_id)
            .values(attempts=attempts, last_error=reason[:200], next_attempt_at=now + wait))
    return attempts


def sync_patron(store: Store, link: AcademyLink, patron_id: int, now: datetime) -> str:
    """Read the patron's waiting changes, then their state, make the platform match it, and
    mark those changes done; answers the outcome. Raises LinkDown or Refused."""
    with store.read() as s:
        ids = list(s.scalars(select(AcademyChange.id).where(
            AcademyChange.patron_id == patron_id, AcademyChange.done_at.is_(None))))
        ext_id = s.scalar(select(AcademyChange.external_id)
                          .where(AcademyChange.patron_id == patron_id)
                          .order_by(AcademyChange.id.desc()).limit(1)) or ""
        account = account_of(s, patron_id)
    outcome = link.sync(account, account.external_id if account else ext_id)
    _done(store, patron_id, ids, outcome, now)
    return outcome


def send_due(store: Store, cfg: ScimConfig, now: datetime, limit: int = 100) -> Round:
    """Sync the patrons whose changes are due (oldest first, at most `limit`)."""
    heads = due_heads(store, now, limit)
    synced = changed = 0
    if not heads:
        return Round(0, 0, "")
    with AcademyLink(cfg) as link:
        for change_id, patron_id, seen in heads:
            if not _claim(store, change_id, seen, now):
                continue  # another sender has this patron
            try:
                outcome = sync_patron(store, link, patron_id, now)
            except LinkDown as exc:
                _failed(store, change_id, str(exc), now, give_up=False)
                _down(store, str(exc))
                return Round(synced, changed, str(exc))
            except Refused as exc:
                attempts = _failed(store, change_id, str(exc), now, give_up=True)
                log.warning("academy change %s refused (attempt %s of %s): %s", change_id,
                            attempts, MAX_ATTEMPTS, exc)
                continue
            _up(store)
            synced += 1
            changed += outcome != "unchanged"
    return Round(synced, changed, "")


def pending(store: Store) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).where(and_(
            AcademyChange.done_at.is_(None), AcademyChange.attempts < MAX_ATTEMPTS))) or 0


def start_sender(store: Store, cfg: ScimConfig, clock: Callable[[], datetime],
                 every: float = 10.0) -> threading.Event:
    """Sync due changes in the background every `every` seconds while the server runs;
    answers an event that stops it."""
    return run_every(every, lambda: send_due(store, cfg, clock()),
                     name="kiosk-academy-sender", log=log)
