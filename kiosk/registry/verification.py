"""Identity checks at the desk and possible duplicate accounts: the librarian's two queues.

Pending accounts: where an institution's policy is "verify", a self-registered account waits
(`patrons.pending_since`) until a librarian has seen an identity document; it may join the
waiting list but gets no seat (the seat ledger's claim and promotion rules skip it), and it
is erased after the institution's `pending_days`.

Duplicates: a registration with the name and date of birth of an existing account still
succeeds, but a `duplicate_flags` row asks staff to merge the two or dismiss the warning. A
librarian sees a flag where either account is their institution's, the other institution's
account masked; only staff serving both institutions (a coordinator, for two institutions)
may merge, as a merge erases one of the two accounts.

Each use case is one write transaction; anything that decides about seats takes the
programme lock first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from . import academy, domain, ledger
from .context import RegistryContext
from .domain import RegistryError, Standing
from .erasure import Erasure
from .masking import mask_card_number
from .roles import StaffView
from .staff import pseudonym, record
from .store import DuplicateFlag, EnrolmentRow, Institution, Library, Patron, Place

# The days a pending account was given at sign-up (its institution's then): what it was told.
_DAYS = func.coalesce(Patron.pending_days, domain.DEFAULT_PENDING_DAYS)


@dataclass(frozen=True)
class PendingAccount:
    """A row of the pending-accounts queue."""

    patron_id: int
    first_name: str
    last_name: str
    birth_date: date
    library_code: str
    library_name: str
    institution_code: str
    since: datetime  # naive UTC
    expires_at: datetime  # naive UTC: erased from then on
    standing: str  # "none", "waiting" (a pending account never holds a seat)


@dataclass(frozen=True)
class AccountSide:
    """One of the two accounts of a possible duplicate, as staff compare them. For staff who
    do not serve its institution it is `masked`: the card number masked, no e-mail."""

    patron_id: int
    card_number: str
    first_name: str
    last_name: str
    birth_date: date | None  # None: a library-card member
    email: str
    postcode: str
    library_code: str
    library_name: str
    institution_code: str
    created_at: datetime
    last_active_at: datetime | None
    pending: bool
    identity_checked: bool
    standing: str  # "none", "seated", "offered", "waiting"
    position: int | None  # in the waiting line, 1-based
    courses: list[str]  # course slugs, in the order chosen
    masked: bool = False


@dataclass(frozen=True)
class DuplicatePair:
    flag_id: int
    flagged_at: datetime
    newer: AccountSide  # the account whose registration raised the flag
    older: AccountSide

    @property
    def mergeable(self) -> bool:
        """Whether the viewer serves both accounts (`Verification.merge` checks it again)."""
        return not (self.newer.masked or self.older.masked)


class Verification:
    def __init__(self, ctx: RegistryContext, *, erasure: Erasure):
        self.ctx = ctx
        self.store = ctx.store
        self.erasure = erasure

    def _now(self) -> datetime:
        return self.ctx.clock()

    # --- Inside registration and status (the caller's transaction) ---------------------

    def flag_duplicates(self, s: Session, patron: Patron, now: datetime) -> bool:
        """Flag every other account with the same name and date of birth as `patron` (just
        added); answers whether there was one."""
        others = s.scalars(select(Patron.id).where(
            Patron.search_name == patron.search_name, Patron.birth_date == patron.birth_date,
            Patron.id != patron.id).order_by(Patron.id)).all()
        for other_id in others:
            s.execute(self.store.insert_ignoring_duplicates(DuplicateFlag).values(
                patron_id=patron.id, other_id=other_id, created_at=now, resolved_by="",
                resolution=""))
        return bool(others)

    @staticmethod
    def pending_until(s: Session, patron_id: int) -> date | None:
        row = s.execute(select(Patron.pending_since, _DAYS).where(Patron.id == patron_id)
                        ).first()
        if row is None or row[0] is None:
            return None
        return domain.pending_until(row[0], row[1])

    # --- The pending-accounts queue ----------------------------------------------------

    def pending(self, viewer: StaffView) -> list[PendingAccount]:
        """The accounts waiting for an identity check that this staff member may handle,
        the oldest first."""
        stmt = self._pending_rows().order_by(Patron.pending_since, Patron.id)
        if not viewer.programme_wide:
            stmt = stmt.where(Institution.code == (viewer.institution_code or ""))
        with self.store.read() as s:
            return [self._pending_view(r) for r in s.execute(stmt).all()]

    @staticmethod
    def _pending_rows() -> Select:
        return (select(Patron.id, Patron.first_name, Patron.last_name, Patron.birth_date,
                       Library.code, Library.name, Institution.code, Patron.pending_since,
                       _DAYS, Place.status)
                .join(Library, Patron.library_id == Library.id)
                .join(Institution, Library.institution_id == Institution.id)
                .outerjoin(Place, Place.patron_id == Patron.id)
                .where(Patron.pending_since.is_not(None)))

    @staticmethod
    def _pending_view(r: Any) -> PendingAccount:
        return PendingAccount(
            patron_id=r[0], first_name=r[1], last_name=r[2], birth_date=r[3],
            library_code=r[4], library_name=r[5], institution_code=r[6], since=r[7],
            expires_at=domain.pending_deadline(r[7], r[8]), standing=r[9] or "none")

    def pending_account(self, patron_id: int) -> PendingAccount:
        """One pending account, whatever the institution: the caller checks who may see it
        (`staff.serving`)."""
        with self.store.read() as s:
            row = s.execute(self._pending_rows().where(Patron.id == patron_id)).first()
            if row is None:
                if s.get(Patron, patron_id) is None:
                    raise RegistryError("not_found")
                # Checked (or erased and gone) meanwhile: say so, to whoever may know.
                raise RegistryError("not_pending", institution=self._institution_of(s,
                                                                                    patron_id))
            return self._pending_view(row)

    def confirm_identity(self, patron_id: int, staff: StaffView, where: str = "") -> bool:
        """A librarian has seen an identity document: the account is active. If the patron
        waits and a seat is free, the line is served now (in order). Answers whether the
        patron now holds a seat."""
        now = self._now()
        with self.store.write() as s:
            patron, institution = self._patron_served(s, patron_id, staff)
            if patron.pending_since is None:
                raise RegistryError("not_pending")
            patron.pending_since = patron.pending_days = None
            patron.identity_checked_at = now
            patron.identity_checked_by = staff.actor
            s.flush()
            record(s, now, staff.actor, "identity_checked", where=where,
                   subject=pseudonym(patron_id), institution=institution,
                   assisted_by=staff.assisted_label)
            # The lock before reading the place: a freed seat may wait for this very patron.
            seats = self.ctx.seats(s)
            place = seats.place(patron_id)
            if place is not None and place.status is Standing.WAITING:
                seats.promote()
                place = seats.place(patron_id)
            return place is not None and place.status in (Standing.SEATED, Standing.OFFERED)

    def erase_pending(self, patron_id: int, reason: str, staff: StaffView,
                      where: str = "") -> None:
        """Erase a pending account (no document shown, a mistake, a joke): its waiting
        place goes with it."""
        reason = domain.clean_reason(reason)
        with self.store.write() as s:
            patron, institution = self._patron_served(s, patron_id, staff)
            if patron.pending_since is None:
                raise RegistryError("not_pending")
            record(s, self._now(), staff.actor, "pending_erased", where=where,
                   subject=pseudonym(patron_id), institution=institution,
                   reason=reason, assisted_by=staff.assisted_label)
            self.erasure.erase_for(s, patron_id, actor=staff.actor, where=where,
                                   assisted_by=staff.assisted_label, reason=reason)

    def erase_expired_pending(self) -> int:
        """Retention (`kiosk registry purge`): erase the pending accounts whose time to show
        a document has passed, each in its own transaction; answers how many."""
        now = self._now()
        with self.store.read() as s:
            rows = s.execute(select(Patron.id, Patron.pending_since, _DAYS)
                             .where(Patron.pending_since.is_not(None))).all()
        due = [pid for pid, since, days in rows
               if since is not None and domain.pending_expired(since, days, now)]
        erased = 0
        for patron_id in due:
            with self.store.write() as s:
                row = s.execute(select(Patron.pending_since, _DAYS, Institution.code)
                                .join(Library, Patron.library_id == Library.id)
                                .join(Institution, Library.institution_id == Institution.id)
                                .where(Patron.id == patron_id)).first()
                # Checked again: a librarian may have seen the document in the meantime.
                if row is None or row[0] is None or not domain.pending_expired(row[0], row[1],
                                                                               now):
                    continue
                record(s, now, "retention", "pending_expired",
                       subject=pseudonym(patron_id), institution=row[2], days=row[1])
                self.erasure.erase_for(s, patron_id, actor="retention")
                erased += 1
        return erased

    # --- The duplicates queue ------------------------------------------------------------

    def duplicates(self, viewer: StaffView) -> list[DuplicatePair]:
        """Open flags where either account belongs to this staff member's institution (every
        flag for a coordinator), the oldest first."""
        with self.store.read() as s:
            stmt = self._open_flags(viewer).order_by(DuplicateFlag.created_at, DuplicateFlag.id)
            flags = s.scalars(stmt).all()
            return [self._pair(s, f, viewer) for f in flags]

    def duplicate(self, flag_id: int, viewer: StaffView) -> DuplicatePair:
        """One open flag; "duplicate_resolved" once someone has dismissed it."""
        with self.store.read() as s:
            return self._pair(s, self._flag_served(s, flag_id, viewer), viewer)

    def dismiss(self, flag_id: int, staff: StaffView, where: str = "") -> None:
        """Two different people after all: the warning goes, both accounts stay."""
        now = self._now()
        with self.store.write() as s:
            flag = self._flag_served(s, flag_id, staff)
            flag.resolved_at, flag.resolved_by, flag.resolution = now, staff.actor, "dismissed"
            record(s, now, staff.actor, "dismissed", where=where,
                   subject=pseudonym(flag.patron_id),
                   institution=self._institution_of(s, flag.patron_id),
                   other=pseudonym(flag.other_id), assisted_by=staff.assisted_label)

    def merge(self, flag_id: int, keep_id: int, staff: StaffView, where: str = "") -> None:
        """One person, two accounts: keep the one staff chose, give it the other's course
        choices and the better standing of the two (a seat beats a waiting place, an earlier
        place in line a later one), then erase the other. One locked transaction: the seat
        and waiting counts stay those of the places. Only for staff who serve both accounts'
        institutions ("not_found" otherwise, as for a flag they may not see)."""
        now = self._now()
        with self.store.write() as s:
            flag = self._flag_served(s, flag_id, staff)
            institutions = {self._institution_of(s, pid)
                            for pid in (flag.patron_id, flag.other_id)}
            if not all(staff.serves(code) for code in institutions):
                raise RegistryError("not_found")
            if keep_id not in (flag.patron_id, flag.other_id):
                raise RegistryError("invalid", {"keep": "keep_unknown"})
            drop_id = flag.other_id if keep_id == flag.patron_id else flag.patron_id
            keep = s.get(Patron, keep_id)
            drop = s.get(Patron, drop_id)
            assert keep is not None and drop is not None
            institution = self._institution_of(s, keep_id)
            dropped_institution = self._institution_of(s, drop_id)

            # Every seat read after the lock.
            seats = self.ctx.seats(s)
            kept_place = seats.place(keep_id)
            other_place = seats.place(drop_id)
            keep_state = ((kept_place.status.value, kept_place.queue_no) if kept_place
                          else (None, None))
            drop_state = ((other_place.status.value, other_place.queue_no) if other_place
                          else (None, None))
            take_other = domain.merged_place_comes_from_other(keep_state, drop_state)

            # The course choices move (a course both chose stays once, the earlier choice).
            moved = 0
            for course_id, created_at in s.execute(
                    select(EnrolmentRow.course_id, EnrolmentRow.created_at)
                    .where(EnrolmentRow.patron_id == drop_id)).all():
                mine = s.scalar(select(EnrolmentRow).where(EnrolmentRow.patron_id == keep_id,
                                                           EnrolmentRow.course_id == course_id))
                if mine is None:
                    s.execute(insert(EnrolmentRow).values(patron_id=keep_id, course_id=course_id,
                                                          created_at=created_at))
                    moved += 1
                elif created_at < mine.created_at:
                    mine.created_at = created_at
            s.execute(delete(EnrolmentRow).where(EnrolmentRow.patron_id == drop_id))
            s.flush()

            # The weaker place goes, its count with it; the line is served at the end.
            if take_other:
                if kept_place is not None:
                    seats.release(keep_id, courses=False, serve=False)
                seats.hand_over(drop_id, keep_id)
            elif other_place is not None:
                seats.release(drop_id, courses=False, serve=False)

            # The kept account inherits the other's standing: an active account (checked, or
            # of an "open" institution) makes it active, a document seen for either was seen
            # for this person. Else a pending account could keep the seat it took over, and
            # the pending expiry would erase both.
            keep = s.get(Patron, keep_id)
            drop = s.get(Patron, drop_id)
            assert keep is not None and drop is not None
            activated = keep.pending_since is not None and drop.pending_since is None
            if activated:
                keep.pending_since = keep.pending_days = None
            if keep.identity_checked_at is None and drop.identity_checked_at is not None:
                keep.identity_checked_at = drop.identity_checked_at
                keep.identity_checked_by = drop.identity_checked_by
            s.flush()

            # The academy: the kept account as it now stands, the other one's user gone.
            academy.enqueue(s, keep_id, now)
            academy.enqueue(s, drop_id, now)

            flag.resolved_at, flag.resolved_by, flag.resolution = now, staff.actor, "merged"
            record(s, now, staff.actor, "merged", where=where,
                   subject=pseudonym(keep_id), institution=institution,
                   erased=pseudonym(drop_id), courses_moved=moved,
                   standing_from="erased" if take_other else "kept", activated=activated,
                   assisted_by=staff.assisted_label)
            s.execute(delete(Patron).where(Patron.id == drop_id))
            record(s, now, staff.actor, "patron_erased", where=where,
                   subject=pseudonym(drop_id), institution=dropped_institution,
                   had=drop_state[0] or "none", reason="merged",
                   merged_into=pseudonym(keep_id), assisted_by=staff.assisted_label)
            # A seat freed by the weaker place goes to the next in line, in order.
            seats.promote()

    # --- Helpers -------------------------------------------------------------------------

    @staticmethod
    def _institution_of(s: Session, patron_id: int) -> str:
        return s.scalar(select(Institution.code)
                        .join(Library, Library.institution_id == Institution.id)
                        .join(Patron, Patron.library_id == Library.id)
                        .where(Patron.id == patron_id)) or ""

    def _patron_served(self, s: Session, patron_id: int,
                       staff: StaffView) -> tuple[Patron, str]:
        """The patron, if this staff member may act for them; else "not_found" (a librarian
        may not even learn that an account of another institution exists)."""
        patron = s.get(Patron, patron_id)
        if patron is None:
            raise RegistryError("not_found")
        institution = self._institution_of(s, patron_id)
        if not staff.serves(institution):
            raise RegistryError("not_found")
        return patron, institution

    def _open_flags(self, viewer: StaffView) -> Select[Any]:
        return self._flags(viewer).where(DuplicateFlag.resolved_at.is_(None))

    @staticmethod
    def _flags(viewer: StaffView) -> Select[Any]:
        """The flags this staff member may see: either account in their institution."""
        stmt = select(DuplicateFlag)
        if viewer.programme_wide:
            return stmt
        code = viewer.institution_code or ""
        mine = (select(Patron.id).join(Library, Patron.library_id == Library.id)
                .join(Institution, Library.institution_id == Institution.id)
                .where(Institution.code == code))
        return stmt.where(or_(DuplicateFlag.patron_id.in_(mine),
                              DuplicateFlag.other_id.in_(mine)))

    def _flag_served(self, s: Session, flag_id: int, staff: StaffView) -> DuplicateFlag:
        """An open flag this staff member may act on; "not_found" for one they may not see,
        "duplicate_resolved" for one already dismissed (a merged one is gone with its
        erased account)."""
        flag = s.scalar(self._flags(staff).where(DuplicateFlag.id == flag_id))
        if flag is None:
            raise RegistryError("not_found")
        if flag.resolved_at is not None:
            raise RegistryError("duplicate_resolved")
        return flag

    def _pair(self, s: Session, flag: DuplicateFlag, viewer: StaffView) -> DuplicatePair:
        return DuplicatePair(flag_id=flag.id, flagged_at=flag.created_at,
                             newer=self._side(s, flag.patron_id, viewer),
                             older=self._side(s, flag.other_id, viewer))

    def _side(self, s: Session, patron_id: int, viewer: StaffView) -> AccountSide:
        p = s.get(Patron, patron_id)
        assert p is not None
        place = ledger.place_of(s, patron_id)
        courses = s.scalars(select(EnrolmentRow).where(EnrolmentRow.patron_id == patron_id)
                            .order_by(EnrolmentRow.created_at, EnrolmentRow.id)).all()
        position = ledger.position_of(s, place)
        lib = p.library
        # Another institution's account: enough to compare (name, library, standing), not
        # what lets one reach or log in as the patron.
        masked = not viewer.serves(lib.institution.code)
        return AccountSide(
            patron_id=p.id,
            card_number=mask_card_number(p.card_number) if masked else p.card_number,
            first_name=p.first_name, last_name=p.last_name, birth_date=p.birth_date,
            email="" if masked else p.email or "", postcode=p.postcode, masked=masked,
            library_code=lib.code, library_name=lib.name,
            institution_code=lib.institution.code, created_at=p.created_at,
            last_active_at=p.last_active_at, pending=p.pending_since is not None,
            identity_checked=p.identity_checked_at is not None,
            standing=place.status.value if place else "none", position=position,
            courses=[c.course.slug for c in courses],
        )
