"""Use cases of the registry: each one transaction, the rules from `domain`, rows from `store`.

Callers (the in-process client, the JSON API) only translate; they hold no rules.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from . import domain, ledger, promotion, seat_events
from .assist import Assistance
from .catalogue_admin import CatalogueAdmin
from .closures import Closures
from .context import TOUCH_EVERY, RegistryContext, utcnow
from .desk import DeskService
from .domain import (
    Catalogue,
    ClaimResult,
    CourseView,
    Enrolment,
    InstitutionView,
    LoginPolicy,
    Maintenance,
    NewPatron,
    PatronData,
    PatronStatus,
    PatronView,
    ProgrammeStatus,
    Registration,
    RegistryError,
    Standing,
    TerminalView,
)
from .ledger import Claimant, Ledger, SeatEventKind
from .maintenance import ProgrammeUpkeep
from .notices import Notices, enqueue
from .passwords import dummy_hash, hash_password, needs_rehash, verify
from .policies import Policies
from .promotion import OfferSweep
from .reference import Reference
from .reports import Reports
from .roles import StaffView
from .staff import StaffAccounts, pseudonym, record
from .store import (
    THE_PROGRAMME,
    AuditEntry,
    Course,
    CourseText,
    EnrolmentRow,
    Institution,
    Library,
    Patron,
    PatronSession,
    Programme,
    Runner,
    Store,
)
from .terminals import TerminalTokens
from .verification import Verification
from .waitlist import Waitlist

# Statements of every patron call, built once (SQLAlchemy then reuses their compiled form).
_SESSION = (select(PatronSession.id, PatronSession.patron_id, PatronSession.created_at,
                   PatronSession.last_seen_at, PatronSession.revoked_at,
                   Patron.must_change_password)
            .join(Patron, Patron.id == PatronSession.patron_id)
            .where(PatronSession.token_hash == bindparam("token_hash")))
_CLAIM_CONTEXT = (
    select(PatronSession.id, PatronSession.patron_id, PatronSession.created_at,
           PatronSession.last_seen_at, PatronSession.revoked_at, Patron.must_change_password,
           Patron.pending_since, Library.institution_id, Institution.seat_quota,
           select(Course.id).where(Course.slug == bindparam("slug"), Course.retired.is_(False))
           .scalar_subquery().label("course_id"))
    .join(Patron, Patron.id == PatronSession.patron_id)
    .join(Library, Library.id == Patron.library_id)
    .join(Institution, Institution.id == Library.institution_id)
    .where(PatronSession.token_hash == bindparam("token_hash")))
_TOUCH = (update(PatronSession).where(PatronSession.id == bindparam("session_id"))
          .values(last_seen_at=bindparam("seen_at")))
T = TypeVar("T")


class RegistryService:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] = utcnow,
        min_age: int = 16,
        login_policy: LoginPolicy | None = None,
        session_idle: timedelta = timedelta(minutes=10),
        session_max: timedelta = timedelta(minutes=30),
        terminal_cache: timedelta = timedelta(seconds=10),
    ):
        self.store = store
        self.clock = clock
        self.min_age = min_age
        self.login_policy = login_policy or LoginPolicy()
        self.session_idle = session_idle
        self.session_max = session_max
        # Every use case reads the time through `_now`: a clock set on this object later
        # (tests step time) is theirs too.
        self.context = ctx = RegistryContext(store, clock=self._now, events=seat_events.tell)
        self.staff = StaffAccounts(store, self._now, login_policy=self.login_policy)
        self.reference = Reference(ctx)
        self.terminal_tokens = TerminalTokens(ctx, cache=terminal_cache)
        self.upkeep = ProgrammeUpkeep(ctx)
        self.desk = DeskService(self)
        self.waitlist = Waitlist(self)
        self.courses_admin = CatalogueAdmin(self)
        self.verification = Verification(self)
        self.assist = Assistance(self.staff)
        self.notices = Notices(self)
        self.policies = Policies(self)
        self.closures = Closures(self)
        self.reports = Reports(self)

    def _now(self) -> datetime:
        return self.clock()

    @property
    def terminal_cache(self) -> timedelta:
        return self.terminal_tokens.cache

    @terminal_cache.setter
    def terminal_cache(self, value: timedelta) -> None:
        self.terminal_tokens.cache = value

    # --- Reference data ------------------------------------------------------------------

    def institutions(self) -> list[InstitutionView]:
        return self.reference.institutions()

    def catalogue(self, lang: str) -> Catalogue:
        return self.reference.catalogue(lang)

    def course(self, slug: str, lang: str) -> CourseView:
        return self.reference.course(slug, lang)

    def programme_status(self) -> ProgrammeStatus:
        return self.reference.programme_status()

    def academy_url(self) -> str:
        return self.reference.academy_url()

    def text(self, course: Course, lang: str) -> CourseText:
        return self.reference.text(course, lang)

    # --- Accounts and sessions -----------------------------------------------------------

    def register(self, data: NewPatron, *, assisted_by: StaffView | None = None,
                 identity_checked: bool = False, where: str = "") -> str:
        """Create a library account; answers the new card number.

        `assisted_by`: the staff member who filled it in for the patron (the desk, a take-over
        at a kiosk), only at a library of their institution (a coordinator: any);
        `identity_checked`: they saw an identity document (recorded on the row); `where`: the
        desk or kiosk it was done at, for the audit log."""
        return self.register_account(data, assisted_by=assisted_by,
                                     identity_checked=identity_checked, where=where).card_number

    def register_account(self, data: NewPatron, *, assisted_by: StaffView | None = None,
                         identity_checked: bool = False, where: str = "") -> Registration:
        """`register`, answering also what the patron must be told: the account waits for an
        identity check ("verify" institutions), or may duplicate an existing one."""
        now = self.clock()
        with self.store.write() as s:
            rows = s.execute(select(Library.code, Library.id, Institution.code)
                             .join(Institution, Library.institution_id == Institution.id)).all()
            libraries = {code: lib_id for code, lib_id, _ in rows}
            institution = {code: inst for code, _, inst in rows}.get(data.library_code)
            # Before the other fields, as the desk always did: no account at a library of
            # another institution is made "assisted by" a librarian who does not serve it.
            if assisted_by and institution and not assisted_by.serves(institution):
                raise RegistryError("invalid", {"library_code": "library_not_served"})
            clean = domain.validate_new_patron(
                data, today=self.clock().date(), min_age=self.min_age,
                library_codes=set(libraries),
            )
            if s.scalar(select(Patron.id).where(Patron.email == clean.email)) is not None:
                raise RegistryError("invalid", {"email": "email_taken"})
            library = s.get(Library, libraries[clean.library_code])
            assert library is not None
            card = self._new_card_number(s, library.institution.card_prefix)
            pending = domain.starts_pending(library.institution.verification,
                                            bool(assisted_by and identity_checked))
            row = Patron(
                card_number=card,
                email=clean.email,
                first_name=clean.first_name,
                last_name=clean.last_name,
                search_name=domain.search_name(clean.first_name, clean.last_name),
                birth_date=clean.birth_date,
                postcode=clean.postcode,
                phone=clean.phone,
                library_id=library.id,
                language=clean.language,
                password_hash=hash_password(domain.normalise_password(data.password)),
                created_at=self.clock(),
                last_active_at=self.clock(),
                failed_logins=0,
                identity_checked_at=now if assisted_by and identity_checked else None,
                identity_checked_by=assisted_by.actor if assisted_by and identity_checked
                else "",
                pending_since=now if pending else None,
                pending_days=library.institution.pending_days if pending else None,
            )
            s.add(row)
            s.flush()
            patron_id = row.id
            enqueue(s, patron_id, "account_created", now)
            possible_duplicate = self.verification.flag_duplicates(s, row, now)
            detail: dict[str, object] = {}
            if assisted_by is not None:
                detail = {"assisted_by": assisted_by.assisted_label,
                          "identity_checked": identity_checked}
            record(s, now, assisted_by.actor if assisted_by else pseudonym(patron_id),
                   "patron_registered", where=where, subject=pseudonym(patron_id),
                   institution=library.institution.code, **detail)
            return Registration(
                card_number=card, possible_duplicate=possible_duplicate,
                pending_until=domain.pending_until(now, library.institution.pending_days)
                if pending else None)

    def login(self, identifier: str, password: str) -> tuple[str, PatronView]:
        """Card number or e-mail plus password; answers a session token and the patron.

        Both are taken in the form registration stored them in (NFC, the e-mail tidied), so
        'é' typed as e + accent on another keyboard is the same password."""
        identifier = domain.normalise_login_identifier(identifier)
        password = domain.normalise_password(password)
        now = self.clock()
        with self.store.write() as s:
            patron = self._find_patron(s, identifier)
            if patron is None:
                verify(dummy_hash(), password)  # same cost whether or not the account exists
                raise RegistryError("login_failed")
            if self.login_policy.is_locked(patron.locked_until, now):
                raise RegistryError("account_locked", until=patron.locked_until)
            if not verify(patron.password_hash, self._as_stored(patron, password)):
                patron.failed_logins, patron.locked_until = self.login_policy.after_failure(
                    patron.failed_logins, now
                )
                if patron.locked_until is not None:
                    # Commit the lock, then refuse: raising here would roll it back.
                    s.flush()
                    s.connection().commit()
                    raise RegistryError("account_locked", until=patron.locked_until)
                s.flush()
                s.connection().commit()
                raise RegistryError(
                    "login_failed",
                    attempts_left=self.login_policy.max_failures - patron.failed_logins,
                )
            patron.failed_logins, patron.locked_until = 0, None
            patron.last_active_at = now
            if needs_rehash(patron.password_hash):
                patron.password_hash = hash_password(password)
            token = secrets.token_urlsafe(32)
            s.add(
                PatronSession(
                    token_hash=domain.token_hash(token), patron_id=patron.id, created_at=now,
                    last_seen_at=now,
                )
            )
            return token, self._patron_view(patron)

    def logout(self, token: str) -> None:
        """Log out everywhere: every session of this token's patron ends, on every kiosk."""
        owner = (select(PatronSession.patron_id)
                 .where(PatronSession.token_hash == domain.token_hash(token)).scalar_subquery())
        with self.store.write() as s:
            s.execute(
                update(PatronSession)
                .where(PatronSession.patron_id == owner)
                .where(PatronSession.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )

    def whoami(self, token: str) -> PatronView:
        """Open also before a printed one-time password is replaced: the flag is in the view."""
        return self._reading(token, lambda s, patron: self._patron_view(patron),
                             one_time_ok=True)

    def change_password(self, token: str, old: str, new: str) -> None:
        """The patron chooses a new password, typing the current one again (after a printed
        one-time password, the kiosk asks for this before anything else). Their other
        sessions end: whoever knew the old password is logged out everywhere."""
        old, new = domain.normalise_password(old), domain.normalise_password(new)
        with self.store.write() as s:
            sess = self._session(s, token, one_time_ok=True)
            patron = s.get(Patron, sess.patron_id)
            assert patron is not None
            if not verify(patron.password_hash, self._as_stored(patron, old)):
                raise RegistryError("invalid", {"old_password": "current_password_wrong"})
            problem = domain.password_problem(new)
            if problem is None and new == old:
                problem = "password_unchanged"
            if problem is not None:
                raise RegistryError("invalid", {"new_password": problem})
            patron.password_hash = hash_password(new)
            patron.must_change_password = False
            patron.failed_logins, patron.locked_until = 0, None
            s.execute(update(PatronSession)
                      .where(PatronSession.patron_id == patron.id, PatronSession.id != sess.id,
                             PatronSession.revoked_at.is_(None))
                      .values(revoked_at=self.clock()))
            self._touch(s, sess.id)

    # --- Seats and enrolments ------------------------------------------------------------

    def claim(self, token: str, course_slug: str, *, assisted_by: StaffView | None = None,
              where: str = "") -> ClaimResult:
        """Enrol in a course: with a seat (held or granted now) or on the waiting list.
        `assisted_by`: a librarian did it with the patron (a take-over): audited."""
        with self.store.write() as session:
            # The hot path: prepared Core statements on the connection (no ORM), the
            # session, the patron's standing and the course in one read, then the ledger.
            s = session.connection()
            ctx = s.execute(_CLAIM_CONTEXT, {"token_hash": domain.token_hash(token),
                                             "slug": course_slug}).first()
            self._check_session(ctx)
            if self._touch_due(ctx):
                self._touch(s, ctx.id)
            patron_id = ctx.patron_id
            institution = self._may_assist(s, assisted_by, patron_id)
            if ctx.course_id is None:
                raise RegistryError("course_not_found")
            claimant = Claimant(promotion.Candidate(patron_id, ctx.institution_id,
                                                    ctx.pending_since is not None),
                                ctx.seat_quota)
            result = self._claim(s, patron_id, course_slug, ctx.course_id, claimant)
            if assisted_by is not None:
                self._assisted(session, assisted_by, "patron_enrolled", patron_id, where,
                               institution, course=course_slug,
                               standing=result.standing.value)
            return result

    def seats(self, s: Runner) -> Ledger:
        """The seat ledger, the programme lock taken in `s`'s transaction (see ledger.py)."""
        return self.context.seats(s)

    def claim_for(self, s: Runner, patron_id: int, course_slug: str) -> ClaimResult:
        """The claim for a known patron, inside the caller's write transaction (one made for
        them at the desk)."""
        course_id = self.reference.active_course_id(s, course_slug)
        return self._claim(s, patron_id, course_slug, course_id, self._claimant(s, patron_id))

    def _claim(self, s: Runner, patron_id: int, course_slug: str, course_id: int,
               claimant: Claimant) -> ClaimResult:
        """What the seat rules need of the patron is read before; the ledger writes the course
        choice and decides (one round trip on PostgreSQL); the transaction should end soon."""
        result, new_course = ledger.claim(s, patron_id, course_id, claimant, clock=self.clock,
                                          events=seat_events.tell)
        return self._claim_notice(s, patron_id, course_slug, self.clock(), new_course, result)

    @staticmethod
    def _claim_notice(s: Runner, patron_id: int, course_slug: str, now: datetime,
                      new_course: bool, result: ClaimResult) -> ClaimResult:
        """Tell the patron by e-mail what a claim gave them (a course chosen again: nothing)."""
        if new_course and result.standing is Standing.SEATED:
            enqueue(s, patron_id, "enrolled", now, course_slug=course_slug)
        elif new_course and result.standing is Standing.WAITING:
            enqueue(s, patron_id, "waiting_list_joined", now, course_slug=course_slug,
                    position=str(result.position or ""))
        return result

    def status(self, token: str, lang: str = "en") -> PatronStatus:
        return self._reading(token, lambda s, patron: self.status_of(s, patron.id, lang))

    def withdraw(self, token: str, course_slug: str, *, assisted_by: StaffView | None = None,
                 where: str = "") -> PatronStatus:
        """Leave one course; leaving the last one gives the seat (or the waiting place) up."""
        with self.store.write() as s:
            patron = self._patron_for(s, token)
            institution = self._may_assist(s, assisted_by, patron.id)
            status = self.withdraw_for(s, patron, course_slug)
            if assisted_by is not None:
                self._assisted(s, assisted_by, "patron_withdrawn", patron.id, where,
                               institution, course=course_slug)
            return status

    def withdraw_for(self, s: Session, patron: Patron, course_slug: str) -> PatronStatus:
        course = s.scalar(select(Course).where(Course.slug == course_slug))
        row = course and s.scalar(
            select(EnrolmentRow).where(
                EnrolmentRow.patron_id == patron.id, EnrolmentRow.course_id == course.id
            )
        )
        if not row:
            raise RegistryError("not_enrolled")
        s.delete(row)
        s.flush()
        remaining = s.scalar(
            select(func.count()).where(EnrolmentRow.patron_id == patron.id)
        )
        if not remaining:
            self.seats(s).release(patron.id)
        return self.status_of(s, patron.id, patron.language)

    def give_up_seat(self, token: str, *, assisted_by: StaffView | None = None,
                     where: str = "") -> None:
        with self.store.write() as s:
            patron_id = self._patron_id_for(s, token)
            institution = self._may_assist(s, assisted_by, patron_id)
            self.give_up_seat_for(s, patron_id)
            if assisted_by is not None:
                self._assisted(s, assisted_by, "seat_given_up", patron_id, where, institution)

    def give_up_seat_for(self, s: Session, patron_id: int) -> None:
        seats = self.seats(s)
        place = seats.place(patron_id)
        if place is None or place.status is not Standing.SEATED:
            raise RegistryError("not_seated")
        seats.release(patron_id)

    def leave_waiting_list(self, token: str, *, assisted_by: StaffView | None = None,
                           where: str = "") -> None:
        with self.store.write() as s:
            patron_id = self._patron_id_for(s, token)
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
        record(s, self.clock(), staff.actor, action, where=where, subject=pseudonym(patron_id),
               institution=institution, assisted_by=staff.assisted_label, **detail)

    def leave_waiting_list_for(self, s: Session, patron_id: int) -> None:
        seats = self.seats(s)
        place = seats.place(patron_id)
        if place is None or place.status is not Standing.WAITING:
            raise RegistryError("not_waiting")
        seats.release(patron_id)

    def set_cap(self, cap: int, actor: str, where: str = "", reason: str = "") -> int:
        """Change the programme cap; a raise serves the waiting list at once, in order."""
        if cap < 0:
            raise RegistryError("invalid", {"cap": "cap_invalid"})
        with self.store.write() as s:
            seats = self.seats(s)
            old = seats.set_cap(cap)
            promoted = seats.promote()
            record(s, self.clock(), actor, "cap_changed", where=where,
                   **{"from": old, "to": cap, "promoted": promoted, "reason": reason})
            return promoted

    # --- The patron's own data ------------------------------------------------------------

    def my_data(self, token: str, lang: str) -> PatronData:
        """All that is held about the logged-in patron (their right of access)."""
        def read(s: Session, p: Patron) -> PatronData:
            return PatronData(
                card_number=p.card_number, first_name=p.first_name, last_name=p.last_name,
                email=p.email, birth_date=p.birth_date, postcode=p.postcode, phone=p.phone,
                library_code=p.library.code, language=p.language, created_at=p.created_at,
                status=self.status_of(s, p.id, lang))
        return self._reading(token, read)


    def erase_account(self, token: str, password: str) -> None:
        """The patron erases their own account, after typing their password again."""
        with self.store.write() as s:
            patron = self._patron_for(s, token)
            if not verify(patron.password_hash, domain.normalise_password(password)):
                raise RegistryError("invalid", {"password": "password_wrong"})
            self.erase_for(s, patron.id, actor=pseudonym(patron.id))

    def erase_by_card(self, card_number: str, actor: str) -> None:
        """Erasure done for a patron (a librarian, a data-protection request)."""
        card = domain.normalise_card_input(card_number)
        with self.store.write() as s:
            patron_id = s.scalar(select(Patron.id).where(Patron.card_number == card))
            if patron_id is None:
                raise RegistryError("not_found")
            self.erase_for(s, patron_id, actor=actor)

    def erase_inactive(self) -> int:
        """Retention (run daily by `kiosk registry purge`): erase the accounts past their time,
        each in its own transaction so the seat lock is held briefly; answers how many."""
        with self.store.read() as s:
            ends_on = s.scalar(select(Programme.ends_on).where(THE_PROGRAMME))
            cutoff = domain.retention_cutoff(self.clock(), ends_on)
            due = s.scalars(select(Patron.id).where(
                func.coalesce(Patron.last_active_at, Patron.created_at) < cutoff)).all()
        for patron_id in due:
            with self.store.write() as s:
                if s.get(Patron, patron_id) is not None:
                    self.erase_for(s, patron_id, actor="retention")
        return len(due)

    def maintenance(self) -> Maintenance | None:
        return self.upkeep.maintenance()

    def set_maintenance(self, messages: dict[str, str], until: datetime, actor: str,
                        where: str = "") -> None:
        self.upkeep.set_maintenance(messages, until, actor, where)

    def clear_maintenance(self, actor: str, where: str = "") -> None:
        self.upkeep.clear_maintenance(actor, where)

    def set_end_date(self, ends_on: date | None, actor: str) -> None:
        self.upkeep.set_end_date(ends_on, actor)

    def erase_for(self, s: Session, patron_id: int, actor: str, where: str = "",
                  **detail: object) -> None:
        """Free the seat (the next in line moves up in this same transaction), then remove
        the patron row; sessions and courses go with it (ON DELETE CASCADE). The audit
        entry keeps its meaning with a pseudonym, never a name, card number or e-mail."""
        institution = seat_events.institution_of(s, patron_id)
        had = self.seats(s).release(patron_id)
        s.execute(delete(Patron).where(Patron.id == patron_id))
        record(s, self.clock(), actor, "patron_erased", where=where,
               subject=pseudonym(patron_id), institution=institution, had=had.value,
               **detail)

    # --- Terminals ----------------------------------------------------------------------

    def add_terminal(self, library_code: str, name: str, actor: str) -> tuple[str, TerminalView]:
        return self.terminal_tokens.add(library_code, name, actor)

    def revoke_terminal(self, terminal_id: int, actor: str, where: str = "") -> None:
        self.terminal_tokens.revoke(terminal_id, actor, where)

    def terminals(self) -> list[TerminalView]:
        return self.terminal_tokens.terminals()

    def authenticate_terminal(self, token: str, version: str = "") -> TerminalView:
        return self.terminal_tokens.authenticate(token, version)

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
        with self.store.write() as s:
            patron = self._patron_for(s, token)
            try:
                self.seats(s).accept_offer(patron.id, actor=pseudonym(patron.id))
            except RegistryError as refusal:
                if refusal.code == "offer_expired":
                    s.flush()
                    s.connection().commit()  # the expiry stands; then the refusal
                raise
            return self.status_of(s, patron.id, patron.language)

    def decline_offer(self, token: str) -> None:
        """"No thanks": the place and courses go, the seat goes to the next in line."""
        with self.store.write() as s:
            patron = self._patron_for(s, token)
            seats = self.seats(s)
            seats.end_offer(patron.id, SeatEventKind.DECLINED, actor=pseudonym(patron.id))
            seats.promote()

    def expire_offers(self) -> OfferSweep:
        """Run now and then (`kiosk registry expire-offers`, and by `purge`): end the offers
        past their time and serve their seats; remind, once, those whose offer ends within a
        day (an audit entry "offer_expiring" marks the reminder as sent)."""
        with self.store.write() as s:
            seats = self.seats(s)
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
                seat_events.audit(s, now, "registry", "offer_expiring",
                                  subject=pseudonym(patron_id), until=until.isoformat())
                reminded += 1
            return OfferSweep(expired=len(expired), promoted=promoted, reminded=reminded)

    def status_of(self, s: Session, patron_id: int, lang: str) -> PatronStatus:
        """What the patron holds and chose, as the pages show it (a read: no lock)."""
        place = ledger.place_of(s, patron_id)
        lapsed = (place is not None and place.status is Standing.OFFERED
                  and place.offer_expires_at is not None
                  and place.offer_expires_at <= self.clock())
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
                Enrolment(r.course.slug, self.reference.text(r.course, lang).title, r.created_at)
                for r in rows
            ],
            seated_at=place.seated_at if place else None,
            offer_expires_at=place.offer_expires_at if place else None,
            pending_until=self.verification.pending_until(s, patron_id),
        )

    def _session(self, s: Runner, token: str, *, one_time_ok: bool = False) -> Row:
        """A patron's live session; an idle, old or revoked one is refused (read only).

        While the patron holds a printed one-time password, only `one_time_ok` uses (who am
        I, choosing their own password) get through: whoever else read the printout must not
        enrol, read or erase in their name. Refused with `password_change_required`."""
        sess = s.execute(_SESSION, {"token_hash": domain.token_hash(token)}).first()
        self._check_session(sess, one_time_ok=one_time_ok)
        return sess

    def _check_session(self, sess: Row | None, *, one_time_ok: bool = False) -> None:
        now = self.clock()
        if sess is None or sess.revoked_at is not None:
            raise RegistryError("session_invalid")
        if now - sess.last_seen_at > self.session_idle or now - sess.created_at > self.session_max:
            raise RegistryError("session_invalid")
        if sess.must_change_password and not one_time_ok:
            raise RegistryError("password_change_required")

    def _touch_due(self, sess: Row) -> bool:
        return self.clock() - sess.last_seen_at > TOUCH_EVERY

    def _touch(self, s: Runner, session_id: int) -> None:
        s.execute(_TOUCH, {"session_id": session_id, "seen_at": self.clock()})

    def _patron_id_for(self, s: Runner, token: str) -> int:
        """Inside a write transaction: the patron behind a token, their session kept alive."""
        sess = self._session(s, token)
        if self._touch_due(sess):
            self._touch(s, sess.id)
        return sess.patron_id

    def _patron_for(self, s: Session, token: str) -> Patron:
        patron = s.get(Patron, self._patron_id_for(s, token))
        assert patron is not None
        return patron

    def _reading(self, token: str, read: Callable[[Session, Patron], T], *,
                 one_time_ok: bool = False) -> T:
        """A read for a logged-in patron; the session is kept alive now and then, not on
        every page, so most pages need no write lock."""
        with self.store.read() as s:
            sess = self._session(s, token, one_time_ok=one_time_ok)
            patron = s.get(Patron, sess.patron_id)
            assert patron is not None
            result = read(s, patron)
            due, sess_id = self._touch_due(sess), sess.id
        if due:
            with self.store.write() as s:
                self._touch(s, sess_id)
        return result

    @staticmethod
    def _find_patron(s: Session, identifier: str) -> Patron | None:
        ident = (identifier or "").strip()
        if "@" in ident:
            return s.scalar(select(Patron).where(Patron.email == ident.lower()))
        card = domain.normalise_card_input(ident)
        if not domain.is_valid_card_number(card):
            return None
        return s.scalar(select(Patron).where(Patron.card_number == card))

    @staticmethod
    def _as_stored(patron: Patron, password: str) -> str:
        """A printed one-time password is checked without case, spaces or dashes."""
        return domain.one_time_form(password) if patron.must_change_password else password

    @staticmethod
    def _new_card_number(s: Session, prefix: str) -> str:
        while True:  # random serials: numbers say nothing about how many patrons there are
            card = domain.make_card_number(prefix, secrets.randbelow(10**8))
            if s.scalar(select(Patron.id).where(Patron.card_number == card)) is None:
                return card

    @staticmethod
    def _patron_view(p: Patron) -> PatronView:
        return PatronView(
            card_number=p.card_number,
            first_name=p.first_name,
            language=p.language,
            library_code=p.library.code,
            must_change_password=p.must_change_password,
            pending_until=domain.pending_until(
                p.pending_since, p.pending_days or domain.DEFAULT_PENDING_DAYS)
            if p.pending_since else None,
        )
