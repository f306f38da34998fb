"""Patrons' library accounts: registration, log-in and log-out, who am I, a new password, the
patron's own data, and erasure (by the patron, for them, and by retention).

Each use case is one transaction, except a log-in: its attempt is counted, and committed,
before the password is checked (`staff.count_attempt`). The session checks are
`PatronSessions`'; erasing frees the seat through `Erasure`, which the desk and the identity
checks use too.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from email_validator import EmailNotValidError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from . import academy, domain
from .context import RegistryContext
from .domain import LoginPolicy, NewPatron, PatronData, PatronView, Registration, RegistryError
from .erasure import Erasure
from .member_system import MemberCheck, MemberSystemConfig, Verdict, split_name
from .members import MemberSystems
from .notices import enqueue
from .passwords import dummy_hash, needs_rehash, verify
from .patron_sessions import PatronSessions
from .roles import StaffView
from .seats import Seats
from .signup_rules import SignUpRulesBook
from .staff import (
    Attempt,
    count_attempt,
    pseudonym,
    record,
    refuse_typed_again,
    uncount_attempt,
)
from .store import THE_PROGRAMME, Institution, Library, Patron, PatronSession, Programme
from .verification import Verification


class Accounts:
    def __init__(self, ctx: RegistryContext, *, sessions: PatronSessions, seats: Seats,
                 verification: Verification, erasure: Erasure, members: MemberSystems,
                 sign_up: SignUpRulesBook, login_policy: LoginPolicy):
        self.ctx = ctx
        self.sessions = sessions
        self.seats = seats
        self.verification = verification
        self.erasure = erasure
        self.members = members
        self.sign_up = sign_up
        self.login_policy = login_policy

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
        now = self.ctx.clock()
        with self.ctx.store.write() as s:
            # Only the libraries the kiosks offer: a retired one takes no new patrons.
            rows = s.execute(select(Library.code, Library.id, Institution.code)
                             .join(Institution, Library.institution_id == Institution.id)
                             .where(Library.retired.is_(False),
                                    Institution.retired.is_(False))).all()
            libraries = {code: lib_id for code, lib_id, _ in rows}
            institution = {code: inst for code, _, inst in rows}.get(data.library_code)
            # Before the other fields, as the desk always did: no account at a library of
            # another institution is made "assisted by" a librarian who does not serve it.
            if assisted_by and institution and not assisted_by.serves(institution):
                raise RegistryError("invalid", {"library_code": "library_not_served"})
            # The chosen library's institution's rules, never the form's idea of them.
            clean = domain.validate_new_patron(
                data, today=self.ctx.clock().date(),
                rules=self.sign_up.for_institution(s, institution),
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
                password_hash=self.ctx.hash_password(
                    domain.normalise_password(data.password)),
                created_at=self.ctx.clock(),
                # Not yet: made at the desk, the patron has never logged in; made at the
                # kiosk, the log-in that follows sets it. (Retention counts from creation.)
                last_active_at=None,
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

    def login(self, identifier: str, password: str, *, library_code: str = "",
              language: str = "") -> tuple[str, PatronView]:
        """Card number or e-mail plus password; answers a session token and the patron.

        Both are taken in the form registration stored them in (NFC, the e-mail tidied), so
        'é' typed as e + accent on another keyboard is the same password.

        The attempt is counted before the password is checked (`count_attempt`): however many
        arrive at once, at most the policy's number of passwords is checked before the
        account locks; the check (argon2) runs outside any transaction.

        A number that is no account of ours, at a kiosk (`library_code`) whose institution
        has a member system, is a library card: its PIN is checked there (`_member_login`);
        `language` is then the new link's language for notices."""
        identifier = domain.normalise_login_identifier(identifier)
        password = domain.normalise_password(password)
        now = self.ctx.clock()
        attempt = member_system = None
        with self.ctx.store.write() as s:
            patron = self._find_patron(s, identifier)
            if patron is not None:
                patron_id, stored = patron.id, patron.password_hash
                typed = self._as_stored(patron, password)
                attempt = count_attempt(s, Patron, patron_id, self.login_policy, now)
            elif "@" not in identifier:
                member_system = self.members.for_library(s, library_code)
        if attempt is not None:
            if not verify(stored, typed):
                raise self._wrong(attempt)
            with self.ctx.store.write() as s:
                found = s.get(Patron, patron_id, populate_existing=True)
                if found is None:  # erased meanwhile
                    raise RegistryError("login_failed")
                if found.password_hash != stored:  # changed meanwhile: the new one decides
                    typed = self._as_stored(found, password)
                    if not verify(found.password_hash, typed):
                        raise self._wrong(attempt)
                if needs_rehash(found.password_hash):
                    found.password_hash = self.ctx.hash_password(typed)
                return self._open_session(s, found, now), self._patron_view(found)
        if member_system is None:
            verify(dummy_hash(), password)  # same cost whether or not the account exists
            raise RegistryError("login_failed")
        # The member system may take its time: asked out of any transaction.
        return self._member_login(identifier, password, library_code, language, *member_system)

    def _member_login(self, identifier: str, pin: str, library_code: str, language: str,
                      institution_id: int, config: MemberSystemConfig) -> tuple[str, PatronView]:
        """A library card and its PIN, checked by the institution's member system, then linked
        to its one account here (made at the first sign-in, its name and e-mail brought up to
        date at each). Its own lock after wrong PINs applies, counted as a password's is
        (before the member system is asked); the member system being down or confused
        counts against no one (the attempt is taken back)."""
        barcode = domain.normalise_barcode(identifier)
        if not domain.is_barcode(barcode):
            raise RegistryError("login_failed")
        is_card = (Patron.member_institution_id == institution_id,
                   Patron.member_barcode == barcode)
        now = self.ctx.clock()
        attempt = None
        with self.ctx.store.write() as s:
            institution_code = s.scalar(select(Institution.code)
                                        .where(Institution.id == institution_id)) or ""
            patron_id = s.scalar(select(Patron.id).where(*is_card))
            if patron_id is not None:
                attempt = count_attempt(s, Patron, patron_id, self.login_policy, now)
        try:
            check = self.members.check(institution_code, config, barcode, pin)
        except Exception:  # unavailable, or a fault of ours: no verdict on the PIN
            self._take_back(patron_id, attempt)
            raise
        if check.verdict in (Verdict.UNKNOWN, Verdict.NEEDS_ATTENTION):
            self._take_back(patron_id, attempt)
            raise RegistryError("login_failed" if check.verdict is Verdict.UNKNOWN
                                else "card_needs_attention")
        if check.verdict is Verdict.WRONG_PIN:
            raise self._wrong(attempt) if attempt else RegistryError("login_failed")
        now = self.ctx.clock()
        with self.ctx.store.write() as s:
            patron = s.scalar(select(Patron).where(*is_card)
                              .execution_options(populate_existing=True))
            if patron is None:
                institution = s.get(Institution, institution_id)
                assert institution is not None
                patron = self._link_member(s, institution, barcode, check, library_code,
                                           language, now)
            else:
                self._refresh_member(s, patron, check, now)
            return self._open_session(s, patron, now), self._patron_view(patron)

    def _take_back(self, patron_id: int | None, attempt: Attempt | None) -> None:
        if patron_id is not None and attempt is not None:
            with self.ctx.store.write() as s:
                uncount_attempt(s, Patron, patron_id, attempt, self.login_policy)

    def _wrong(self, attempt: Attempt) -> RegistryError:
        """The answer to a wrong password or PIN: its attempt was counted already."""
        if attempt.locked_until is not None:
            return RegistryError("account_locked", until=attempt.locked_until)
        return RegistryError("login_failed",
                             attempts_left=self.login_policy.max_failures - attempt.failures)

    def _link_member(self, s: Session, institution: Institution, barcode: str,
                     check: MemberCheck, library_code: str, language: str,
                     now: datetime) -> Patron:
        """The member's account, made at their first sign-in: only what the programme needs
        (name, e-mail if their library has one, language, home library). No password and no
        date of birth: the member system checks the one, their library the other."""
        library = s.scalar(select(Library).where(Library.code == library_code,
                                                 Library.institution_id == institution.id))
        if library is None:  # a kiosk of another institution? Its first library, by name
            library = institution.libraries[0]
        first, last = split_name(check.name)
        email = self._free_email(s, check.email, None)
        row = Patron(
            card_number=self._new_card_number(s, institution.card_prefix), email=email,
            first_name=first[:60], last_name=last[:60],
            search_name=domain.search_name(first, last), birth_date=None, postcode="",
            phone="", library_id=library.id,
            language=language if language in domain.LOCALES else "nl",
            password_hash="", created_at=now, last_active_at=now, failed_logins=0,
            member_institution_id=institution.id, member_barcode=barcode)
        s.add(row)
        s.flush()
        record(s, now, pseudonym(row.id), "member_linked", subject=pseudonym(row.id),
               institution=institution.code)
        return row

    def _refresh_member(self, s: Session, patron: Patron, check: MemberCheck,
                        now: datetime) -> None:
        """The member system is where a member's name and e-mail are kept up to date (and
        the academy hears of a change)."""
        before = (patron.first_name, patron.last_name, patron.email)
        first, last = split_name(check.name)
        if first or last:
            patron.first_name, patron.last_name = first[:60], last[:60]
            patron.search_name = domain.search_name(first, last)
        patron.email = self._free_email(s, check.email, patron.id)
        if (patron.first_name, patron.last_name, patron.email) != before:
            academy.enqueue(s, patron.id, now)

    @staticmethod
    def _free_email(s: Session, email: str, patron_id: int | None) -> str | None:
        """The member system's e-mail address, tidied, unless it is not one or another
        account of ours has it (that patron's own account keeps it)."""
        try:
            tidy = domain.normalise_email(email) if email else None
        except EmailNotValidError:
            return None
        if tidy is None:
            return None
        holder = s.scalar(select(Patron.id).where(Patron.email == tidy))
        return tidy if holder in (None, patron_id) else None

    @staticmethod
    def _open_session(s: Session, patron: Patron, now: datetime) -> str:
        patron.failed_logins, patron.locked_until = 0, None
        patron.last_active_at = now
        token = secrets.token_urlsafe(32)
        s.add(PatronSession(token_hash=domain.token_hash(token), patron_id=patron.id,
                            created_at=now, last_seen_at=now))
        return token

    def logout(self, token: str) -> None:
        """Log out everywhere: every session of this token's patron ends, on every kiosk."""
        owner = (select(PatronSession.patron_id)
                 .where(PatronSession.token_hash == domain.token_hash(token)).scalar_subquery())
        with self.ctx.store.write() as s:
            s.execute(
                update(PatronSession)
                .where(PatronSession.patron_id == owner)
                .where(PatronSession.revoked_at.is_(None))
                .values(revoked_at=self.ctx.clock())
            )

    def recheck_password(self, s: Session, patron: Patron, typed: str, *, field: str,
                         wrong: str) -> None:
        """Inside a use case's write: the logged-in patron typed their password again (to
        choose a new one, change their e-mail address, erase the account). Counted as a
        log-in attempt is (`count_attempt`, committed at once), so a kiosk left logged in is
        no place to try passwords: the attempt that takes the policy's last one locks the
        account and ends every session of the patron, and the answer is "account_locked".
        A wrong one short of that is refused on `field` with `wrong`; a right one puts the
        count back to 0."""
        now = self.ctx.clock()
        attempt = count_attempt(s, Patron, patron.id, self.login_policy, now)
        if verify(patron.password_hash, self._as_stored(patron, typed)):
            s.execute(update(Patron).where(Patron.id == patron.id)
                      .values(failed_logins=0, locked_until=None)
                      .execution_options(synchronize_session=False))
            return
        raise refuse_typed_again(
            s, attempt, update(PatronSession)
            .where(PatronSession.patron_id == patron.id, PatronSession.revoked_at.is_(None))
            .values(revoked_at=now), field=field, wrong=wrong)

    def whoami(self, token: str) -> PatronView:
        """Open also before a printed one-time password is replaced: the flag is in the view."""
        return self.sessions.reading(token, lambda s, patron: self._patron_view(patron),
                                     one_time_ok=True)

    def change_password(self, token: str, old: str, new: str) -> None:
        """The patron chooses a new password, typing the current one again (after a printed
        one-time password, the kiosk asks for this before anything else). Their other
        sessions end: whoever knew the old password is logged out everywhere."""
        old, new = domain.normalise_password(old), domain.normalise_password(new)
        with self.ctx.store.write() as s:
            sess = self.sessions.session(s, token, one_time_ok=True)
            patron = s.get(Patron, sess.patron_id)
            assert patron is not None
            self.recheck_password(s, patron, old, field="old_password",
                                  wrong="current_password_wrong")
            problem = domain.password_problem(new)
            if problem is None and new == old:
                problem = "password_unchanged"
            if problem is not None:
                raise RegistryError("invalid", {"new_password": problem})
            patron.password_hash = self.ctx.hash_password(new)
            patron.must_change_password = False
            s.execute(update(PatronSession)
                      .where(PatronSession.patron_id == patron.id, PatronSession.id != sess.id,
                             PatronSession.revoked_at.is_(None))
                      .values(revoked_at=self.ctx.clock()))
            self.sessions.touch(s, sess.id)

    # --- The patron's own data ------------------------------------------------------------

    def my_data(self, token: str, lang: str) -> PatronData:
        """All that is held about the logged-in patron (their right of access)."""
        def read(s: Session, p: Patron) -> PatronData:
            return PatronData(
                card_number=p.card_number, first_name=p.first_name, last_name=p.last_name,
                email=p.email, birth_date=p.birth_date, postcode=p.postcode, phone=p.phone,
                library_code=p.library.code, language=p.language, created_at=p.created_at,
                status=self.seats.status_of(s, p.id, lang), library_card=p.member_barcode or "")
        return self.sessions.reading(token, read)

    def erase_account(self, token: str, password: str) -> None:
        """The patron erases their own account, after typing their password again (a member:
        their PIN, which their member system checks; a blocked card may still be erased)."""
        password = domain.normalise_password(password)
        with self.ctx.store.read() as s:
            patron = self.sessions.patron_for(s, token)
            member = patron.member_barcode
            institution_code = patron.library.institution.code
            found = self.members.for_library(s, patron.library.code) if member else None
        if member is not None:
            if found is None:  # its member system was removed since: nothing can check a PIN
                raise RegistryError("member_system_unavailable")
            check = self.members.check(institution_code, found[1], member, password)
            if check.verdict not in (Verdict.MEMBER, Verdict.NEEDS_ATTENTION):
                raise RegistryError("invalid", {"password": "pin_wrong"})
        with self.ctx.store.write() as s:
            patron = self.sessions.patron_for(s, token)
            if member is None:
                self.recheck_password(s, patron, password, field="password",
                                      wrong="password_wrong")
            self.erasure.erase_for(s, patron.id, actor=pseudonym(patron.id))

    def erase_by_card(self, card_number: str, actor: str) -> None:
        """Erasure done for a patron (a librarian, a data-protection request)."""
        card = domain.normalise_card_input(card_number)
        with self.ctx.store.write() as s:
            patron_id = s.scalar(select(Patron.id).where(Patron.card_number == card))
            if patron_id is None:
                raise RegistryError("not_found")
            self.erasure.erase_for(s, patron_id, actor=actor)

    def erase_inactive(self) -> int:
        """Retention (run every hour by `kiosk registry purge`): erase the accounts past their time,
        each in its own transaction so the seat lock is held briefly; answers how many."""
        with self.ctx.store.read() as s:
            ends_on = s.scalar(select(Programme.ends_on).where(THE_PROGRAMME))
            cutoff = domain.retention_cutoff(self.ctx.clock(), ends_on)
            due = s.scalars(select(Patron.id).where(
                func.coalesce(Patron.last_active_at, Patron.created_at) < cutoff)).all()
        for patron_id in due:
            with self.ctx.store.write() as s:
                if s.get(Patron, patron_id) is not None:
                    self.erasure.erase_for(s, patron_id, actor="retention")
        return len(due)

    # --- Inside a transaction ------------------------------------------------------------

    @staticmethod
    def _find_patron(s: Session, identifier: str) -> Patron | None:
        """An account that logs in with a password of ours (not a library-card member's)."""
        ident = (identifier or "").strip()
        own = Patron.member_barcode.is_(None)
        if "@" in ident:
            return s.scalar(select(Patron).where(Patron.email == ident.lower(), own))
        card = domain.normalise_card_input(ident)
        if not domain.is_valid_card_number(card):
            return None
        return s.scalar(select(Patron).where(Patron.card_number == card, own))

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
            library_card=p.member_barcode or "",
        )
