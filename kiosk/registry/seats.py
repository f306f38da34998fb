"""Seats and offers as patrons (and librarians taking over a kiosk) use them: claim a seat for
a course, see where they stand, withdraw from a course, give up a seat or a waiting place,
accept or decline an offer; the coordinator's cap change; the hourly sweep of offers.

Each use case is one write transaction; the decisions are the seat ledger's (`ledger.py`),
taken under the programme lock. The claim is the hot path, measured: its statements are
prepared once below, and it runs Core statements on the connection, no ORM.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from . import academy, domain, ledger, notices, promotion
from .context import RegistryContext
from .domain import ClaimOutlook, ClaimResult, Enrolment, PatronStatus, RegistryError, Standing
from .ledger import Claimant, SeatEventKind
from .notices import Draft, draft, enqueue
from .patron_sessions import PatronSessions
from .prepared import Prepared
from .promotion import OfferSweep
from .reference import Reference
from .roles import StaffView
from .staff import pseudonym, record
from .store import (
    THE_PROGRAMME,
    AuditEntry,
    Course,
    EnrolmentRow,
    Institution,
    Library,
    Patron,
    PatronSession,
    Programme,
    Runner,
)
from .verification import Verification


# The claim's one read, built once (SQLAlchemy then reuses its compiled form): the session,
# the patron's standing and the course; with mail on, what the e-mail telling the outcome
# needs too (notices.DRAFT_COLUMNS), so that it costs no statement of its own.
def _claim_context(*extra: Any) -> Prepared:
    return Prepared(
        select(PatronSession.id, PatronSession.patron_id, PatronSession.created_at,
               PatronSession.last_seen_at, PatronSession.revoked_at,
               Patron.must_change_password, Patron.pending_since, Library.institution_id,
               Institution.seat_quota,
               select(Course.id).where(Course.slug == bindparam("slug"),
                                       Course.retired.is_(False))
               .scalar_subquery().label("course_id"), *extra)
        .join(Patron, Patron.id == PatronSession.patron_id)
        .join(Library, Library.id == Patron.library_id)
        .join(Institution, Institution.id == Library.institution_id)
        .where(PatronSession.token_hash == bindparam("token_hash")))


_CLAIM_CONTEXT = _claim_context()
_CLAIM_CONTEXT_MAILED = _claim_context(*notices.DRAFT_COLUMNS)

# What the e-mail after a claim that chose a new course tells.
_NOTICE_OF = {Standing.SEATED: "enrolled", Standing.WAITING: "waiting_list_joined"}

# Who is told of a claim once it is committed: where it was made ("kiosk": a patron, alone or
# with a librarian taking over; "desk": a librarian for them) and its answer.
ClaimWatcher = Callable[[str, ClaimResult], None]


def nobody_watches(_via: str, _result: ClaimResult) -> None:
    """The watcher of a registry nobody scrapes."""


class Seats:
    def __init__(self, ctx: RegistryContext, *, sessions: PatronSessions, reference: Reference,
                 verification: Verification):
        self.ctx = ctx
        self.sessions = sessions
        self.reference = reference
        self.verification = verification
        # Told of each committed claim (kiosk.metrics counts them): it must be as cheap as a
        # counter's increment, for the claim is the hot path; no SQL, no waiting.
        self.on_claim: ClaimWatcher = nobody_watches

    # --- Seats and enrolments ------------------------------------------------------------

    def claim(self, token: str, course_slug: str, *, assisted_by: StaffView | None = None,
              where: str = "") -> ClaimResult:
        """Enrol in a course: with a seat (held or granted now) or on the waiting list.
        `assisted_by`: a librarian did it with the patron (a take-over): audited."""
        with self.ctx.store.write() as session:
            # The hot path: prepared Core statements on the connection (no ORM), the
            # session, the patron's standing and the course in one read, then the ledger.
            s = session.connection()
            mailed = notices.enabled(s)
            row = self.sessions.check_session(
                (_CLAIM_CONTEXT_MAILED if mailed else _CLAIM_CONTEXT).first(
                    s, {"token_hash": domain.token_hash(token), "slug": course_slug}))
            if self.sessions.touch_due(row):
                self.sessions.touch(s, row.id)
            patron_id = row.patron_id
            institution = self._may_assist(s, assisted_by, patron_id)
            if row.course_id is None:
                raise RegistryError("course_not_found")
            claimant = Claimant(promotion.Candidate(patron_id, row.institution_id,
                                                    row.pending_since is not None),
                                row.seat_quota)
            notice = (notices.draft_from(s, patron_id, row, course_slug=course_slug)
                      if mailed else None)
            result = self._claim(s, patron_id, course_slug, row.course_id, claimant, notice)
            if assisted_by is not None:
                self._assisted(session, assisted_by, "patron_enrolled", patron_id, where,
                               institution, course=course_slug,
                               standing=result.standing.value)
        self.on_claim("kiosk", result)  # committed: only now is it a claim that happened
        return result

    def claim_for(self, s: Runner, patron_id: int, course_slug: str) -> ClaimResult:
        """The claim for a known patron, inside the caller's write transaction (one made for
        them at the desk)."""
        course_id = self.reference.active_course_id(s, course_slug)
        return self._claim(s, patron_id, course_slug, course_id, self._claimant(s, patron_id),
                           draft(s, patron_id, course_slug=course_slug))

    def _claim(self, s: Runner, patron_id: int, course_slug: str, course_id: int,
               claimant: Claimant, notice: Draft | None) -> ClaimResult:
        """What the seat rules need of the patron is read before, and so is what the e-mail
        telling them the outcome needs (`notice`, None when mail is off); the ledger writes
        the course choice and decides (one round trip on PostgreSQL) and holds the programme
        lock until the transaction ends: the e-mail's row is then only rendered and goes
        with the COMMIT."""
        result, new_course = ledger.claim(s, patron_id, course_id, claimant,
                                          clock=self.ctx.clock, events=self.ctx.events)
        now = self.ctx.clock()
        if new_course and result.standing is Standing.SEATED and not result.newly_granted:
            academy.enqueue(s, patron_id, now)  # a course added to a seat: the academy's list
        kind = _NOTICE_OF.get(result.standing) if new_course else None  # chosen again: none
        if notice is not None and kind is not None:
            notice.queue_at_commit(s, kind, now, course_slug=course_slug,
                                   **({"position": str(result.position or "")}
                                      if result.standing is Standing.WAITING else {}))
        return result

    def claim_outlook(self, token: str) -> ClaimOutlook:
        """What a claim would give the patron now (a read: no lock, nothing written), decided
        by the same rule as the claim (promotion.claim_outlook)."""
        return self.sessions.reading(token, lambda s, patron: self.outlook_of(s, patron.id))

    def outlook_of(self, s: Runner, patron_id: int) -> ClaimOutlook:
        claimant = self._claimant(s, patron_id)
        candidate = claimant.candidate
        prog = s.execute(select(Programme.cap, Programme.seats_taken, Programme.waiting,
                                Programme.fair_share, Programme.promotion)
                         .where(THE_PROGRAMME)).one()
        held = (ledger.seats_held(s, candidate.institution_id).get(candidate.institution_id, 0)
                if prog.fair_share and claimant.quota is not None else 0)
        place = ledger.place_of(s, patron_id)
        return promotion.claim_outlook(
            place.status if place else Standing.NONE, ledger.position_of(s, place), candidate,
            promotion.SeatsNow(cap=prog.cap, taken=prog.seats_taken,
                               waiting=prog.waiting or 0, fair_share=bool(prog.fair_share),
                               promotion=prog.promotion, quota=claimant.quota, held=held))

    def status(self, token: str, lang: str = "en") -> PatronStatus:
        return self.sessions.reading(token, lambda s, patron: self.status_of(s, patron.id, lang))

    def withdraw(self, token: str, course_slug: str, *, assisted_by: StaffView | None = None,
                 where: str = "") -> PatronStatus:
        """Leave one course; leaving the last one gives the seat (or the waiting place) up."""
        with self.ctx.store.write() as s:
            patron = self.sessions.patron_for(s, token)
            institution = self._may_assist(s, assisted_by, patron.id)
            status = self.withdraw_for(s, patron, course_slug)
            if assisted_by is not None:
                self._assisted(s, assisted_by, "patron_withdrawn", patron.id, where,
                               institution, course=course_slug)
            return status

    def withdraw_for(self, s: Session, patron: Patron, course_slug: str) -> PatronStatus:
        course = s.scalar(select(Course).where(Course.slug == course_slug))
        # One statement that answers whether it deleted: two kiosks withdrawing the same
        # course at once (or a give-up meanwhile) leave one of them "not enrolled", not a
        # delete of a row another transaction has already deleted.
        deleted = course is not None and s.connection().execute(
            delete(EnrolmentRow).where(
                EnrolmentRow.patron_id == patron.id, EnrolmentRow.course_id == course.id
            )
        ).rowcount
        if not deleted:
            raise RegistryError("not_enrolled")
        remaining = s.scalar(
            select(func.count()).where(EnrolmentRow.patron_id == patron.id)
        )
        if not remaining:
            self.ctx.release(s, patron.id)
        else:  # a course dropped, the seat kept: the academy's list
            academy.enqueue(s, patron.id, self.ctx.clock())
        return self.status_of(s, patron.id, patron.language)

    def give_up_seat(self, token: str, *, assisted_by: StaffView | None = None,
                     where: str = "") -> None:
        with self.ctx.store.write() as s:
            patron_id = self.sessions.patron_id_for(s, token)
            institution = self._may_assist(s, assisted_by, patron_id)
            self.give_up_seat_for(s, patron_id)
            if assisted_by is not None:
                self._assisted(s, assisted_by, "seat_given_up", patron_id, where, institution)

    def give_up_seat_for(self, s: Session, patron_id: int) -> None:
        if self.ctx.release(s, patron_id, only=Standing.SEATED) is None:
            raise RegistryError("not_seated")

    def leave_waiting_list(self, token: str, *, assisted_by: StaffView | None = None,
                           where: str = "") -> None:
        with self.ctx.store.write() as s:
            patron_id = self.sessions.patron_id_for(s, token)
            institution = self._may_assist(s, assisted_by, patron_id)
            self.leave_waiting_list_for(s, patron_id)
            if assisted_by is not None:
                self._assisted(s, assisted_by, "waiting_list_left", patron_id, where,
                               institution)

    @staticmethod
    def _may_assist(s: Runner, staff: StaffView | None, patron_id: int) -> str:
        """The patron's institution, checked before a take-over acts for them: a librarian
        serves only their own institution's patrons (as at the desk), a coordinator all.
        Refused with `staff_forbidden`: the patron is logged in, so no "not_found" here."""
        if staff is None:
            return ""
        institution = s.scalar(select(Institution.code).join(Library)
                               .join(Patron, Patron.library_id == Library.id)
                               .where(Patron.id == patron_id)) or ""
        if not staff.serves(institution):
            raise RegistryError("staff_forbidden")
        return institution

    def _assisted(self, s: Session, staff: StaffView, action: str, patron_id: int,
                  where: str, institution: str, **detail: object) -> None:
        """The audit entry of something a librarian did with the patron at a kiosk."""
        record(s, self.ctx.clock(), staff.actor, action, where=where,
               subject=pseudonym(patron_id), institution=institution,
               assisted_by=staff.assisted_label, **detail)

    def leave_waiting_list_for(self, s: Session, patron_id: int) -> None:
        if self.ctx.release(s, patron_id, only=Standing.WAITING) is None:
            raise RegistryError("not_waiting")

    def set_cap(self, cap: int, actor: str, where: str = "", reason: str = "") -> int:
        """Change the programme cap; a raise serves the waiting list at once, in order."""
        if cap < 0:
            raise RegistryError("invalid", {"cap": "cap_invalid"})
        with self.ctx.store.write() as s:
            seats = self.ctx.seats(s)
            old = seats.set_cap(cap)
            promoted = seats.promote()
            detail: dict[str, Any] = {"from": old, "to": cap, "promoted": promoted,
                                      "reason": reason}
            record(s, self.ctx.clock(), actor, "cap_changed", where=where, **detail)
            return promoted

    # --- Inside a transaction ------------------------------------------------------------

    @staticmethod
    def _claimant(s: Runner, patron_id: int) -> Claimant:
        """The claiming patron as the seat rules need them, and their institution's quota."""
        row = s.execute(
            select(Patron.pending_since, Library.institution_id, Institution.seat_quota)
            .join(Library, Library.id == Patron.library_id)
            .join(Institution, Institution.id == Library.institution_id)
            .where(Patron.id == patron_id)
        ).one()
        return Claimant(promotion.Candidate(patron_id, row.institution_id,
                                            row.pending_since is not None), row.seat_quota)

    # --- Offers ---------------------------------------------------------------------------

    def accept_offer(self, token: str) -> PatronStatus:
        """Take the seat held for the patron: they are seated now. After its time the offer
        is gone (its seat already served to the next in line): "offer_expired"."""
        with self.ctx.store.write() as s:
            patron = self.sessions.patron_for(s, token)
            try:
                self.ctx.seats(s).accept_offer(patron.id, actor=pseudonym(patron.id))
            except RegistryError as refusal:
                if refusal.code == "offer_expired":
                    s.flush()
                    s.connection().commit()  # the expiry stands; then the refusal
                raise
            return self.status_of(s, patron.id, patron.language)

    def decline_offer(self, token: str) -> None:
        """"No thanks": the place and courses go, the seat goes to the next in line."""
        with self.ctx.store.write() as s:
            patron = self.sessions.patron_for(s, token)
            seats = self.ctx.seats(s)
            seats.end_offer(patron.id, SeatEventKind.DECLINED, actor=pseudonym(patron.id))
            seats.promote()

    def expire_offers(self) -> OfferSweep:
        """Run now and then (`kiosk registry expire-offers`, and by `purge`): end the offers
        past their time and serve their seats; remind, once, those whose offer ends within a
        day (an audit entry "offer_expiring" marks the reminder as sent)."""
        with self.ctx.store.write() as s:
            seats = self.ctx.seats(s)
            now = seats.now
            expired = seats.expire_due()
            promoted = seats.promote()
            reminded = 0
            for offer in seats.offers():
                patron_id, until, since = offer.patron_id, offer.offer_expires_at, offer.seated_at
                assert until is not None
                if not promotion.reminder_due(until, now):
                    continue
                sent = s.scalar(select(AuditEntry.id).where(
                    AuditEntry.action == "offer_expiring",
                    AuditEntry.subject == pseudonym(patron_id),
                    AuditEntry.at >= (since or until - timedelta(days=366))).limit(1))
                if sent is not None:
                    continue
                enqueue(s, patron_id, "offer_expiring", now, until=until.isoformat())
                record(s, now, "registry", "offer_expiring", subject=pseudonym(patron_id),
                       until=until.isoformat())
                reminded += 1
            return OfferSweep(expired=len(expired), promoted=promoted, reminded=reminded)

    def status_of(self, s: Session, patron_id: int, lang: str) -> PatronStatus:
        """What the patron holds and chose, as the pages show it (a read: no lock)."""
        place = ledger.place_of(s, patron_id)
        lapsed = (place is not None and place.status is Standing.OFFERED
                  and place.offer_expires_at is not None
                  and place.offer_expires_at <= self.ctx.clock())
        if lapsed:
            # Not yet swept (hourly, or at the next claim), but over, and so are its courses:
            # never "yours until <a past time>".
            place = None
        rows = [] if lapsed else s.scalars(
            select(EnrolmentRow)
            .where(EnrolmentRow.patron_id == patron_id)
            .order_by(EnrolmentRow.created_at, EnrolmentRow.id)
        ).all()
        return PatronStatus(
            standing=place.status if place else Standing.NONE,
            position=ledger.position_of(s, place),
            enrolments=[
                Enrolment(r.course.slug, self.reference.text(r.course, lang).title,
                          r.created_at)
                for r in rows
            ],
            seated_at=place.seated_at if place else None,
            offer_expires_at=place.offer_expires_at if place else None,
            pending_until=self.verification.pending_until(s, patron_id),
            academy=academy.state_of(s, patron_id,
                                     place.status if place else Standing.NONE),
        )
