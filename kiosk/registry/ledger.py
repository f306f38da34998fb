"""The seat ledger: the only code that reads places and the programme's counters to take a
decision, and the only code that writes them (`tests/unit/test_ledger_rules.py` fails on any
other module that does).

What it keeps true: `seats_taken` is the number of places seated or offered and never above
`cap + over_cap`; `waiting` is the number of places waiting, each with its own queue number
below `next_queue_no`; a patron has at most one place. Every decision reads those counts
while holding the lock on the programme row, and the only way to obtain a `Ledger` is
`lock()`, which takes it: holding a Ledger is the proof that the lock is held. (PostgreSQL:
`SELECT … FOR UPDATE` under READ COMMITTED; SQLite: the write transaction's BEGIN
IMMEDIATE already holds the database's one write lock, and FOR UPDATE would be a no-op.)

The claim — the one operation that must be fast — is `claim()`: on PostgreSQL a single call
of the server-side function `kiosk_claim` (migration 0005) that takes the lock, reads the
patron's place after it, decides and writes in one round trip, with nothing in Python while
the lock is held; on SQLite the same steps through a Ledger (`Ledger.grant_or_queue`), which
is also the path of the rare claim that must first end lapsed offers.

Seat events (granted, joined, promoted, offered, accepted, declined, expired, released)
leave the ledger through one sink, given when it is obtained: that is where e-mail notices
and the audit entries of offers hook in (`seat_events.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import Connection, case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from . import closures, domain, promotion
from .domain import ClaimResult, RegistryError, Standing
from .prepared import run_sql
from .store import (
    THE_PROGRAMME,
    EnrolmentRow,
    Institution,
    Library,
    Patron,
    Place,
    Programme,
    Runner,
    insert_ignoring_duplicates,
)

# Placed here, not in `domain`: they name the ledger's rows, not rules.
HOLDS_A_SEAT = (Standing.SEATED.value, Standing.OFFERED.value)


class SeatEventKind(StrEnum):
    GRANTED = "granted"  # a claim took a free seat
    JOINED = "joined"  # a claim joined the waiting line
    PROMOTED = "promoted"  # a freed seat went to the first in line ("grant" policy)
    OFFERED = "offered"  # a freed seat is held for the first in line until `until`
    ACCEPTED = "accepted"  # an offer taken: seated now
    DECLINED = "declined"  # an offer refused: its seat goes on
    EXPIRED = "expired"  # an offer past its time: its seat goes on
    RELEASED = "released"  # a seat or waiting place given up, erased or merged away


@dataclass(frozen=True)
class SeatEvent:
    kind: SeatEventKind
    patron_id: int
    at: datetime
    had: Standing = Standing.NONE  # RELEASED: what the patron held
    until: datetime | None = None  # OFFERED: the end of the hold
    actor: str = "registry"  # DECLINED, ACCEPTED: who did it
    where: str = ""


SeatEvents = Callable[[Runner, SeatEvent], None]


def no_events(_s: Runner, _event: SeatEvent) -> None:
    """A sink for callers that tell nobody (the sample data, some tests)."""


class Counts(NamedTuple):
    cap: int
    seats_taken: int
    over_cap: int
    next_queue_no: int
    waiting: int
    promotion: str
    offer_days: int
    fair_share: bool


class PlaceRow(NamedTuple):
    patron_id: int
    status: Standing
    queue_no: int | None
    requested_at: datetime
    seated_at: datetime | None
    offer_expires_at: datetime | None


class Claimant(NamedTuple):
    """The claiming patron as the seat rules need them (read before the lock: their own
    row and settings that change a few times a year), and their institution's quota."""

    candidate: promotion.Candidate
    quota: int | None


_COUNTS = (Programme.cap, Programme.seats_taken, Programme.over_cap, Programme.next_queue_no,
           Programme.waiting, Programme.promotion, Programme.offer_days, Programme.fair_share)
_PLACE = (Place.patron_id, Place.status, Place.queue_no, Place.requested_at, Place.seated_at,
          Place.offer_expires_at)
_PROOF = object()


def _connection(s: Runner) -> Connection:
    """Statements run on the connection: the ORM's bookkeeping has no part in seat rows.
    Pending ORM changes of the caller (a patron row, courses) are flushed first, so the
    ledger's statements come after them, as written."""
    if isinstance(s, Session):
        s.flush()
        return s.connection()
    return s


def _place(row: Any) -> PlaceRow:
    return PlaceRow(row.patron_id, Standing(row.status), row.queue_no, row.requested_at,
                    row.seated_at, row.offer_expires_at)


def lock(s: Runner, *, clock: Callable[[], datetime],
         events: SeatEvents = no_events) -> Ledger:
    """Take the programme lock in `s`'s transaction (held until it ends) and answer the
    ledger. Its `now`, the moment its decisions are made at, is read from `clock` once the
    lock is granted: a request that waited its turn is stamped with its turn, so seats are
    stamped in the order they were given."""
    conn = _connection(s)
    stmt = select(Programme.id).where(THE_PROGRAMME)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    if conn.execute(stmt).first() is None:
        raise RegistryError("not_set_up")
    return Ledger(s, conn, clock(), events, _PROOF)


_KIOSK_CLAIM = ("SELECT standing, queue_position, granted, joined, needs_sweep, new_course "
                "FROM kiosk_claim(%s, %s, %s, %s, %s, %s)")


def claim(s: Runner, patron_id: int, course_id: int, claimant: Claimant, *,
          clock: Callable[[], datetime], events: SeatEvents = no_events
          ) -> tuple[ClaimResult, bool]:
    """A patron chooses a course and claims a seat: kept if they hold a place, granted if one
    is free and they may take it, else the back of the waiting line. Answers the result and
    whether the course was newly chosen. The course choice is written before the lock, then
    the lock is taken here; on PostgreSQL all of it is one round trip (see the module's
    docstring). The caller's transaction holds the lock until it ends: commit soon."""
    conn = _connection(s)
    now = clock()
    if conn.dialect.name == "postgresql":
        candidate = claimant.candidate
        (row,) = run_sql(conn, _KIOSK_CLAIM, (
            patron_id, course_id, now, candidate.pending, candidate.institution_id,
            claimant.quota))
        if not row.needs_sweep:
            if row.granted:
                events(s, SeatEvent(SeatEventKind.GRANTED, patron_id, now))
            elif row.joined:
                events(s, SeatEvent(SeatEventKind.JOINED, patron_id, now))
            return ClaimResult(standing=Standing(row.standing), position=row.queue_position,
                               newly_granted=row.granted), row.new_course
        # Rare: offers may have lapsed on a full programme; the function changed no seat and
        # holds the lock: end them and decide the long way.
        new_course = row.new_course
    else:
        new_course = conn.execute(
            insert_ignoring_duplicates(EnrolmentRow, conn.dialect.name)
            .values(patron_id=patron_id, course_id=course_id, created_at=now)
            .returning(EnrolmentRow.id)).first() is not None
    ledger = lock(s, clock=clock, events=events)
    return ledger.grant_or_queue(patron_id, claimant), new_course


_KIOSK_RELEASE = "SELECT had, promoted, needs_sweep FROM kiosk_release(%s, %s, %s)"


def release(s: Runner, patron_id: int, *, only: Standing | None = None,
            clock: Callable[[], datetime], events: SeatEvents = no_events) -> Standing | None:
    """A patron gives up their seat or waiting place, and their course choices with it; a
    freed seat goes to the line at once. With `only`, nothing changes unless that is what
    they hold: then the answer is None. Otherwise the answer is what they held (NONE:
    nothing, their courses went anyway). Takes the lock itself; on PostgreSQL one round trip
    in the common case (see `kiosk_release`, migration 0005)."""
    conn = _connection(s)
    if conn.dialect.name != "postgresql":
        ledger = lock(s, clock=clock, events=events)
        place = ledger.place(patron_id)
        if only is not None and (place.status if place else Standing.NONE) is not only:
            return None
        return ledger.release(patron_id)
    now = clock()
    row = conn.exec_driver_sql(_KIOSK_RELEASE, (patron_id, now, only and only.value)).one()
    if row.had is None:
        return None
    had = Standing(row.had)
    if had is not Standing.NONE:
        events(s, SeatEvent(SeatEventKind.RELEASED, patron_id, now, had=had))
    for promoted in row.promoted:
        events(s, SeatEvent(SeatEventKind.PROMOTED, promoted, now))
    if row.needs_sweep:  # released; the line is served the long way, the lock still held
        lock(s, clock=clock, events=events).promote()
    return had


class Ledger:
    """The seats, with the programme lock held. Get one from `lock()`."""

    def __init__(self, s: Runner, conn: Connection, now: datetime, events: SeatEvents,
                 proof: object):
        if proof is not _PROOF:
            raise TypeError("a Ledger comes from ledger.lock(), which takes the lock")
        self._s = s
        self._conn = conn
        self.now = now
        self._events = events

    # --- Reads, under the lock --------------------------------------------------------------

    def _run(self, stmt: Any) -> Any:
        if isinstance(self._s, Session):
            self._s.flush()
        return self._conn.execute(stmt)

    def counts(self) -> Counts:
        row = self._run(select(*_COUNTS).where(THE_PROGRAMME)).one()
        return Counts(row.cap, row.seats_taken, row.over_cap, row.next_queue_no,
                      row.waiting or 0, row.promotion, row.offer_days, bool(row.fair_share))

    def place(self, patron_id: int) -> PlaceRow | None:
        if isinstance(self._s, Session):
            self._s.flush()
        return place_of(self._conn, patron_id)

    def position(self, place: PlaceRow | None) -> int | None:
        return position_of(self._conn, place)

    def waiting_line(self) -> list[int]:
        """Who waits, in order."""
        return list(self._run(select(Place.patron_id).where(Place.status == Standing.WAITING)
                              .order_by(Place.queue_no)).scalars())

    def line(self, n: int) -> Iterator[promotion.Candidate]:
        """The waiting line in order, read in batches only as far as a choice needs (those
        skipped, pending or over quota, may be many)."""
        last, batch = 0, n + 20
        while True:
            rows = self._run(
                select(Place.patron_id, Place.queue_no, Library.institution_id,
                       Patron.pending_since)
                .join(Patron, Patron.id == Place.patron_id)
                .join(Library, Library.id == Patron.library_id)
                .where(Place.status == Standing.WAITING, Place.queue_no > last)
                .order_by(Place.queue_no).limit(batch)
            ).all()
            for row in rows:
                yield promotion.Candidate(row.patron_id, row.institution_id,
                                          row.pending_since is not None)
            if len(rows) < batch:
                return
            last, batch = rows[-1].queue_no, min(batch * 4, 2000)

    def seats_held(self, institution_id: int | None = None) -> dict[int, int]:
        return seats_held(self._conn, institution_id)

    def next_in_line(self, n: int) -> list[int]:
        """Who the next `n` free seats go to, in order (promotion.choose), with the seats each
        institution holds counted now: what a promotion takes, and what a coordinator's
        preview of a cap raise shows (the same choice)."""
        if n <= 0:
            return []
        quotas: dict[int, int | None] = {}
        held: dict[int, int] = {}
        fair_share = self.counts().fair_share
        if fair_share:
            quotas = quotas_by_institution(self._conn)
            if any(q is not None for q in quotas.values()):
                held = self.seats_held()
        return [c.patron_id for c in promotion.choose(self.line(n), n, held, quotas,
                                                      fair_share)]

    def offers_due(self) -> list[int]:
        return list(self._run(select(Place.patron_id).where(
            Place.status == Standing.OFFERED, Place.offer_expires_at <= self.now)).scalars())

    # --- The claim, the long way ---------------------------------------------------------

    def grant_or_queue(self, patron_id: int, claimant: Claimant) -> ClaimResult:
        """`claim()`'s decision in Python (SQLite, and any claim that meets lapsed offers)."""
        place = self.place(patron_id)
        if place is not None:
            return ClaimResult(standing=place.status, position=self.position(place))
        counts = self.counts()
        candidate, quota = claimant
        quota_counts = counts.fair_share and quota is not None
        # Seats held by lapsed offers are freed (and served) before a newcomer is told "full".
        if (counts.seats_taken >= counts.cap or quota_counts) and self.offers_due():
            self.promote()
            counts = self.counts()
        held = self.seats_held(candidate.institution_id) if quota_counts else {}
        may_take = promotion.may_take_seat(candidate, held, {candidate.institution_id: quota},
                                           counts.fair_share)
        decision = domain.decide_claim(Standing.NONE, counts.seats_taken, counts.cap, may_take)
        if decision is domain.ClaimDecision.GRANT and self._take_seats(1):
            self._run(insert(Place).values(patron_id=patron_id, status=Standing.SEATED,
                                           requested_at=self.now, seated_at=self.now))
            self._emit(SeatEventKind.GRANTED, patron_id)
            return ClaimResult(standing=Standing.SEATED, newly_granted=True)
        self._run(update(Programme).where(THE_PROGRAMME)
                  .values(next_queue_no=Programme.next_queue_no + 1,
                          waiting=Programme.waiting + 1))
        self._run(insert(Place).values(patron_id=patron_id, status=Standing.WAITING,
                                       queue_no=counts.next_queue_no, requested_at=self.now))
        self._emit(SeatEventKind.JOINED, patron_id)
        # Joined at the back of the line: the position is the length of the line.
        return ClaimResult(standing=Standing.WAITING, position=counts.waiting + 1)

    # --- Places that end --------------------------------------------------------------------

    def release(self, patron_id: int, *, courses: bool = True, serve: bool = True) -> Standing:
        """Remove the patron's seat or waiting place and (unless `courses` is false: a merge
        keeps them) their course choices, which belong to the place; a freed seat goes to the
        line at once unless `serve` is false (the caller serves it later in this
        transaction). Answers what they held."""
        place = self.place(patron_id)
        if courses:
            self._run(delete(EnrolmentRow).where(EnrolmentRow.patron_id == patron_id))
        if place is None:
            return Standing.NONE
        self._forget(place)
        self._emit(SeatEventKind.RELEASED, patron_id, had=place.status)
        if serve and place.status is not Standing.WAITING:
            self.promote()
        return place.status

    def hand_over(self, from_id: int, to_id: int) -> None:
        """A merge of two accounts of one person: the place of `from_id` becomes `to_id`'s,
        its queue number and times kept. `to_id` holds none (release it first)."""
        if self.place(to_id) is not None:
            raise RegistryError("conflict")
        self._run(update(Place).where(Place.patron_id == from_id).values(patron_id=to_id))

    def _forget(self, place: PlaceRow) -> None:
        self._run(delete(Place).where(Place.patron_id == place.patron_id))
        if place.status is Standing.WAITING:
            self._run(update(Programme).where(THE_PROGRAMME)
                      .values(waiting=Programme.waiting - 1))
        else:
            self._free_seat()

    def _take_seats(self, n: int, leaving_line: int = 0) -> bool:
        """Count the seats where they are stored, conditionally: the guard against
        overselling (the CHECK constraint `never_oversold` is the backstop)."""
        result = self._run(
            update(Programme)
            .where(THE_PROGRAMME, Programme.seats_taken + n <= Programme.cap)
            .values(seats_taken=Programme.seats_taken + n,
                    waiting=Programme.waiting - leaving_line))
        return bool(result.rowcount == 1)

    def _free_seat(self) -> None:
        self._run(update(Programme).where(THE_PROGRAMME).values(
            seats_taken=Programme.seats_taken - 1,
            over_cap=case((Programme.over_cap > 0, Programme.over_cap - 1), else_=0)))

    # --- Serving the line ---------------------------------------------------------------

    def promote(self) -> int:
        """Serve the waiting list in order while seats are free: the first who may take a
        seat (not pending; with fair share, not at their institution's quota) is seated
        ("grant") or offered the seat ("offer"). Offers past their time are ended first, so
        their seats are served too. Answers how many were served."""
        self.expire_due()
        counts = self.counts()
        n = domain.seats_to_promote(counts.cap, counts.seats_taken, counts.waiting)
        chosen = self.next_in_line(n)
        if not chosen:
            return 0
        if not self._take_seats(len(chosen), leaving_line=len(chosen)):
            raise RegistryError("conflict")
        if counts.promotion == "offer":
            institutions = dict(self._run(
                select(Patron.id, Library.institution_id)
                .join(Library, Library.id == Patron.library_id)
                .where(Patron.id.in_(chosen))).all())
            # Each offer holds for the patron's own institution's opening days, its closed
            # days (holidays, closures) left out.
            ends = closures.offer_ends(self._conn, set(institutions.values()), self.now,
                                       counts.offer_days)
            for patron_id in chosen:
                until = ends[institutions[patron_id]]
                # seated_at: when the seat was set aside (the reminder counts from it).
                self._run(update(Place).where(Place.patron_id == patron_id)
                          .values(status=Standing.OFFERED, queue_no=None, seated_at=self.now,
                                  offer_expires_at=until))
                self._emit(SeatEventKind.OFFERED, patron_id, until=until)
        else:
            self._run(update(Place).where(Place.patron_id.in_(chosen))
                      .values(status=Standing.SEATED, queue_no=None, seated_at=self.now))
            for patron_id in chosen:
                self._emit(SeatEventKind.PROMOTED, patron_id)
        return len(chosen)

    # --- Offers -------------------------------------------------------------------------

    def expire_due(self) -> list[int]:
        """End the offers whose time has passed: their holders' places and courses go, their
        seats are freed (`promote` serves them)."""
        due = self.offers_due()
        for patron_id in due:
            self.end_offer(patron_id, SeatEventKind.EXPIRED)
        return due

    def end_offer(self, patron_id: int, why: SeatEventKind, *, actor: str = "registry",
                  where: str = "") -> None:
        """An offer declined or lapsed: the place and courses go, the held seat is freed.
        Serving the line is the caller's next step (`promote`)."""
        place = self.place(patron_id)
        if place is None or place.status is not Standing.OFFERED:
            raise RegistryError("no_offer")
        self._run(delete(EnrolmentRow).where(EnrolmentRow.patron_id == patron_id))
        self._run(delete(Place).where(Place.patron_id == patron_id))
        self._free_seat()
        self._emit(why, patron_id, actor=actor, where=where)

    def accept_offer(self, patron_id: int, *, actor: str) -> None:
        """Take the seat held for the patron: seated now. After its time the offer is over:
        it is ended and its seat served to the next in line, then "offer_expired" is raised —
        the caller commits that expiry before telling the patron."""
        place = self.place(patron_id)
        if place is None or place.status is not Standing.OFFERED:
            raise RegistryError("no_offer")
        assert place.offer_expires_at is not None
        if place.offer_expires_at <= self.now:
            self.promote()  # ends this offer (and any other lapsed one), serves the line
            raise RegistryError("offer_expired")
        self._run(update(Place).where(Place.patron_id == patron_id)
                  .values(status=Standing.SEATED, offer_expires_at=None, seated_at=self.now))
        self._emit(SeatEventKind.ACCEPTED, patron_id, actor=actor)

    def offers(self) -> list[PlaceRow]:
        return [_place(r) for r in self._run(select(*_PLACE)
                                             .where(Place.status == Standing.OFFERED))]

    # --- The programme's settings that decide seats ----------------------------------------

    def set_cap(self, cap: int) -> int:
        """A new cap; answers the old one. Lowering takes no seat away (`over_cap` counts
        those kept above it). Serving the line after a raise is the caller's next step."""
        if cap < 0:
            raise RegistryError("invalid", {"cap": "cap_invalid"})
        counts = self.counts()
        self._run(update(Programme).where(THE_PROGRAMME)
                  .values(cap=cap, over_cap=domain.over_cap(cap, counts.seats_taken)))
        return counts.cap

    def set_policy(self, promotion_policy: str, offer_days: int, fair_share: bool) -> None:
        self._run(update(Programme).where(THE_PROGRAMME).values(
            promotion=promotion_policy, offer_days=offer_days, fair_share=fair_share))

    def move(self, patron_id: int, to_position: int) -> None:
        """Put a waiting patron at another place in the line. The numbers of the entries
        between the old and the new place are dealt out again in the new order; nobody
        else's number changes."""
        line = self.waiting_line()
        if patron_id not in line:
            raise RegistryError("not_waiting")
        if not 1 <= to_position <= len(line):
            raise RegistryError("invalid", {"position": "position_invalid"}, last=len(line))
        old, new = line.index(patron_id), to_position - 1
        if old == new:
            return
        lo, hi = min(old, new), max(old, new)
        numbers = list(self._run(select(Place.queue_no).where(Place.status == Standing.WAITING)
                                 .order_by(Place.queue_no).offset(lo)
                                 .limit(hi - lo + 1)).scalars())
        order = line[lo:hi + 1]
        order.remove(patron_id)
        order.insert(new - lo, patron_id)
        # queue_no is UNIQUE and checked row by row (PostgreSQL) or statement by statement
        # (SQLite): park the range on negative numbers first, then deal them out again.
        self._run(update(Place).where(Place.status == Standing.WAITING,
                                      Place.queue_no.between(numbers[0], numbers[-1]))
                  .values(queue_no=-Place.queue_no))
        for number, pid in zip(numbers, order, strict=True):
            self._run(update(Place).where(Place.patron_id == pid).values(queue_no=number))

    def _emit(self, kind: SeatEventKind, patron_id: int, **detail: Any) -> None:
        self._events(self._s, SeatEvent(kind, patron_id, self.now, **detail))


# --- Reads that decide nothing (pages, notices, reports): no lock ------------------------


def place_of(s: Runner, patron_id: int) -> PlaceRow | None:
    row = s.execute(select(*_PLACE).where(Place.patron_id == patron_id)).first()
    return _place(row) if row else None


def position_of(s: Runner, place: PlaceRow | None) -> int | None:
    """A waiting patron's place in line: 1 + those ahead (so leaving leaves no gap)."""
    if place is None or place.status is not Standing.WAITING or place.queue_no is None:
        return None
    ahead = s.execute(select(func.count()).where(Place.status == Standing.WAITING,
                                                 Place.queue_no < place.queue_no)).scalar()
    return (ahead or 0) + 1


def seats_held(s: Runner, institution_id: int | None = None) -> dict[int, int]:
    """Seats (seated + offered) per institution, counted where they are: a join over places,
    patrons and libraries. A few thousand seats: cheap, and never out of step the way a
    separate counter could be after a patron moves library."""
    stmt = (select(Library.institution_id, func.count())
            .select_from(Place)
            .join(Patron, Patron.id == Place.patron_id)
            .join(Library, Library.id == Patron.library_id)
            .where(Place.status.in_(HOLDS_A_SEAT))
            .group_by(Library.institution_id))
    if institution_id is not None:
        stmt = stmt.where(Library.institution_id == institution_id)
    return {i: c for i, c in s.execute(stmt)}


def quotas_by_institution(s: Runner) -> dict[int, int | None]:
    return {i: q for i, q in s.execute(select(Institution.id, Institution.seat_quota))}


# --- The programme row's other columns ---------------------------------------------------


def create_programme(s: Session, *, cap: int, academy_url: str,
                     ends_on: date | None = None, practice: bool = False) -> None:
    """The one programme row, on an empty registry (seeding); `practice` for the demo's."""
    s.add(Programme(id=1, cap=cap, seats_taken=0, over_cap=0, next_queue_no=1, waiting=0,
                    academy_url=academy_url, ends_on=ends_on, practice=practice))


_DETAILS = {"maintenance", "maintenance_until", "ends_on", "academy_url"}


def set_details(s: Runner, **values: dict[str, str] | datetime | date | str | None) -> None:
    """The programme row's columns that decide no seat: the maintenance message, the end
    date, the academy's address. Written without the seat lock (an UPDATE still waits for a
    claim holding the row, briefly)."""
    unknown = set(values) - _DETAILS
    if unknown:
        raise ValueError(f"not a programme detail: {sorted(unknown)}")
    _connection(s).execute(update(Programme).where(THE_PROGRAMME).values(**values))
