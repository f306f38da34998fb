"""The waiting list as staff see it, and the coordinator's cap change with its preview.

Use cases only: the order of the line and who a promotion takes come from the seat ledger
(`Ledger.next_in_line`, `promote`), leaving the line and the cap change from the seat use
cases (`Seats.leave_waiting_list_for`, `set_cap`), so the preview and the change agree.
Every change is one write transaction that takes the programme lock before it reads the line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from . import domain, promotion
from .context import RegistryContext
from .domain import RegistryError, Standing
from .ledger import Ledger
from .reference import Reference
from .roles import Permission, StaffView
from .seats import Seats
from .staff import pseudonym, record
from .store import Course, EnrolmentRow, Institution, Library, Patron, Place

PAGE_SIZE = 50
EXPORT_BATCH = 1000  # rows fetched at a time while an export streams


@dataclass(frozen=True)
class WaitingEntry:
    """One place in the line. `position` is global: the same for every viewer."""

    patron_id: int
    subject: str  # the pseudonym the audit log uses (patron#id)
    card_masked: str
    position: int
    queue_no: int
    requested_at: datetime
    library_code: str
    library_name: str
    institution_code: str
    courses: tuple[str, ...] = ()
    # Waiting for an identity check: passed over for a seat until a librarian checks one.
    pending: bool = False


@dataclass(frozen=True)
class WaitingPage:
    entries: list[WaitingEntry]
    total: int  # entries this viewer may see (their institution's, or all)
    waiting: int  # the whole line
    page: int
    pages: int


@dataclass(frozen=True)
class OverQuota:
    """Patrons of one institution passed over because it holds its quota (fair share)."""

    institution_code: str
    institution_name: str  # in the viewer's language
    quota: int
    waiting: int


@dataclass(frozen=True)
class CapPreview:
    """What a cap change would do now. `fingerprint` names the previewed outcome (and the
    policy it follows), so a confirmation can tell whether either changed in between.

    `left_empty`: seats the change frees that stay empty although patrons wait, because each
    of those is pending an identity check or over their institution's quota."""

    current_cap: int
    new_cap: int
    seats_taken: int
    waiting: int
    promotion: str  # "grant" or "offer"
    promoted: list[WaitingEntry]
    fingerprint: str
    left_empty: int = 0
    pending: int = 0  # of those waiting, passed over: identity not yet checked
    over_quota: tuple[OverQuota, ...] = ()

    @property
    def lowering(self) -> bool:
        return self.new_cap < self.current_cap

    @property
    def kept_above_cap(self) -> int:
        """Seats held above a lowered cap: nobody loses one, new grants wait until below."""
        return domain.over_cap(self.new_cap, self.seats_taken)


def mask_card(card: str) -> str:
    """Enough of a card number to match it with the card in hand, not to copy it."""
    return "•" * max(0, len(card) - 4) + card[-4:]


@dataclass(frozen=True)
class ExportRow:
    """One patron of the exported list: holding an offer (no place: out of the line, a seat
    set aside) or waiting, at their place in the whole line."""

    position: int | None  # in the whole line, as the page shows it; None: holds an offer
    standing: Standing  # WAITING or OFFERED
    requested_at: datetime  # naive UTC: when they joined the line
    offer_ends: datetime | None  # naive UTC: when an offer lapses
    pending: bool  # identity not checked yet (passed over for a seat until it is)
    card_number: str
    first_name: str
    last_name: str
    email: str
    institution_code: str
    institution_name: str  # in the staff member's language
    library_code: str
    library_name: str
    courses: tuple[str, ...]  # titles in the staff member's language, in the order chosen


@dataclass(frozen=True)
class WaitingListExport:
    count: int  # the rows the audit entry announced
    rows: Iterator[ExportRow]


@dataclass(frozen=True)
class LineCount:
    """The line's figures for one institution, library or course: no personal data."""

    code: str
    name: str
    institution_code: str  # "" for a course
    waiting: int
    pending: int  # of those waiting: identity not checked yet
    offered: int  # holding an offered seat (out of the line, seat set aside)


@dataclass(frozen=True)
class LineCounts:
    institutions: list[LineCount]
    libraries: list[LineCount]
    courses: list[LineCount]


class _Discard(Exception):  # noqa: N818 (not an error: how a preview leaves its transaction)
    """Leaves a preview's write transaction without committing it."""

    def __init__(self, preview: CapPreview):
        super().__init__("preview")
        self.preview = preview


class Waitlist:
    def __init__(self, ctx: RegistryContext, *, seats: Seats, reference: Reference):
        self.ctx = ctx
        self.store = ctx.store
        self.seats = seats
        self.reference = reference

    # --- Reading the line ----------------------------------------------------------------

    def page(self, viewer: StaffView, lang: str, page: int = 1, institution: str = "",
             per_page: int = PAGE_SIZE) -> WaitingPage:
        """The line in order, one page; a librarian sees only their institution's patrons,
        each with their place in the whole line."""
        scope = institution if viewer.programme_wide else (viewer.institution_code or "")
        with self.store.read() as s:
            ranked = self._ranked().subquery()
            stmt = select(ranked)
            if scope:
                stmt = stmt.where(ranked.c.institution_code == scope)
            total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            pages = max(1, -(-total // per_page))
            page = min(max(1, page), pages)
            rows = s.execute(stmt.order_by(ranked.c.queue_no)
                             .limit(per_page).offset((page - 1) * per_page)).all()
            waiting = s.scalar(select(func.count()).where(Place.status == Standing.WAITING)) or 0
            entries = self._entries(s, rows, lang)
        return WaitingPage(entries, total, waiting, page, pages)

    def entry(self, patron_id: int, viewer: StaffView, lang: str) -> WaitingEntry:
        """One waiting patron, if this viewer may see them (else "not_found")."""
        with self.store.read() as s:
            return self._entry(s, patron_id, viewer, lang)

    def _ranked(self) -> Select[Any]:
        """Every waiting place with its global position (one window, both databases)."""
        return (
            select(
                Place.patron_id, Place.queue_no, Place.requested_at,
                func.row_number().over(order_by=Place.queue_no).label("position"),
                Patron.card_number, Library.code.label("library_code"),
                Library.name.label("library_name"), Institution.code.label("institution_code"),
                Patron.pending_since,
            )
            .join(Patron, Patron.id == Place.patron_id)
            .join(Library, Library.id == Patron.library_id)
            .join(Institution, Institution.id == Library.institution_id)
            .where(Place.status == Standing.WAITING)
        )

    def _entry(self, s: Session, patron_id: int, viewer: StaffView, lang: str) -> WaitingEntry:
        ranked = self._ranked().subquery()
        row = s.execute(select(ranked).where(ranked.c.patron_id == patron_id)).first()
        if row is None or not viewer.serves(row.institution_code):
            raise RegistryError("not_found")
        return self._entries(s, [row], lang)[0]

    def _entries(self, s: Session, rows: Sequence[Any], lang: str) -> list[WaitingEntry]:
        ids = [r.patron_id for r in rows]
        courses: dict[int, list[str]] = {i: [] for i in ids}
        if ids:
            for enrolment in s.scalars(select(EnrolmentRow)
                                       .where(EnrolmentRow.patron_id.in_(ids))
                                       .order_by(EnrolmentRow.created_at, EnrolmentRow.id)):
                courses[enrolment.patron_id].append(
                    self.reference.text(enrolment.course, lang).title)
        return [WaitingEntry(
            patron_id=r.patron_id, subject=pseudonym(r.patron_id),
            card_masked=mask_card(r.card_number), position=r.position, queue_no=r.queue_no,
            requested_at=r.requested_at, library_code=r.library_code,
            library_name=r.library_name, institution_code=r.institution_code,
            courses=tuple(courses[r.patron_id]),
            pending=r.pending_since is not None) for r in rows]

    # --- Exporting the line ----------------------------------------------------------------

    @staticmethod
    def _scope(viewer: StaffView, institution: str) -> str:
        """The institution whose patrons this viewer gets ("": all of them): a librarian's
        own, always; for a coordinator the one asked for, or all."""
        if not viewer.can(Permission.WAITING_LIST):
            raise RegistryError("forbidden")
        if viewer.programme_wide:
            return institution
        if not viewer.institution_code:
            raise RegistryError("forbidden")
        return viewer.institution_code

    def export(self, viewer: StaffView, reason: str, lang: str, *, institution: str = "",
               where: str = "") -> WaitingListExport:
        """The list with personal data, in order: first those holding an offered seat (out
        of the line, their seat set aside), then everyone waiting, each at their place in
        the whole line (the ledger's order: queue numbers, as `page` shows them). A
        librarian gets only their institution's patrons.

        As the patron export: the audit entry (who, why, which institution, how many rows)
        is committed before the first row is read. The line is the one of that moment: who
        joins afterwards is not in the file. It is read as one streamed query, so the places
        in the file agree with each other even while the line moves."""
        scope = self._scope(viewer, institution)
        reason = domain.clean_reason(reason)
        with self.store.write() as s:
            last = s.scalar(select(func.max(Place.queue_no))
                            .where(Place.status == Standing.WAITING)) or 0
            counted = (select(func.count()).select_from(Place)
                       .join(Patron, Patron.id == Place.patron_id)
                       .join(Library, Library.id == Patron.library_id)
                       .join(Institution, Institution.id == Library.institution_id)
                       .where(Place.status.in_((Standing.WAITING, Standing.OFFERED))))
            if scope:
                counted = counted.where(Institution.code == scope)
            count = s.scalar(counted) or 0
            record(s, self.ctx.clock(), viewer.actor, "waiting_list_export", where=where,
                   institution=scope, reason=reason, row_count=count)
        return WaitingListExport(count, self._export_rows(scope, last, lang))

    def _export_rows(self, scope: str, last_queue_no: int, lang: str) -> Iterator[ExportRow]:
        with self.store.read() as s:
            titles = {c.id: self.reference.text(c, lang).title
                      for c in s.scalars(select(Course))}
            names = {code: names.get(lang) or names.get("en") or code
                     for code, names in s.execute(select(Institution.code, Institution.names))}
            # Offers first (few: at most the cap), in the order they were made.
            offers = (select(Place.patron_id, Place.requested_at, Place.offer_expires_at,
                             Patron.pending_since, Patron.card_number, Patron.first_name,
                             Patron.last_name, Patron.email, Library.code.label("library_code"),
                             Library.name.label("library_name"),
                             Institution.code.label("institution_code"),
                             EnrolmentRow.course_id)
                      .select_from(Place)
                      .join(Patron, Patron.id == Place.patron_id)
                      .join(Library, Library.id == Patron.library_id)
                      .join(Institution, Institution.id == Library.institution_id)
                      .outerjoin(EnrolmentRow, EnrolmentRow.patron_id == Place.patron_id)
                      .where(Place.status == Standing.OFFERED)
                      .order_by(Place.seated_at, Place.patron_id, EnrolmentRow.created_at,
                                EnrolmentRow.id))
            # The line: each place numbered over the whole line, then cut to the scope.
            ranked = self._ranked().where(Place.queue_no <= last_queue_no).subquery()
            line = (select(ranked.c.patron_id, ranked.c.position, ranked.c.requested_at,
                           ranked.c.pending_since, ranked.c.card_number, Patron.first_name,
                           Patron.last_name, Patron.email, ranked.c.library_code,
                           ranked.c.library_name, ranked.c.institution_code,
                           EnrolmentRow.course_id)
                    .select_from(ranked)
                    .join(Patron, Patron.id == ranked.c.patron_id)
                    .outerjoin(EnrolmentRow, EnrolmentRow.patron_id == ranked.c.patron_id)
                    .order_by(ranked.c.queue_no, EnrolmentRow.created_at, EnrolmentRow.id))
            if scope:
                offers = offers.where(Institution.code == scope)
                line = line.where(ranked.c.institution_code == scope)
            for row, courses in _by_patron(s.execute(offers), titles):
                yield _export_row(row, courses, names, position=None,
                                  offer_ends=row.offer_expires_at)
            streamed = s.execute(line, execution_options={"yield_per": EXPORT_BATCH})
            for row, courses in _by_patron(streamed, titles):
                yield _export_row(row, courses, names, position=row.position)

    def counts(self, viewer: StaffView, lang: str, institution: str = "") -> LineCounts:
        """How many wait (and of them, are pending), and hold an offer, per institution,
        library and course: figures only, no personal data. A librarian's are those of
        their institution."""
        scope = self._scope(viewer, institution)
        in_line = Place.status.in_((Standing.WAITING, Standing.OFFERED))
        pending = Patron.pending_since.is_not(None)
        with self.store.read() as s:
            by_library: dict[tuple[int, str, bool], int] = {
                (lib, status, bool(flag)): n for lib, status, flag, n in s.execute(
                    select(Patron.library_id, Place.status, pending, func.count())
                    .select_from(Place).join(Patron, Patron.id == Place.patron_id)
                    .where(in_line).group_by(Patron.library_id, Place.status, pending))}
            libraries_query = (select(Library.id, Library.code, Library.name, Institution.code)
                               .join(Institution, Institution.id == Library.institution_id)
                               .order_by(Institution.code, Library.name))
            institutions_query = (select(Institution.code, Institution.names)
                                  .order_by(Institution.code))
            courses_query = (select(EnrolmentRow.course_id, Place.status, pending, func.count())
                             .select_from(EnrolmentRow)
                             .join(Place, Place.patron_id == EnrolmentRow.patron_id)
                             .join(Patron, Patron.id == EnrolmentRow.patron_id)
                             .join(Library, Library.id == Patron.library_id)
                             .join(Institution, Institution.id == Library.institution_id)
                             .where(in_line)
                             .group_by(EnrolmentRow.course_id, Place.status, pending))
            if scope:
                libraries_query = libraries_query.where(Institution.code == scope)
                institutions_query = institutions_query.where(Institution.code == scope)
                courses_query = courses_query.where(Institution.code == scope)
            libraries = [_line_count(code, name, inst, {
                (status, flag): n for (lib, status, flag), n in by_library.items()
                if lib == lib_id}) for lib_id, code, name, inst in s.execute(libraries_query)]
            institutions = [LineCount(
                code, names.get(lang) or names.get("en") or code, code,
                *(sum(getattr(lib, f) for lib in libraries if lib.institution_code == code)
                  for f in ("waiting", "pending", "offered")))
                for code, names in s.execute(institutions_query)]
            by_course: dict[int, dict[tuple[str, bool], int]] = {}
            for course_id, status, flag, n in s.execute(courses_query):
                by_course.setdefault(course_id, {})[(status, bool(flag))] = n
            courses = [_line_count(c.slug, self.reference.text(c, lang).title, "",
                                   by_course.get(c.id, {}))
                       for c in s.scalars(select(Course).order_by(Course.position, Course.id))
                       if not c.retired or c.id in by_course]
        return LineCounts(institutions, libraries, courses)

    # --- Removing and moving an entry ----------------------------------------------------

    def remove(self, patron_id: int, reason: str, viewer: StaffView, where: str = "") -> None:
        """Take a patron off the line, like leaving it: their place and pending course
        choices go, everyone behind moves up one."""
        reason = domain.clean_reason(reason)
        with self.store.write() as s:
            entry = self._entry(s, patron_id, viewer, "en")
            self.seats.leave_waiting_list_for(s, patron_id)
            record(s, self.ctx.clock(), viewer.actor, "waiting_list_removed", where=where,
                   subject=entry.subject, institution=entry.institution_code,
                   assisted_by=viewer.assisted_label, position=entry.position, reason=reason)

    def move(self, patron_id: int, to_position: int, reason: str, viewer: StaffView,
             where: str = "") -> int:
        """Put an entry at another place in the line (coordinators only); answers the place
        it ended at. The numbers of the entries between the old and the new place are dealt
        out again in the new order; nobody else's number changes."""
        if not viewer.can(Permission.WAITING_LIST_MOVE):
            raise RegistryError("forbidden")
        reason = domain.clean_reason(reason)
        with self.store.write() as s:
            seats = self.ctx.seats(s)
            entry = self._entry(s, patron_id, viewer, "en")
            seats.move(patron_id, to_position)
            record(s, self.ctx.clock(), viewer.actor, "waiting_list_moved", where=where,
                   subject=entry.subject, institution=entry.institution_code,
                   **{"from": entry.position, "to": to_position, "reason": reason})
            return to_position

    # --- The cap -------------------------------------------------------------------------

    def preview_cap(self, new_cap: int, lang: str = "en") -> CapPreview:
        """Who a change of the cap to `new_cap` would promote now, in order. Informative: the
        change itself decides again under the lock (see `change_cap`)."""
        if new_cap < 0:
            raise RegistryError("invalid", {"cap": "cap_invalid"})
        # The change first ends offers past their time (their seats go to the line too), so
        # the preview must see the line as it will be then: it does the same in a write
        # transaction that is always rolled back. Nothing of a preview is ever kept.
        try:
            with self.store.write() as s:
                raise _Discard(self._preview(self.ctx.seats(s), s, new_cap, lang))
        except _Discard as done:
            return done.preview

    def change_cap(self, new_cap: int, reason: str, actor: str, where: str = "",
                   expected: str | None = None) -> int:
        """Apply a cap change in one transaction; answers how many were promoted.

        With `expected` (the fingerprint of the preview the coordinator saw), a line that has
        changed since is refused with "preview_stale" and nothing changes: the coordinator
        sees the new preview and confirms that one. Promoting people nobody looked at is what
        a preview is meant to prevent."""
        if new_cap < 0:
            raise RegistryError("invalid", {"cap": "cap_invalid"})
        reason = domain.clean_reason(reason)
        with self.store.write() as s:
            seats = self.ctx.seats(s)
            # (_preview ends lapsed offers first, as set_cap's promotion would.)
            if (expected is not None
                    and self._preview(seats, s, new_cap, "en").fingerprint != expected):
                raise RegistryError("preview_stale")
            # set_cap joins this transaction (store.write nests): it changes the cap, promotes
            # through the ledger and writes the audit entry (from, to, promoted, reason).
            return self.seats.set_cap(new_cap, actor=actor, where=where, reason=reason)

    def _preview(self, seats: Ledger, s: Session, new_cap: int, lang: str) -> CapPreview:
        """In a write transaction (the ledger proves the lock): lapsed offers are ended here,
        as the promotion does before it counts free seats."""
        seats.expire_due()
        prog = seats.counts()
        n = domain.seats_to_promote(new_cap, prog.seats_taken, prog.waiting)
        # The same choice a promotion makes, so the preview lists exactly who it takes.
        ids = seats.next_in_line(n)
        rows = []
        if ids:
            ranked = self._ranked().subquery()
            found = {r.patron_id: r for r in s.execute(
                select(ranked).where(ranked.c.patron_id.in_(ids))).all()}
            rows = [found[i] for i in ids if i in found]
        institutions = s.execute(select(Institution.id, Institution.code, Institution.names,
                                        Institution.seat_quota)
                                 .order_by(Institution.code)).all()
        # The policy is part of the outcome: "grant" previewed must not apply as "offer".
        quotas = ",".join(f"{i.code}={i.seat_quota}" for i in institutions) \
            if prog.fair_share else ""
        digest = hashlib.sha256(
            f"{prog.cap}|{new_cap}|{','.join(map(str, ids))}|{prog.promotion}|"
            f"{prog.offer_days}|{bool(prog.fair_share)}|{quotas}".encode()).hexdigest()[:32]
        left_empty = n - len(ids)
        why = (promotion.skipped(seats.line(n), set(ids)) if left_empty
               else promotion.Skipped(0, {}))
        over = tuple(OverQuota(i.code, i.names.get(lang) or i.names.get("en") or i.code,
                               i.seat_quota or 0, why.over_quota[i.id])
                     for i in institutions if why.over_quota.get(i.id))
        return CapPreview(current_cap=prog.cap, new_cap=new_cap, seats_taken=prog.seats_taken,
                          waiting=prog.waiting, promotion=prog.promotion,
                          promoted=self._entries(s, rows, lang), fingerprint=digest,
                          left_empty=left_empty, pending=why.pending, over_quota=over)


def _line_count(code: str, name: str, institution_code: str,
                counted: dict[tuple[str, bool], int]) -> LineCount:
    """A LineCount from counts by (standing, pending)."""
    waiting = sum(n for (status, _flag), n in counted.items() if status == Standing.WAITING)
    pending = sum(n for (status, flag), n in counted.items()
                  if status == Standing.WAITING and flag)
    offered = sum(n for (status, _flag), n in counted.items() if status == Standing.OFFERED)
    return LineCount(code, name, institution_code, waiting, pending, offered)


def _by_patron(rows: Iterable[Any], titles: dict[int, str]
               ) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """Rows of one patron per course chosen (in order, a patron's rows together) as one row
    per patron with their course titles."""
    current: Any = None
    courses: list[str] = []
    for row in rows:
        if current is not None and row.patron_id != current.patron_id:
            yield current, tuple(courses)
            current, courses = None, []
        if current is None:
            current = row
        if row.course_id is not None:
            courses.append(titles[row.course_id])
    if current is not None:
        yield current, tuple(courses)


def _export_row(row: Any, courses: tuple[str, ...], institution_names: dict[str, str], *,
                position: int | None, offer_ends: datetime | None = None) -> ExportRow:
    return ExportRow(
        position=position,
        standing=Standing.WAITING if position is not None else Standing.OFFERED,
        requested_at=row.requested_at, offer_ends=offer_ends,
        pending=row.pending_since is not None, card_number=row.card_number,
        first_name=row.first_name, last_name=row.last_name, email=row.email or "",
        institution_code=row.institution_code,
        institution_name=institution_names.get(row.institution_code, row.institution_code),
        library_code=row.library_code, library_name=row.library_name, courses=courses)
