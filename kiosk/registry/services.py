"""Use cases of the registry: each one transaction, the rules from `domain`, rows from `store`.

Callers (the in-process client, the JSON API) only translate; they hold no rules.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import secrets
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, case, delete, func, insert, select, update
from sqlalchemy.orm import Session

from . import domain
from .domain import (
    Catalogue,
    CategoryView,
    ClaimDecision,
    ClaimResult,
    CourseView,
    Enrolment,
    InstitutionView,
    LibraryView,
    LoginPolicy,
    Maintenance,
    NewPatron,
    PatronData,
    PatronStatus,
    PatronView,
    ProgrammeStatus,
    RegistryError,
    Standing,
    TerminalView,
)
from .staff import StaffAccounts, record
from .store import (
    Category,
    Course,
    CourseText,
    EnrolmentRow,
    Institution,
    Library,
    Patron,
    PatronSession,
    Place,
    Programme,
    Store,
    Terminal,
)


def _return_big_blocks_to_the_system() -> None:
    """argon2 takes 19 MiB per hash. glibc's dynamic mmap threshold would, after the first
    hash, serve such blocks from the heap and keep them: each server thread would then hold
    19 MiB for good. A fixed threshold keeps them mmapped, so a freed hash is given back."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


_return_big_blocks_to_the_system()
# OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane.
PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY_HASH = PASSWORDS.hash("not-a-real-password")
_TOUCH_EVERY = timedelta(seconds=15)
T = TypeVar("T")
Runner = Session | Connection  # what Core statements run on


def utcnow() -> datetime:
    """Naive UTC: what both SQLite and PostgreSQL `timestamp` columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def pseudonym(patron_id: int) -> str:
    """How the audit log names a patron: meaningful while the row exists, nothing after."""
    return f"patron#{patron_id}"


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
        guard: bool = True,
        race_pause: float = 0.0,
        terminal_cache: timedelta = timedelta(seconds=10),
    ):
        self.store = store
        self.clock = clock
        self.min_age = min_age
        self.login_policy = login_policy or LoginPolicy()
        self.session_idle = session_idle
        self.session_max = session_max
        # Test-only switches: `guard=False` decides on an unlocked read (the classic race),
        # `race_pause` widens the window between decision and write so a race shows reliably.
        self.guard = guard
        self.race_pause = race_pause
        # Terminal tokens are checked on every API call: a valid one is remembered for a few
        # seconds (a revocation elsewhere takes effect within `terminal_cache`).
        self.terminal_cache = terminal_cache
        self._terminals: dict[str, tuple[TerminalView, str, float]] = {}
        self.staff = StaffAccounts(store, lambda: self.clock(), PASSWORDS, self._verify,
                                   _DUMMY_HASH, login_policy=self.login_policy)

    # --- Reference data ------------------------------------------------------------------

    def institutions(self) -> list[InstitutionView]:
        with self.store.read() as s:
            rows = s.scalars(select(Institution).order_by(Institution.code)).all()
            return [
                InstitutionView(
                    code=i.code,
                    names=dict(i.names),
                    libraries=[LibraryView(code=lib.code, name=lib.name) for lib in i.libraries],
                )
                for i in rows
            ]

    def catalogue(self, lang: str) -> Catalogue:
        today = self.clock().date()
        with self.store.read() as s:
            cats = s.scalars(select(Category).order_by(Category.position)).all()
            courses = s.scalars(
                select(Course).where(Course.retired.is_(False)).order_by(Course.position)
            ).all()
            return Catalogue(
                categories=[CategoryView(c.code, c.names.get(lang, c.code)) for c in cats],
                courses=[self._course_view(c, lang, today) for c in courses],
            )

    def course(self, slug: str, lang: str) -> CourseView:
        with self.store.read() as s:
            course = self._active_course(s, slug)
            return self._course_view(course, lang, self.clock().date())

    def programme_status(self) -> ProgrammeStatus:
        with self.store.read() as s:
            row = s.execute(
                select(Programme.cap, Programme.seats_taken, Programme.waiting)
                .where(Programme.id == 1)
            ).first()
            if row is None:
                raise RegistryError("not_set_up")
            return ProgrammeStatus(cap=row[0], seats_taken=row[1], waiting=row[2] or 0)

    def academy_url(self) -> str:
        with self.store.read() as s:
            prog = s.get(Programme, 1)
            return prog.academy_url if prog else ""

    # --- Accounts and sessions -----------------------------------------------------------

    def register(self, data: NewPatron) -> str:
        """Create a library account; answers the new card number."""
        with self.store.write() as s:
            rows = s.execute(select(Library.code, Library.id))
            libraries = {code: lib_id for code, lib_id in rows}
            clean = domain.validate_new_patron(
                data, today=self.clock().date(), min_age=self.min_age,
                library_codes=set(libraries),
            )
            if s.scalar(select(Patron.id).where(Patron.email == clean.email)) is not None:
                raise RegistryError("invalid", {"email": "email_taken"})
            library = s.get(Library, libraries[clean.library_code])
            assert library is not None
            card = self._new_card_number(s, library.institution.card_prefix)
            s.add(
                Patron(
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
                    password_hash=PASSWORDS.hash(domain.normalise_password(data.password)),
                    created_at=self.clock(),
                    last_active_at=self.clock(),
                    failed_logins=0,
                )
            )
            return card

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
                self._verify(_DUMMY_HASH, password)  # same cost whether or not the account exists
                raise RegistryError("login_failed")
            if self.login_policy.is_locked(patron.locked_until, now):
                raise RegistryError("account_locked", until=patron.locked_until)
            if not self._verify(patron.password_hash, password):
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
            if PASSWORDS.check_needs_rehash(patron.password_hash):
                patron.password_hash = PASSWORDS.hash(password)
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
        return self._reading(token, lambda s, patron: self._patron_view(patron))

    # --- Seats and enrolments ------------------------------------------------------------

    def claim(self, token: str, course_slug: str) -> ClaimResult:
        """Enrol in a course: with a seat (held or granted now) or on the waiting list."""
        if not self.guard:
            return self._claim_unguarded(token, course_slug)
        with self.store.write() as session:
            # Core statements on the connection: this is the hot path, and the ORM's
            # bookkeeping would run while the programme row is locked.
            s = session.connection()
            return self._claim(s, self._patron_id_for(s, token), course_slug)

    def _claim(self, s: Runner, patron_id: int, course_slug: str) -> ClaimResult:
        """The claim for a known patron, inside the caller's write transaction (the patron's
        own claim, or one made for them at the desk)."""
        course_id = self._active_course_id(s, course_slug)
        # Before the lock: a course choice is the patron's own row and decides nothing.
        self._add_enrolment(s, patron_id, course_id, self.clock())
        locked = self.store.lock_programme_for_claim(s, patron_id)
        now = self.clock()  # the request's time is when its turn came, after the lock
        standing = Standing(locked.status) if locked.status else Standing.NONE
        decision = domain.decide_claim(standing, locked.seats_taken, locked.cap)
        self._pause()
        if decision is ClaimDecision.GRANT:
            if self._take_seats(s, 1):
                s.execute(insert(Place).values(patron_id=patron_id, status="seated",
                                               requested_at=now, seated_at=now))
                return ClaimResult(standing=Standing.SEATED, newly_granted=True)
            decision = ClaimDecision.WAIT  # only reachable if the lock was not held
        if decision is ClaimDecision.WAIT:
            self._join_queue(s, locked.next_queue_no, patron_id, now)
            # Joined at the back of the line: the position is the length of the line.
            return ClaimResult(standing=Standing.WAITING, position=locked.waiting + 1)
        return ClaimResult(standing=standing,
                           position=self._position(s, locked.status, locked.queue_no))

    def status(self, token: str, lang: str = "en") -> PatronStatus:
        return self._reading(token, lambda s, patron: self._status(s, patron.id, lang))

    def withdraw(self, token: str, course_slug: str) -> PatronStatus:
        """Leave one course; leaving the last one gives the seat (or the waiting place) up."""
        with self.store.write() as s:
            patron = self._patron_for(s, token)
            return self._withdraw(s, patron, course_slug)

    def _withdraw(self, s: Session, patron: Patron, course_slug: str) -> PatronStatus:
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
            self._drop_place(s, patron.id)
        return self._status(s, patron.id, patron.language)

    def give_up_seat(self, token: str) -> None:
        with self.store.write() as s:
            self._give_up_seat(s, self._patron_id_for(s, token))

    def _give_up_seat(self, s: Session, patron_id: int) -> None:
        place = s.get(Place, patron_id)
        if place is None or place.status != "seated":
            raise RegistryError("not_seated")
        self._drop_place(s, patron_id)

    def leave_waiting_list(self, token: str) -> None:
        with self.store.write() as s:
            self._leave_waiting_list(s, self._patron_id_for(s, token))

    def _leave_waiting_list(self, s: Session, patron_id: int) -> None:
        place = s.get(Place, patron_id)
        if place is None or place.status != "waiting":
            raise RegistryError("not_waiting")
        self._drop_place(s, patron_id)

    def set_cap(self, cap: int, actor: str, where: str = "", reason: str = "") -> int:
        """Change the programme cap; a raise serves the waiting list at once, in order."""
        if cap < 0:
            raise RegistryError("invalid", {"cap": "cap_invalid"})
        with self.store.write() as s:
            prog = self.store.lock_programme(s)
            old = prog.cap
            s.execute(
                update(Programme)
                .where(Programme.id == 1)
                .values(cap=cap, over_cap=domain.over_cap(cap, prog.seats_taken))
            )
            promoted = self._promote(s)
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
                status=self._status(s, p.id, lang))
        return self._reading(token, read)


    def erase_account(self, token: str, password: str) -> None:
        """The patron erases their own account, after typing their password again."""
        with self.store.write() as s:
            patron = self._patron_for(s, token)
            if not self._verify(patron.password_hash, domain.normalise_password(password)):
                raise RegistryError("invalid", {"password": "password_wrong"})
            self._erase(s, patron.id, actor=pseudonym(patron.id))

    def erase_by_card(self, card_number: str, actor: str) -> None:
        """Erasure done for a patron (a librarian, a data-protection request)."""
        card = domain.normalise_card_input(card_number)
        with self.store.write() as s:
            patron_id = s.scalar(select(Patron.id).where(Patron.card_number == card))
            if patron_id is None:
                raise RegistryError("not_found")
            self._erase(s, patron_id, actor=actor)

    def erase_inactive(self) -> int:
        """Retention (run daily by `kiosk registry purge`): erase the accounts past their time,
        each in its own transaction so the seat lock is held briefly; answers how many."""
        with self.store.read() as s:
            ends_on = s.scalar(select(Programme.ends_on).where(Programme.id == 1))
            cutoff = domain.retention_cutoff(self.clock(), ends_on)
            due = s.scalars(select(Patron.id).where(
                func.coalesce(Patron.last_active_at, Patron.created_at) < cutoff)).all()
        for patron_id in due:
            with self.store.write() as s:
                if s.get(Patron, patron_id) is not None:
                    self._erase(s, patron_id, actor="retention")
        return len(due)

    def maintenance(self) -> Maintenance | None:
        """The message kiosks show instead of the journey, while it lasts."""
        with self.store.read() as s:
            row = s.execute(select(Programme.maintenance, Programme.maintenance_until)
                            .where(Programme.id == 1)).first()
        if row is None or not row[0] or row[1] is None or row[1] <= self.clock():
            return None
        return Maintenance(messages=dict(row[0]), until=row[1])

    def set_maintenance(self, messages: dict[str, str], until: datetime, actor: str,
                        where: str = "") -> None:
        clean = domain.validate_maintenance(messages, until, self.clock())
        with self.store.write() as s:
            s.execute(update(Programme).where(Programme.id == 1)
                      .values(maintenance=clean, maintenance_until=until))
            record(s, self.clock(), actor, "maintenance_set", where=where,
                   until=until.isoformat())

    def clear_maintenance(self, actor: str, where: str = "") -> None:
        with self.store.write() as s:
            s.execute(update(Programme).where(Programme.id == 1)
                      .values(maintenance=None, maintenance_until=None))
            record(s, self.clock(), actor, "maintenance_cleared", where=where)

    def set_end_date(self, ends_on: date | None, actor: str) -> None:
        with self.store.write() as s:
            s.execute(update(Programme).where(Programme.id == 1).values(ends_on=ends_on))
            record(s, self.clock(), actor, "programme_end_set",
                   ends_on=ends_on.isoformat() if ends_on else None)

    def _erase(self, s: Session, patron_id: int, actor: str) -> None:
        """Free the seat (the next in line moves up in this same transaction), then remove
        the patron row; sessions, place and courses go with it (ON DELETE CASCADE). The audit
        entry keeps its meaning with a pseudonym, never a name, card number or e-mail."""
        place = s.get(Place, patron_id)
        had = place.status if place else "none"
        institution = s.scalar(select(Institution.code).join(Library)
                               .join(Patron, Patron.library_id == Library.id)
                               .where(Patron.id == patron_id)) or ""
        self._drop_place(s, patron_id)
        s.execute(delete(Patron).where(Patron.id == patron_id))
        record(s, self.clock(), actor, "patron_erased", subject=pseudonym(patron_id),
               institution=institution, had=had)

    # --- Terminals ----------------------------------------------------------------------

    def add_terminal(self, library_code: str, name: str, actor: str) -> tuple[str, TerminalView]:
        """Issue a terminal's bearer token: shown once, stored only as a hash."""
        name = domain.clean_name(name)
        if not name or len(name) > 80:
            raise RegistryError("invalid", {"name": "required" if not name else "too_long"})
        with self.store.write() as s:
            library = s.scalar(select(Library).where(Library.code == library_code))
            if library is None:
                raise RegistryError("invalid", {"library_code": "library_unknown"})
            token = "kt_" + secrets.token_urlsafe(32)
            row = Terminal(name=name, library_id=library.id, token_hash=domain.token_hash(token),
                           created_at=self.clock(), version="")
            s.add(row)
            s.flush()
            record(s, self.clock(), actor, "terminal_added", terminal=row.id,
                   library=library_code)
            return token, self._terminal_view(row)

    def revoke_terminal(self, terminal_id: int, actor: str, where: str = "") -> None:
        with self.store.write() as s:
            row = s.get(Terminal, terminal_id)
            if row is None:
                raise RegistryError("not_found")
            self._terminals.clear()
            if row.revoked_at is None:
                row.revoked_at = self.clock()
                record(s, self.clock(), actor, "terminal_revoked", where=where,
                       terminal=row.id)

    def terminals(self) -> list[TerminalView]:
        with self.store.read() as s:
            rows = s.scalars(select(Terminal).order_by(Terminal.id)).all()
            return [self._terminal_view(t) for t in rows]

    def authenticate_terminal(self, token: str, version: str = "") -> TerminalView:
        """The terminal behind a bearer token; records when it was last seen, and its version."""
        digest = domain.token_hash(token)
        cached = self._terminals.get(digest)
        if cached and cached[1] == version[:40] and time.monotonic() < cached[2]:
            return cached[0]
        now = self.clock()
        with self.store.read() as s:
            row = s.scalar(select(Terminal).where(Terminal.token_hash == digest))
            if row is None:
                raise RegistryError("terminal_unauthorized")
            if row.revoked_at is not None:
                raise RegistryError("terminal_revoked")
            view = self._terminal_view(row)
            stale = row.last_seen_at is None or now - row.last_seen_at > _TOUCH_EVERY * 4
            changed = version[:40] != row.version
        if stale or changed:  # a write only now and then, not on every request
            with self.store.write() as s:
                s.execute(update(Terminal).where(Terminal.id == view.id)
                          .values(last_seen_at=now, version=version[:40]))
        expires = time.monotonic() + self.terminal_cache.total_seconds()
        self._terminals[digest] = (view, version[:40], expires)
        return view

    @staticmethod
    def _terminal_view(t: Terminal) -> TerminalView:
        return TerminalView(id=t.id, name=t.name, library_code=t.library.code,
                            created_at=t.created_at, last_seen_at=t.last_seen_at,
                            version=t.version, revoked=t.revoked_at is not None)

    # --- Inside a transaction ------------------------------------------------------------

    def _pause(self) -> None:
        if self.race_pause:
            time.sleep(self.race_pause)

    def _take_seats(self, s: Runner, n: int, leaving_line: int = 0) -> bool:
        """Count the seats where they are stored, conditionally: the guard against overselling."""
        result = s.execute(
            update(Programme)
            .where(Programme.id == 1, Programme.seats_taken + n <= Programme.cap)
            .values(seats_taken=Programme.seats_taken + n,
                    waiting=Programme.waiting - leaving_line)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    def _free_seat(self, s: Session) -> None:
        s.execute(
            update(Programme)
            .where(Programme.id == 1)
            .values(
                seats_taken=Programme.seats_taken - 1,
                over_cap=case((Programme.over_cap > 0, Programme.over_cap - 1), else_=0),
            )
            .execution_options(synchronize_session=False)
        )

    def _join_queue(self, s: Runner, queue_no: int, patron_id: int, now: datetime) -> None:
        """Caller holds the lock and read `queue_no` (the next free number) after taking it."""
        s.execute(
            update(Programme)
            .where(Programme.id == 1)
            .values(next_queue_no=Programme.next_queue_no + 1, waiting=Programme.waiting + 1)
        )
        s.execute(insert(Place).values(patron_id=patron_id, status="waiting", queue_no=queue_no,
                                       requested_at=now))

    def _drop_place(self, s: Session, patron_id: int) -> None:
        """Remove a patron's seat or waiting place and their courses; a freed seat is served."""
        self.store.lock_programme(s)
        place = s.get(Place, patron_id)
        s.execute(delete(EnrolmentRow).where(EnrolmentRow.patron_id == patron_id))
        if place is None:
            return
        seated = place.status == "seated"
        s.delete(place)
        s.flush()
        if seated:
            self._free_seat(s)
            self._promote(s)
        else:
            s.execute(update(Programme).where(Programme.id == 1)
                      .values(waiting=Programme.waiting - 1))

    def _promote(self, s: Session) -> int:
        """Serve the waiting list in order while seats are free. Caller holds the lock."""
        prog = s.execute(
            select(Programme).where(Programme.id == 1).execution_options(populate_existing=True)
        ).scalar_one()
        n = domain.seats_to_promote(prog.cap, prog.seats_taken, prog.waiting)
        if n == 0:
            return 0
        first = self._next_in_line(s, n)
        if not first:
            return 0
        if not self._take_seats(s, len(first), leaving_line=len(first)):
            raise RegistryError("conflict")
        now = self.clock()
        for place in first:
            place.status, place.queue_no, place.seated_at = "seated", None, now
        s.flush()
        return len(first)

    def _next_in_line(self, s: Session, n: int) -> list[Place]:
        """The places that the next `n` free seats go to, in order: what a promotion takes,
        and what a coordinator's preview of a cap raise shows."""
        return list(s.scalars(
            select(Place).where(Place.status == "waiting").order_by(Place.queue_no).limit(n)
        ).all())

    def _add_enrolment(self, s: Runner, patron_id: int, course_id: int, now: datetime) -> None:
        """Choose a course once; choosing it again changes nothing."""
        s.execute(self.store.insert_ignoring_duplicates(EnrolmentRow).values(
            patron_id=patron_id, course_id=course_id, created_at=now))

    def _status(self, s: Session, patron_id: int, lang: str) -> PatronStatus:
        place = s.get(Place, patron_id)
        rows = s.scalars(
            select(EnrolmentRow)
            .where(EnrolmentRow.patron_id == patron_id)
            .order_by(EnrolmentRow.created_at, EnrolmentRow.id)
        ).all()
        return PatronStatus(
            standing=self._standing(place),
            position=self._position(s, place.status, place.queue_no) if place else None,
            enrolments=[
                Enrolment(r.course.slug, self._text(r.course, lang).title, r.created_at)
                for r in rows
            ],
            seated_at=place.seated_at if place else None,
        )

    @staticmethod
    def _standing(place: Place | None) -> Standing:
        return Standing(place.status) if place else Standing.NONE

    @staticmethod
    def _position(s: Runner, status: str | None, queue_no: int | None) -> int | None:
        if status != "waiting" or queue_no is None:
            return None
        ahead = s.scalar(
            select(func.count()).where(Place.status == "waiting", Place.queue_no < queue_no)
        )
        return (ahead or 0) + 1

    def _session(self, s: Runner, token: str) -> Row:
        """A patron's live session; an idle, old or revoked one is refused (read only)."""
        now = self.clock()
        sess = s.execute(
            select(PatronSession.id, PatronSession.patron_id, PatronSession.created_at,
                   PatronSession.last_seen_at, PatronSession.revoked_at)
            .where(PatronSession.token_hash == domain.token_hash(token))
        ).first()
        if sess is None or sess.revoked_at is not None:
            raise RegistryError("session_invalid")
        if now - sess.last_seen_at > self.session_idle or now - sess.created_at > self.session_max:
            raise RegistryError("session_invalid")
        return sess

    def _touch_due(self, sess: Row) -> bool:
        return self.clock() - sess.last_seen_at > _TOUCH_EVERY

    def _touch(self, s: Runner, session_id: int) -> None:
        s.execute(update(PatronSession).where(PatronSession.id == session_id)
                  .values(last_seen_at=self.clock()))

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

    def _reading(self, token: str, read: Callable[[Session, Patron], T]) -> T:
        """A read for a logged-in patron; the session is kept alive now and then, not on
        every page, so most pages need no write lock."""
        with self.store.read() as s:
            sess = self._session(s, token)
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
    def _verify(password_hash: str, password: str) -> bool:
        try:
            return PASSWORDS.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

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
        )

    @staticmethod
    def _active_course_id(s: Runner, slug: str) -> int:
        course_id = s.scalar(select(Course.id).where(Course.slug == slug,
                                                     Course.retired.is_(False)))
        if course_id is None:
            raise RegistryError("course_not_found")
        return course_id

    @staticmethod
    def _active_course(s: Session, slug: str) -> Course:
        course = s.scalar(select(Course).where(Course.slug == slug, Course.retired.is_(False)))
        if course is None:
            raise RegistryError("course_not_found")
        return course

    @staticmethod
    def _text(course: Course, lang: str) -> CourseText:
        texts = {t.lang: t for t in course.texts}
        return texts.get(lang) or texts.get("en") or next(iter(texts.values()))

    def _course_view(self, c: Course, lang: str, today: date) -> CourseView:
        text = self._text(c, lang)
        featured = bool(
            c.featured_from and c.featured_until and c.featured_from <= today <= c.featured_until
        )
        return CourseView(c.slug, c.category_code, text.title, text.summary, c.hours, featured)

    # --- The negative control ------------------------------------------------------------

    def _claim_unguarded(self, token: str, course_slug: str) -> ClaimResult:
        """Check-then-act without the lock: what naive code does. Test-only; it oversells."""
        now = self.clock()
        with self.store.read() as s:
            prog = s.get(Programme, 1)
            assert prog is not None
            taken, cap = prog.seats_taken, prog.cap
        self._pause()
        with self.store.write() as s:
            patron_id = self._patron_id_for(s, token)
            course_id = self._active_course_id(s, course_slug)
            if taken < cap:
                s.execute(insert(Place).values(patron_id=patron_id, status="seated",
                                               requested_at=now, seated_at=now))
                s.execute(update(Programme).values(seats_taken=taken + 1))
                standing = Standing.SEATED
            else:
                queue_no = s.scalar(select(Programme.next_queue_no))
                self._join_queue(s, queue_no or 1, patron_id, now)
                standing = Standing.WAITING
            self._add_enrolment(s, patron_id, course_id, now)
            return ClaimResult(standing=standing, newly_granted=standing is Standing.SEATED)
