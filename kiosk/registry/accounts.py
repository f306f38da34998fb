"""Patrons' library accounts: registration, log-in and log-out, who am I, a new password, the
patron's own data, and erasure (by the patron, for them, and by retention).

Each use case is one transaction. The session checks are `PatronSessions`'; erasing frees
the seat through `Erasure`, which the desk and the identity checks use too.
"""

from __future__ import annotations

import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from . import domain
from .context import RegistryContext
from .domain import LoginPolicy, NewPatron, PatronData, PatronView, Registration, RegistryError
from .erasure import Erasure
from .notices import enqueue
from .passwords import dummy_hash, hash_password, needs_rehash, verify
from .patron_sessions import PatronSessions
from .roles import StaffView
from .seats import Seats
from .staff import pseudonym, record
from .store import THE_PROGRAMME, Institution, Library, Patron, PatronSession, Programme
from .verification import Verification


class Accounts:
    def __init__(self, ctx: RegistryContext, *, sessions: PatronSessions, seats: Seats,
                 verification: Verification, erasure: Erasure, min_age: int,
                 login_policy: LoginPolicy):
        self.ctx = ctx
        self.sessions = sessions
        self.seats = seats
        self.verification = verification
        self.erasure = erasure
        self.min_age = min_age
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
            rows = s.execute(select(Library.code, Library.id, Institution.code)
                             .join(Institution, Library.institution_id == Institution.id)).all()
            libraries = {code: lib_id for code, lib_id, _ in rows}
            institution = {code: inst for code, _, inst in rows}.get(data.library_code)
            # Before the other fields, as the desk always did: no account at a library of
            # another institution is made "assisted by" a librarian who does not serve it.
            if assisted_by and institution and not assisted_by.serves(institution):
                raise RegistryError("invalid", {"library_code": "library_not_served"})
            clean = domain.validate_new_patron(
                data, today=self.ctx.clock().date(), min_age=self.min_age,
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
                created_at=self.ctx.clock(),
                last_active_at=self.ctx.clock(),
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
        now = self.ctx.clock()
        with self.ctx.store.write() as s:
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
        with self.ctx.store.write() as s:
            s.execute(
                update(PatronSession)
                .where(PatronSession.patron_id == owner)
                .where(PatronSession.revoked_at.is_(None))
                .values(revoked_at=self.ctx.clock())
            )

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
                status=self.seats.status_of(s, p.id, lang))
        return self.sessions.reading(token, read)

    def erase_account(self, token: str, password: str) -> None:
        """The patron erases their own account, after typing their password again."""
        with self.ctx.store.write() as s:
            patron = self.sessions.patron_for(s, token)
            if not verify(patron.password_hash, domain.normalise_password(password)):
                raise RegistryError("invalid", {"password": "password_wrong"})
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
        """Retention (run daily by `kiosk registry purge`): erase the accounts past their time,
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
