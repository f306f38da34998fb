"""The coordinator's figures: seats against the cap, the waiting list, courses, sign-ups, and
the audited export of patrons.

Every figure is a GROUP BY or an ORDER BY … OFFSET in the database: at 165,000 patrons the
service never loads rows one per patron, except in the patron export, whose job that is (and
which streams them in batches).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from . import domain
from .context import RegistryContext
from .days import BELGIUM, belgian_date
from .reference import Reference
from .staff import record
from .store import (
    THE_PROGRAMME,
    Course,
    EnrolmentRow,
    Institution,
    Library,
    Patron,
    Place,
    Programme,
)

SEATED_WINDOW = timedelta(days=90)  # the median wait looks at patrons seated this recently
SIGNUP_DAYS = 60
TOP_COURSES = 10
_EXPORT_BATCH = 2000


# --- Pure helpers ------------------------------------------------------------------------


def middle(n: int) -> tuple[int, int]:
    """The OFFSET and LIMIT that select the middle value(s) of `n` sorted values: one when
    `n` is odd, the two to average when it is even."""
    if n <= 0:
        return 0, 0
    return (n - 1) // 2, 1 if n % 2 else 2


def belgian_day_start(day: date) -> datetime:
    """Midnight of a Belgian day, as naive UTC (what the database holds)."""
    return datetime.combine(day, time(), BELGIUM).astimezone(UTC).replace(tzinfo=None)




def last_days(today: date, n: int) -> list[date]:
    return [today - timedelta(days=n - 1 - i) for i in range(n)]


# --- What the dashboard shows ------------------------------------------------------------


@dataclass(frozen=True)
class SeatSummary:
    cap: int
    seats_taken: int  # seated and offered places: an offer holds its seat
    over_cap: int  # seats kept above a lowered cap
    offered: int
    waiting: int
    seated_from_list: int  # came off the waiting list in the last 90 days
    median_wait: timedelta | None  # request → seat, over those
    median_waited: timedelta | None  # how long those still waiting have waited so far

    @property
    def free(self) -> int:
        return max(0, self.cap - self.seats_taken)


@dataclass(frozen=True)
class CourseCount:
    slug: str
    title: str
    retired: bool
    enrolments: int
    seated: int  # enrolments of patrons who hold a seat (or an offer)
    waiting: int  # enrolments of patrons on the waiting list


@dataclass(frozen=True)
class DayCount:
    day: date  # a Belgian calendar day
    signups: int


@dataclass(frozen=True)
class PlaceCount:
    """Seats and waiting places of one library or one institution."""

    code: str
    name: str
    institution_code: str
    seats: int
    waiting: int
    quota: int | None = None  # fair share (institutions only)


@dataclass(frozen=True)
class Dashboard:
    at: datetime
    summary: SeatSummary
    courses: list[CourseCount]
    signups: list[DayCount]
    institutions: list[PlaceCount]
    libraries: list[PlaceCount]


@dataclass(frozen=True)
class PatronRow:
    card_number: str
    first_name: str
    last_name: str
    email: str
    library_code: str
    standing: str  # seated / offered / waiting / none
    courses: list[str]  # titles in the staff member's language, in the order chosen
    created_at: datetime  # naive UTC


@dataclass(frozen=True)
class PatronExport:
    count: int  # the rows the audit entry announced
    rows: Iterator[PatronRow]


class Reports:
    def __init__(self, ctx: RegistryContext, *, reference: Reference):
        self.ctx = ctx
        self.store = ctx.store
        self.reference = reference

    # --- Figures -------------------------------------------------------------------------

    def dashboard(self, lang: str) -> Dashboard:
        now = self.ctx.clock()
        with self.store.read() as s:
            libraries = self._libraries(s)
            return Dashboard(
                at=now,
                summary=self._summary(s, now),
                courses=self._courses(s, lang, TOP_COURSES),
                signups=self._signups(s, now, SIGNUP_DAYS),
                institutions=self._institutions(s, lang, libraries),
                libraries=libraries,
            )

    def summary(self) -> SeatSummary:
        with self.store.read() as s:
            return self._summary(s, self.ctx.clock())

    def courses(self, lang: str, limit: int | None = None) -> list[CourseCount]:
        """Enrolments per course, most chosen first; without `limit` every course, even
        those nobody chose."""
        with self.store.read() as s:
            return self._courses(s, lang, limit)

    def signups(self, days: int = SIGNUP_DAYS) -> list[DayCount]:
        with self.store.read() as s:
            return self._signups(s, self.ctx.clock(), days)

    def libraries(self) -> list[PlaceCount]:
        with self.store.read() as s:
            return self._libraries(s)

    def institutions(self, lang: str) -> list[PlaceCount]:
        with self.store.read() as s:
            return self._institutions(s, lang, self._libraries(s))

    def _summary(self, s: Session, now: datetime) -> SeatSummary:
        cap, taken, over_cap, waiting = s.execute(
            select(Programme.cap, Programme.seats_taken, Programme.over_cap, Programme.waiting)
            .where(THE_PROGRAMME)).one()
        offered = s.scalar(select(func.count()).where(Place.status == "offered")) or 0
        # Seated straight away (requested_at == seated_at) is no wait: the median is over
        # those who came off the waiting list.
        came_off = (Place.status == "seated", Place.seated_at >= now - SEATED_WINDOW,
                    Place.seated_at > Place.requested_at)
        n = s.scalar(select(func.count()).where(*came_off)) or 0
        wait = self._seconds_between(Place.requested_at, Place.seated_at)
        offset, limit = middle(n)
        waits = s.scalars(select(wait).where(*came_off).order_by(wait)
                          .offset(offset).limit(limit)).all() if n else []
        # To the second: SQLite's julianday arithmetic is a float, PostgreSQL's a Decimal.
        median_wait = (timedelta(seconds=round(sum(float(w) for w in waits) / len(waits)))
                       if waits else None)
        # The median time already waited is now minus the median request time: sorting the
        # timestamps themselves needs no arithmetic in SQL.
        line = s.scalar(select(func.count()).where(Place.status == "waiting")) or 0
        offset, limit = middle(line)
        asked = s.scalars(select(Place.requested_at).where(Place.status == "waiting")
                          .order_by(Place.requested_at).offset(offset).limit(limit)).all()
        median_asked = asked[0] + (asked[-1] - asked[0]) / 2 if asked else None
        return SeatSummary(
            cap=cap, seats_taken=taken, over_cap=over_cap or 0, offered=offered,
            waiting=waiting or 0, seated_from_list=n, median_wait=median_wait,
            median_waited=max(timedelta(0), now - median_asked) if median_asked else None)

    def _seconds_between(self, start: ColumnElement[Any] | QueryableAttribute[Any],
                         end: ColumnElement[Any] | QueryableAttribute[Any]
                         ) -> ColumnElement[Any]:
        if self.store.is_sqlite:
            return (func.julianday(end) - func.julianday(start)) * 86400.0
        return func.extract("epoch", end - start)

    def _courses(self, s: Session, lang: str, limit: int | None) -> list[CourseCount]:
        total = func.count(EnrolmentRow.id)
        stmt = (select(EnrolmentRow.course_id, total).group_by(EnrolmentRow.course_id)
                .order_by(total.desc(), EnrolmentRow.course_id))
        if limit is not None:
            stmt = stmt.limit(limit)
        totals = dict(s.execute(stmt).all())
        # Seats are few (at most the cap plus offers): counted from the places, through the
        # status index. A course choice exists only beside a seat or a waiting place (they
        # are dropped together), so the rest wait — no join over the whole waiting list.
        seated = dict(s.execute(
            select(EnrolmentRow.course_id, func.count()).select_from(Place)
            .join(EnrolmentRow, EnrolmentRow.patron_id == Place.patron_id)
            .where(Place.status.in_(("seated", "offered")),
                   EnrolmentRow.course_id.in_(totals))
            .group_by(EnrolmentRow.course_id)).all())
        counts = {cid: (n, seated.get(cid, 0), n - seated.get(cid, 0))
                  for cid, n in totals.items()}
        query = select(Course).order_by(Course.position, Course.id)
        if limit is not None:
            query = query.where(Course.id.in_(counts))
        courses = {c.id: c for c in s.scalars(query)}
        # Most chosen first (the database's order), then the unchosen in catalogue order.
        ids = [cid for cid in counts if cid in courses]
        ids += [cid for cid in courses if cid not in counts]
        return [CourseCount(courses[cid].slug, self.reference.text(courses[cid], lang).title,
                            courses[cid].retired, *counts.get(cid, (0, 0, 0))) for cid in ids]

    def _signups(self, s: Session, now: datetime, days: int) -> list[DayCount]:
        """New accounts per Belgian day, oldest first, days without any included.

        The database groups by UTC hour (SQLite knows no time zones); Belgium's offset is a
        whole number of hours, so each hour falls in one Belgian day, summer time included."""
        window = last_days(belgian_date(now), days)
        if self.store.is_sqlite:
            hour = func.strftime("%Y-%m-%d %H", Patron.created_at)
        else:
            hour = func.to_char(func.date_trunc("hour", Patron.created_at), "YYYY-MM-DD HH24")
        per_day = dict.fromkeys(window, 0)
        rows = s.execute(select(hour, func.count()).where(
            Patron.created_at >= belgian_day_start(window[0])).group_by(hour))
        for stamp, n in rows:
            day = belgian_date(datetime.strptime(stamp, "%Y-%m-%d %H"))
            if day in per_day:
                per_day[day] += n
        return [DayCount(day, n) for day, n in per_day.items()]

    def _libraries(self, s: Session) -> list[PlaceCount]:
        """Every library, with its patrons' seats (seated or offered) and waiting places."""
        counts: dict[tuple[int, str], int] = {
            (lib_id, status): n for lib_id, status, n in s.execute(
                select(Patron.library_id, Place.status, func.count())
                .select_from(Place).join(Patron, Patron.id == Place.patron_id)
                .group_by(Patron.library_id, Place.status))}
        rows = s.execute(select(Library.id, Library.code, Library.name, Institution.code)
                         .join(Institution).order_by(Institution.code, Library.name))
        return [PlaceCount(code, name, inst,
                           seats=counts.get((lib_id, "seated"), 0)
                           + counts.get((lib_id, "offered"), 0),
                           waiting=counts.get((lib_id, "waiting"), 0))
                for lib_id, code, name, inst in rows]

    @staticmethod
    def _institutions(s: Session, lang: str, libraries: list[PlaceCount]) -> list[PlaceCount]:
        """Each institution: the sum of its libraries (a handful of rows, summed here)."""
        seats: dict[str, int] = {}
        waiting: dict[str, int] = {}
        for lib in libraries:
            seats[lib.institution_code] = seats.get(lib.institution_code, 0) + lib.seats
            waiting[lib.institution_code] = waiting.get(lib.institution_code, 0) + lib.waiting
        rows = s.execute(select(Institution.code, Institution.names, Institution.seat_quota)
                         .order_by(Institution.code)).all()
        return [PlaceCount(code, names.get(lang) or names.get("en") or code, code,
                           seats=seats.get(code, 0), waiting=waiting.get(code, 0), quota=quota)
                for code, names, quota in rows]

    # --- The audited patron export -------------------------------------------------------

    def patron_export(self, reason: str, lang: str, *, actor: str,
                      where: str = "") -> PatronExport:
        """Every patron's card number, names, e-mail, library, standing, courses and sign-up.

        The audit entry (who, why, how many rows) is committed before the first row is read:
        an export that nobody can account for never leaves the registry. The rows are those
        that existed at that moment (up to the highest id counted), read in batches."""
        reason = domain.clean_reason(reason)
        with self.store.write() as s:
            count, last_id = s.execute(select(func.count(Patron.id), func.max(Patron.id))).one()
            record(s, self.ctx.clock(), actor, "patron_export", where=where,
                   reason=reason, row_count=count)
        return PatronExport(count=count, rows=self._patron_rows(last_id or 0, lang))

    def _patron_rows(self, last_id: int, lang: str) -> Iterator[PatronRow]:
        with self.store.read() as s:
            titles = {c.id: self.reference.text(c, lang).title
                      for c in s.scalars(select(Course))}
            after = 0
            while True:
                batch = s.execute(
                    select(Patron.id, Patron.card_number, Patron.first_name, Patron.last_name,
                           Patron.email, Library.code, Place.status, Patron.created_at)
                    .join(Library, Library.id == Patron.library_id)
                    .outerjoin(Place, Place.patron_id == Patron.id)
                    .where(Patron.id > after, Patron.id <= last_id)
                    .order_by(Patron.id).limit(_EXPORT_BATCH)).all()
                if not batch:
                    return
                chosen: dict[int, list[str]] = {}
                for patron_id, course_id in s.execute(
                        select(EnrolmentRow.patron_id, EnrolmentRow.course_id)
                        .where(EnrolmentRow.patron_id.in_([r[0] for r in batch]))
                        .order_by(EnrolmentRow.patron_id, EnrolmentRow.created_at,
                                  EnrolmentRow.id)):
                    chosen.setdefault(patron_id, []).append(titles[course_id])
                for pid, card, first, last, email, library, status, created in batch:
                    yield PatronRow(card, first, last, email or "", library, status or "none",
                                    chosen.get(pid, []), created)
                after = batch[-1][0]
