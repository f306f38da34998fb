"""Staff accounts, their log-ins, and the audit log every staff action writes to.

A staff session is a bearer token like a patron's, kept in the staff member's browser
session; it ends at log-out, after `idle` without use and after `max_age` in any case.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Update, case, func, insert, literal, null, or_, select, update
from sqlalchemy.orm import Session

from . import domain
from .domain import LoginPolicy, RegistryError
from .passwords import dummy_hash, hash_password, verify
from .roles import Role, StaffView, check_account, staff_password_problem
from .store import AuditEntry, Institution, Library, Patron, Runner, Staff, StaffSession, Store


@dataclass(frozen=True)
class AuditView:
    at: datetime
    actor: str
    action: str
    terminal: str
    subject: str
    institution: str
    detail: dict


@dataclass(frozen=True)
class AuditQuery:
    """The audit page's filters; all optional."""

    action: str = ""
    actor: str = ""
    subject: str = ""
    institution: str = ""
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 200
    offset: int = 0


def pseudonym(patron_id: int) -> str:
    """How the audit log names a patron: meaningful while the row exists, nothing after."""
    return f"patron#{patron_id}"


def record(s: Runner, at: datetime, actor: str, action: str, *, where: str = "",
           subject: str = "", institution: str = "", **detail: object) -> None:
    """One audit entry, in the caller's transaction: it exists exactly when the change does.
    On a Session it joins the session's unit of work (written in order with the use case's
    other rows); on a Connection (the seat ledger's hot path) it is written at once."""
    values = {"at": at, "actor": actor[:80], "action": action, "terminal": where[:80],
              "subject": subject, "institution": institution, "detail": detail}
    if isinstance(s, Session):
        s.add(AuditEntry(**values))
    else:
        s.execute(insert(AuditEntry).values(**values))


# --- Counting log-in attempts (patrons and staff) --------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """A log-in attempt counted as a failure before its password is checked (`count_attempt`).

    `failures`: the count it left; `locked_until`: the lock it set by taking the policy's
    last attempt (then `failures` is 0), else None."""

    failures: int
    locked_until: datetime | None


def count_attempt(s: Session, account: type[Patron] | type[Staff], account_id: int,
                  policy: LoginPolicy, now: datetime) -> Attempt:
    """Count one log-in attempt on an account as a failure, BEFORE its password (or PIN) is
    checked, and commit that at once (with the caller's transaction, if any); a right
    password then puts the count back to 0. Raises "account_locked" while a lock lasts.

    One conditional UPDATE: the database, not a read here, decides whether the account is
    locked and what the count becomes (`LoginPolicy.after_failure`, done in SQL), so however
    many attempts run at once, in however many workers and hosts, at most
    `policy.max_failures` passwords are ever checked before the account locks, and none
    while it is locked. The attempt that takes the last one sets the lock itself, before
    its password is checked: an attempt cut short (a crash) can hold the account for the
    lock's length at most, never for good."""
    counted = account.failed_logins + 1
    locks = counted >= policy.max_failures
    taken = s.execute(
        update(account)
        .where(account.id == account_id,
               or_(account.locked_until.is_(None), account.locked_until <= now))
        .values(failed_logins=case((locks, 0), else_=counted),
                locked_until=case((locks, literal(now + policy.lock_for, DateTime())),
                                  else_=null()))
        .returning(account.failed_logins, account.locked_until)
        # The rows this session holds are read afresh by whoever uses them next.
        .execution_options(synchronize_session=False)
    ).first()
    if taken is None:
        until = s.scalar(select(account.locked_until).where(account.id == account_id))
        raise RegistryError("account_locked", until=until) if until else RegistryError(
            "login_failed")  # erased or removed meanwhile
    s.flush()
    s.connection().commit()  # seen by every other attempt before this one's check
    return Attempt(failures=taken[0], locked_until=taken[1])


def refuse_typed_again(s: Session, attempt: Attempt, end_sessions: Update, *, field: str,
                       wrong: str) -> RegistryError:
    """The answer to a wrong password typed again by someone logged in (to change it, or
    their e-mail address, or to erase the account), its attempt counted by `count_attempt`:
    "invalid" on `field`; for the attempt that locked the account, "account_locked", with
    `end_sessions` (every session of the account) run and committed, as is whatever the
    caller wrote before, while the caller's refusal rolls back only what follows. A page
    left open is then no place to try passwords, for patrons and staff alike."""
    if attempt.locked_until is None:
        return RegistryError("invalid", {field: wrong})
    s.execute(end_sessions)
    s.flush()
    s.connection().commit()
    return RegistryError("account_locked", until=attempt.locked_until)


def uncount_attempt(s: Session, account: type[Patron] | type[Staff], account_id: int,
                    attempt: Attempt, policy: LoginPolicy) -> None:
    """Take back an attempt that got no verdict (the member system did not answer), and
    commit that at once: it counts against no one. Only ever lowers a count this attempt
    raised: its own lock is lifted only if nothing happened since, and a count only while
    no lock holds; otherwise the attempt stays counted (never one judgement too many)."""
    if attempt.locked_until is not None:
        stmt = (update(account)
                .where(account.id == account_id, account.failed_logins == 0,
                       account.locked_until == attempt.locked_until)
                .values(failed_logins=policy.max_failures - 1, locked_until=None))
    else:
        stmt = (update(account)
                .where(account.id == account_id, account.failed_logins > 0,
                       account.locked_until.is_(None))
                .values(failed_logins=account.failed_logins - 1))
    s.execute(stmt.execution_options(synchronize_session=False))
    s.flush()
    s.connection().commit()


class StaffAccounts:
    def __init__(self, store: Store, clock: Callable[[], datetime],
                 login_policy: LoginPolicy | None = None,
                 idle: timedelta = timedelta(minutes=20),
                 max_age: timedelta = timedelta(hours=10)):
        self.store = store
        self.clock = clock
        self.login_policy = login_policy or LoginPolicy()
        self.idle = idle
        self.max_age = max_age

    # --- Accounts ------------------------------------------------------------------------

    def create(self, username: str, display_name: str, role: str, password: str, *,
               institution_code: str | None = None, library_code: str | None = None,
               actor: str, where: str = "") -> StaffView:
        username = (username or "").strip().lower()
        display_name = domain.clean_name(display_name)
        password = domain.normalise_password(password)
        errors = check_account(username, display_name, role, password)
        with self.store.write() as s:
            institution = library = None
            if library_code:
                library = s.scalar(select(Library).where(Library.code == library_code))
                if library is None:
                    errors["library_code"] = "library_unknown"
            if institution_code:
                institution = s.scalar(select(Institution)
                                       .where(Institution.code == institution_code))
                if institution is None:
                    errors["institution_code"] = "institution_unknown"
            elif library is not None:
                institution = library.institution
            if role == Role.LIBRARIAN and institution is None and "institution_code" not in errors:
                errors["institution_code"] = "required"
            if (library is not None and institution is not None
                    and library.institution_id != institution.id):
                errors["library_code"] = "library_not_in_institution"
            if "username" not in errors and s.scalar(
                    select(Staff.id).where(Staff.username == username)) is not None:
                errors["username"] = "username_taken"
            if errors:
                raise RegistryError("invalid", errors)
            row = Staff(username=username, display_name=display_name, role=role,
                        institution_id=institution.id if institution and role == Role.LIBRARIAN
                        else None,
                        library_id=library.id if library else None,
                        password_hash=hash_password(password),
                        created_at=self.clock(), failed_logins=0)
            s.add(row)
            s.flush()
            record(s, self.clock(), actor, "staff_created", where=where,
                   institution=institution.code if institution else "",
                   staff=username, role=role)
            return self._view(row)

    def accounts(self) -> list[tuple[StaffView, bool]]:
        """Every account, with whether it is still active."""
        with self.store.read() as s:
            rows = s.scalars(select(Staff).order_by(Staff.username)).all()
            return [(self._view(r), r.disabled_at is None) for r in rows]

    def disable(self, username: str, *, actor: str, where: str = "") -> None:
        """No more log-ins, and every open session of theirs ends now."""
        with self.store.write() as s:
            row = s.scalar(select(Staff).where(Staff.username == username.strip().lower()))
            if row is None:
                raise RegistryError("not_found")
            if row.disabled_at is None:
                row.disabled_at = self.clock()
                s.execute(update(StaffSession).where(StaffSession.staff_id == row.id,
                                                     StaffSession.revoked_at.is_(None))
                          .values(revoked_at=self.clock()))
                record(s, self.clock(), actor, "staff_disabled", where=where, staff=row.username)

    # --- Log-in --------------------------------------------------------------------------

    def login(self, username: str, password: str, where: str = "") -> tuple[str, StaffView]:
        """The attempt is counted before the password is checked (`count_attempt`), and the
        check runs outside any transaction: argon2 holds no lock."""
        username = (username or "").strip().lower()
        password = domain.normalise_password(password)
        now = self.clock()
        attempt = None
        with self.store.write() as s:
            row = s.scalar(select(Staff).where(Staff.username == username))
            if row is not None and row.disabled_at is None:
                staff_id, stored = row.id, row.password_hash
                attempt = count_attempt(s, Staff, staff_id, self.login_policy, now)
        if attempt is None:
            verify(dummy_hash(), password)  # the same time either way
            raise RegistryError("login_failed")
        if not verify(stored, password):
            with self.store.write() as s:
                record(s, now, f"staff:{username}", "staff_login_failed", where=where)
                s.flush()
                s.connection().commit()  # the entry survives the refusal
            if attempt.locked_until is not None:
                raise RegistryError("account_locked", until=attempt.locked_until)
            raise RegistryError("login_failed")
        with self.store.write() as s:
            found = s.get(Staff, staff_id, populate_existing=True)
            # Disabled, or the password changed, while this one was checked?
            if found is None or found.disabled_at is not None or (
                    found.password_hash != stored and not verify(found.password_hash, password)):
                raise RegistryError("login_failed")
            found.failed_logins, found.locked_until = 0, None
            token = "ks_" + secrets.token_urlsafe(32)
            s.add(StaffSession(token_hash=domain.token_hash(token), staff_id=found.id,
                               created_at=now, last_seen_at=now, place=where[:80]))
            record(s, now, f"staff:{found.username}", "staff_login", where=where)
            return token, self._view(found)

    def whois(self, token: str) -> StaffView:
        """The staff member behind a live session; keeps it alive."""
        with self.store.write(durable=False) as s:
            return self._view(self._live(s, token)[1])

    def _live(self, s: Session, token: str) -> tuple[StaffSession, Staff]:
        """A live session and its staff member, kept alive; else "staff_session_invalid"."""
        now = self.clock()
        sess = s.scalar(select(StaffSession)
                        .where(StaffSession.token_hash == domain.token_hash(token)))
        if (sess is None or sess.revoked_at is not None
                or now - sess.last_seen_at > self.idle or now - sess.created_at > self.max_age):
            raise RegistryError("staff_session_invalid")
        row = s.get(Staff, sess.staff_id)
        if row is None or row.disabled_at is not None:
            raise RegistryError("staff_session_invalid")
        sess.last_seen_at = now
        return sess, row

    def logout(self, token: str, where: str = "") -> None:
        """End a session (nothing for one already ended). Audited from `where`, else from
        where it began: the end of a take-over reaches us from the kiosk's client without a
        place of its own."""
        now = self.clock()
        with self.store.write() as s:
            ended = s.execute(update(StaffSession)
                              .where(StaffSession.token_hash == domain.token_hash(token),
                                     StaffSession.revoked_at.is_(None))
                              .values(revoked_at=now)
                              .returning(StaffSession.staff_id, StaffSession.place)).first()
            if ended is not None:
                username = s.scalar(select(Staff.username).where(Staff.id == ended[0]))
                record(s, now, f"staff:{username}", "staff_logout", where=where or ended[1])

    def hand_back(self, token: str, where: str = "") -> None:
        """Assisted mode: the librarian hands the kiosk back to the patron for a private step.
        Their session lives on (taking over again needs their password); audited, so that
        what the patron does meanwhile reads right in the log."""
        with self.store.write() as s:
            sess, row = self._live(s, token)
            record(s, self.clock(), f"staff:{row.username}", "assist_handed_back",
                   where=where or sess.place)

    def change_password(self, token: str, old: str, new: str, where: str = "") -> None:
        """A staff member's own new password, after typing the current one again. That one
        counts as a log-in attempt (`count_attempt`), so a staff page left open is no place
        to try passwords: the attempt that locks the account also ends its every session
        ("account_locked"). A new password ends the other sessions: whoever knew the old one
        is logged out everywhere."""
        old, new = domain.normalise_password(old), domain.normalise_password(new)
        now = self.clock()
        with self.store.write() as s:
            sess, row = self._live(s, token)
            actor = f"staff:{row.username}"
            attempt = count_attempt(s, Staff, row.id, self.login_policy, now)
            if not verify(row.password_hash, old):
                # Kept only with the lock: the refusal of a wrong one rolls it back.
                record(s, now, actor, "staff_login_failed", where=where or sess.place)
                raise refuse_typed_again(
                    s, attempt, update(StaffSession)
                    .where(StaffSession.staff_id == row.id, StaffSession.revoked_at.is_(None))
                    .values(revoked_at=now), field="old_password", wrong="current_password_wrong")
            problem = staff_password_problem(new)
            if problem is None and new == old:
                problem = "password_unchanged"
            if problem is not None:
                raise RegistryError("invalid", {"new_password": problem})
            s.execute(update(Staff).where(Staff.id == row.id)
                      .values(password_hash=hash_password(new), failed_logins=0,
                              locked_until=None)
                      .execution_options(synchronize_session=False))
            s.execute(update(StaffSession)
                      .where(StaffSession.staff_id == row.id, StaffSession.id != sess.id,
                             StaffSession.revoked_at.is_(None))
                      .values(revoked_at=now))
            record(s, now, actor, "staff_password_changed", where=where or sess.place)

    # --- The audit log -------------------------------------------------------------------

    def audit(self, query: AuditQuery, viewer: StaffView) -> tuple[list[AuditView], int]:
        """Entries newest first, filtered; answers (page, total matching)."""
        stmt = select(AuditEntry)
        if not viewer.programme_wide:
            stmt = stmt.where(AuditEntry.institution == (viewer.institution_code or ""))
        if query.action:
            stmt = stmt.where(AuditEntry.action == query.action)
        if query.actor:
            stmt = stmt.where(AuditEntry.actor.contains(query.actor, autoescape=True))
        if query.subject:
            stmt = stmt.where(AuditEntry.subject == query.subject)
        if query.institution:
            stmt = stmt.where(AuditEntry.institution == query.institution)
        if query.since:
            stmt = stmt.where(AuditEntry.at >= query.since)
        if query.until:
            stmt = stmt.where(AuditEntry.at < query.until)
        with self.store.read() as s:
            total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            rows = s.scalars(stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                             .limit(query.limit).offset(query.offset)).all()
            return [AuditView(r.at, r.actor, r.action, r.terminal, r.subject, r.institution,
                              dict(r.detail or {})) for r in rows], total

    def audit_actions(self) -> list[str]:
        with self.store.read() as s:
            return list(s.scalars(select(AuditEntry.action).distinct()
                                  .order_by(AuditEntry.action)).all())

    @staticmethod
    def _view(row: Staff) -> StaffView:
        return StaffView(
            id=row.id, username=row.username, display_name=row.display_name,
            role=Role(row.role),
            institution_code=row.institution.code if row.institution else None,
            library_code=row.library.code if row.library else None,
            library_name=row.library.name if row.library else "",
        )
