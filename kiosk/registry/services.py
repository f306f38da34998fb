"""The registry's use cases behind one object, as its callers (the JSON API, the in-process
client, the CLI, the staff pages) use them: each use case one transaction, the rules from
`domain`, rows from `store`. Callers only translate; they hold no rules.

The use cases are small classes, each built from the context (`context.py`: the store, the
clock, the seat ledger) and the other use cases it calls, passed to its constructor:
reference data (`reference.py`), patron sessions (`patron_sessions.py`), accounts
(`accounts.py`), erasure (`erasure.py`), seats and offers (`seats.py`), terminals
(`terminals.py`), the programme's upkeep (`maintenance.py`), and the staff's desk, waiting
list, identity checks, settings, closed days, catalogue, figures and outbox. This module
builds them and delegates to them; it holds no rules and no SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from . import seat_events
from .academy import Academy
from .accounts import Accounts
from .alerts import Alerts
from .assist import Assistance
from .catalogue_admin import CatalogueAdmin
from .closures import Closures
from .context import RegistryContext, utcnow
from .corrections import Corrections
from .desk import DeskService
from .domain import (
    Catalogue,
    ClaimOutlook,
    ClaimResult,
    CourseView,
    InstitutionView,
    LoginPolicy,
    Maintenance,
    NewPatron,
    PatronData,
    PatronStatus,
    PatronView,
    ProgrammeStatus,
    Registration,
    TerminalView,
)
from .erasure import Erasure
from .ledger import Ledger
from .libraries_admin import LibrariesAdmin
from .maintenance import ProgrammeUpkeep
from .members import MemberSystems
from .notices import Notices
from .passwords import hash_password
from .patron_sessions import PatronSessions
from .policies import Policies
from .practice import Practice
from .promotion import OfferSweep
from .reference import Reference
from .reports import Reports
from .roles import StaffView
from .seats import Seats
from .signup_rules import SignUpRulesBook
from .staff import StaffAccounts, pseudonym
from .store import Course, CourseText, Patron, Runner, Store
from .terminals import TerminalTokens
from .verification import Verification
from .waitlist import Waitlist

# `utcnow` and `pseudonym` are imported from here by many callers.
__all__ = ["RegistryService", "pseudonym", "utcnow"]


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
        hash_password: Callable[[str], str] = hash_password,
    ):
        self.store = store
        self.clock = clock
        login_policy = login_policy or LoginPolicy()
        # Every use case reads the time through `_now`: a clock set on this object later
        # (tests step time) is theirs too.
        self.context = ctx = RegistryContext(store, clock=self._now, events=seat_events.tell,
                                              hash_password=hash_password)
        self.staff = StaffAccounts(store, self._now, login_policy=login_policy)
        self.sign_up_rules = SignUpRulesBook(ctx, min_age=min_age)
        self.reference = Reference(ctx, sign_up=self.sign_up_rules)
        self.patron_sessions = PatronSessions(ctx, idle=session_idle, max_age=session_max)
        self.erasure = Erasure(ctx)
        self.verification = Verification(ctx, erasure=self.erasure)
        self.seating = Seats(ctx, sessions=self.patron_sessions, reference=self.reference,
                             verification=self.verification)
        self.members = MemberSystems(ctx)
        self.accounts = Accounts(ctx, sessions=self.patron_sessions, seats=self.seating,
                                 verification=self.verification, erasure=self.erasure,
                                 members=self.members, sign_up=self.sign_up_rules,
                                 login_policy=login_policy)
        self.terminal_tokens = TerminalTokens(ctx, cache=terminal_cache)
        self.upkeep = ProgrammeUpkeep(ctx)
        self.corrections = Corrections(ctx, sessions=self.patron_sessions,
                                       accounts=self.accounts, verification=self.verification,
                                       sign_up=self.sign_up_rules)
        self.desk = DeskService(ctx, seats=self.seating, accounts=self.accounts,
                                erasure=self.erasure, corrections=self.corrections)
        self.waitlist = Waitlist(ctx, seats=self.seating, reference=self.reference)
        self.courses_admin = CatalogueAdmin(ctx, reference=self.reference)
        self.libraries_admin = LibrariesAdmin(ctx)
        self.assist = Assistance(self.staff)
        self.notices = Notices(ctx)
        self.academy = Academy(ctx)
        self.policies = Policies(ctx)
        self.closures = Closures(ctx)
        self.reports = Reports(ctx, reference=self.reference)
        self.practice = Practice(ctx)
        self.alerts = Alerts(ctx, sessions=self.patron_sessions)

    def _now(self) -> datetime:
        return self.clock()

    # --- Settings, kept where the use cases read them -------------------------------------

    @property
    def min_age(self) -> int:
        """The programme's: for institutions that have no minimum age of their own."""
        return self.sign_up_rules.min_age

    @min_age.setter
    def min_age(self, value: int) -> None:
        self.sign_up_rules.min_age = value

    @property
    def login_policy(self) -> LoginPolicy:
        """Patrons' log-ins (staff log-ins keep the policy they were built with)."""
        return self.accounts.login_policy

    @login_policy.setter
    def login_policy(self, value: LoginPolicy) -> None:
        self.accounts.login_policy = value

    @property
    def session_idle(self) -> timedelta:
        return self.patron_sessions.idle

    @session_idle.setter
    def session_idle(self, value: timedelta) -> None:
        self.patron_sessions.idle = value

    @property
    def session_max(self) -> timedelta:
        return self.patron_sessions.max_age

    @session_max.setter
    def session_max(self, value: timedelta) -> None:
        self.patron_sessions.max_age = value

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
        return self.accounts.register(data, assisted_by=assisted_by,
                                      identity_checked=identity_checked, where=where)

    def register_account(self, data: NewPatron, *, assisted_by: StaffView | None = None,
                         identity_checked: bool = False, where: str = "") -> Registration:
        return self.accounts.register_account(data, assisted_by=assisted_by,
                                              identity_checked=identity_checked, where=where)

    def login(self, identifier: str, password: str, *, library_code: str = "",
              language: str = "") -> tuple[str, PatronView]:
        return self.accounts.login(identifier, password, library_code=library_code,
                                   language=language)

    def logout(self, token: str) -> None:
        self.accounts.logout(token)

    def whoami(self, token: str) -> PatronView:
        return self.accounts.whoami(token)

    def change_password(self, token: str, old: str, new: str) -> None:
        self.accounts.change_password(token, old, new)

    def my_data(self, token: str, lang: str) -> PatronData:
        return self.accounts.my_data(token, lang)

    def erase_account(self, token: str, password: str) -> None:
        self.accounts.erase_account(token, password)

    def change_my_details(self, token: str, email: str, language: str,
                          password: str = "") -> tuple[str, ...]:
        """The patron's own e-mail address (after their password) and language for
        e-mails, under "My data"; answers the fields changed."""
        return self.corrections.change_own(token, email, language, password).changed

    def erase_by_card(self, card_number: str, actor: str) -> None:
        self.accounts.erase_by_card(card_number, actor)

    def erase_inactive(self) -> int:
        return self.accounts.erase_inactive()

    def erase_for(self, s: Session, patron_id: int, actor: str, where: str = "",
                  **detail: object) -> None:
        self.erasure.erase_for(s, patron_id, actor, where, **detail)

    # --- Seats and offers ----------------------------------------------------------------

    def seats(self, s: Runner) -> Ledger:
        return self.context.seats(s)

    def claim(self, token: str, course_slug: str, *, assisted_by: StaffView | None = None,
              where: str = "") -> ClaimResult:
        return self.seating.claim(token, course_slug, assisted_by=assisted_by, where=where)

    def claim_for(self, s: Runner, patron_id: int, course_slug: str) -> ClaimResult:
        return self.seating.claim_for(s, patron_id, course_slug)

    def claim_outlook(self, token: str) -> ClaimOutlook:
        return self.seating.claim_outlook(token)

    def status(self, token: str, lang: str = "en") -> PatronStatus:
        return self.seating.status(token, lang)

    def status_of(self, s: Session, patron_id: int, lang: str) -> PatronStatus:
        return self.seating.status_of(s, patron_id, lang)

    def withdraw(self, token: str, course_slug: str, *, assisted_by: StaffView | None = None,
                 where: str = "") -> PatronStatus:
        return self.seating.withdraw(token, course_slug, assisted_by=assisted_by, where=where)

    def withdraw_for(self, s: Session, patron: Patron, course_slug: str) -> PatronStatus:
        return self.seating.withdraw_for(s, patron, course_slug)

    def give_up_seat(self, token: str, *, assisted_by: StaffView | None = None,
                     where: str = "") -> None:
        self.seating.give_up_seat(token, assisted_by=assisted_by, where=where)

    def give_up_seat_for(self, s: Session, patron_id: int) -> None:
        self.seating.give_up_seat_for(s, patron_id)

    def leave_waiting_list(self, token: str, *, assisted_by: StaffView | None = None,
                           where: str = "") -> None:
        self.seating.leave_waiting_list(token, assisted_by=assisted_by, where=where)

    def leave_waiting_list_for(self, s: Session, patron_id: int) -> None:
        self.seating.leave_waiting_list_for(s, patron_id)

    def set_cap(self, cap: int, actor: str, where: str = "", reason: str = "") -> int:
        return self.seating.set_cap(cap, actor, where, reason)

    def accept_offer(self, token: str) -> PatronStatus:
        return self.seating.accept_offer(token)

    def decline_offer(self, token: str) -> None:
        self.seating.decline_offer(token)

    def expire_offers(self) -> OfferSweep:
        return self.seating.expire_offers()

    # --- Terminals ----------------------------------------------------------------------

    def add_terminal(self, library_code: str, name: str, actor: str) -> tuple[str, TerminalView]:
        return self.terminal_tokens.add(library_code, name, actor)

    def revoke_terminal(self, terminal_id: int, actor: str, where: str = "") -> None:
        self.terminal_tokens.revoke(terminal_id, actor, where)

    def terminals(self) -> list[TerminalView]:
        return self.terminal_tokens.terminals()

    def authenticate_terminal(self, token: str, version: str = "") -> TerminalView:
        return self.terminal_tokens.authenticate(token, version)

    # --- The programme's upkeep -----------------------------------------------------------

    def maintenance(self) -> Maintenance | None:
        return self.upkeep.maintenance()

    def set_maintenance(self, messages: dict[str, str], until: datetime, actor: str,
                        where: str = "") -> None:
        self.upkeep.set_maintenance(messages, until, actor, where)

    def clear_maintenance(self, actor: str, where: str = "") -> None:
        self.upkeep.clear_maintenance(actor, where)

    def set_end_date(self, ends_on: date | None, actor: str) -> None:
        self.upkeep.set_end_date(ends_on, actor)
