"""The librarian's desk: find a patron, see their record, and act for them.

Every use case takes the staff member (`StaffView`) and where they work from: a librarian
reaches only the patrons of their own institution (anyone else is "not_found", as if they did
not exist), a coordinator everyone. Each action is one transaction that writes its audit entry,
tagged `assisted_by`, and names the patron only by pseudonym. The seat rules are those of the
seat use cases (`Seats.claim_for`, `withdraw_for`, …), accounts are made as `Accounts` makes
them and erased as `Erasure` erases them: the desk adds who, where and for whom.

The pure rules (how a query is read, one-time passwords; the masking of card numbers is in
`masking`, shared with the duplicates queue) come first, without a database, so they can be
tested alone.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import domain
from .accounts import Accounts
from .context import RegistryContext
from .corrections import Correction, Corrections
from .domain import (
    ClaimResult,
    NewPatron,
    PatronDetails,
    PatronStatus,
    Registration,
    RegistryError,
)
from .erasure import Erasure
from .masking import mask_card_number
from .notices import enabled, enqueue
from .roles import StaffView, staff_username
from .seats import Seats
from .staff import pseudonym, record
from .store import (
    THE_PROGRAMME,
    AuditEntry,
    Institution,
    Library,
    Patron,
    PatronSession,
    Programme,
    Staff,
)

# --- Rules --------------------------------------------------------------------------------

SEARCH_LIMIT = 50
# Opening a patron's record is audited, but once per staff member and patron in this window:
# a librarian going back and forth while helping one person is one look, not twenty.
VIEW_AUDIT_EVERY = timedelta(minutes=15)
# A printed one-time password: no 0/O, 1/l/i, nothing a reader could take for another sign.
ONE_TIME_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
ONE_TIME_GROUPS, ONE_TIME_GROUP_SIZE = 3, 4


@dataclass(frozen=True)
class PatronQuery:
    """What the desk searches on: `kind` is "card", "library_card" (a member's), "email" or
    "name"."""

    kind: str
    value: str
    birth_date: date | None = None


def read_query(text: str, birth_date: date | None) -> PatronQuery:
    """A card number (spaces, dots and dashes allowed; the check digit must be right), an
    e-mail address, or a name, which needs the date of birth too (names are not unique).
    Raises RegistryError("invalid", fields) for what cannot be searched."""
    text = unicodedata.normalize("NFC", text or "").strip()
    if not text:
        raise RegistryError("invalid", {"query": "required"})
    if domain.has_control_chars(text) or len(text) > domain.EMAIL_MAX:
        raise RegistryError("invalid", {"query": "invalid_characters"
                                        if domain.has_control_chars(text) else "too_long"})
    if "@" in text:
        return PatronQuery("email", domain.normalise_login_identifier(text))
    card = domain.normalise_card_input(text)
    if card.isascii() and card.isdigit() and domain.is_valid_card_number(card):
        return PatronQuery("card", card)
    if card.isascii() and card.isdigit() and len(card) == domain.CARD_LENGTH:
        raise RegistryError("invalid", {"query": "card_invalid"})  # ours, mistyped
    barcode = domain.normalise_barcode(text)
    if domain.is_barcode(barcode):  # a member's library card
        return PatronQuery("library_card", barcode)
    name = domain.search_name(text, "")
    if not name:
        raise RegistryError("invalid", {"query": "required"})
    if birth_date is None:
        raise RegistryError("invalid", {"birth_date": "birth_date_needed"})
    return PatronQuery("name", name, birth_date)


def one_time_password() -> str:
    """Three groups of four from an unambiguous alphabet, e.g. "k7qm-3wxa-hp9t" (≈ 59 bits)."""
    groups = ("".join(secrets.choice(ONE_TIME_ALPHABET) for _ in range(ONE_TIME_GROUP_SIZE))
              for _ in range(ONE_TIME_GROUPS))
    return "-".join(groups)


# --- What the pages show -------------------------------------------------------------------


@dataclass(frozen=True)
class PatronHit:
    """One line of a search result: a masked card number, never the whole one."""

    id: int
    masked_card: str
    first_name: str
    last_name: str
    birth_date: date | None  # None: a library-card member
    library_name: str
    institution_code: str


@dataclass(frozen=True)
class PatronRecord:
    """Everything the desk shows about one patron."""

    id: int
    card_number: str
    first_name: str
    last_name: str
    email: str | None
    birth_date: date | None  # None: a library-card member
    postcode: str
    phone: str  # as stored (E.164); the page formats it
    library_code: str
    library_name: str
    institution_code: str
    language: str
    created_at: datetime
    last_active_at: datetime | None
    status: PatronStatus
    pending_since: datetime | None
    identity_checked_at: datetime | None
    identity_checked_by: str  # the audit log's actor ("staff:<user name>")
    # Who checked it, as people know them: the staff member's display name (else the actor).
    identity_checked_by_name: str
    must_change_password: bool
    locked_until: datetime | None  # only while the lock lasts
    # A member who signs in with their library card: that card (their library keeps their
    # name, e-mail address and date of birth: `corrections.MEMBER_SYSTEM_FIELDS`).
    library_card: str = ""


@dataclass(frozen=True)
class Receipt:
    """The printed receipt: in the patron's language, whoever prints it."""

    first_name: str
    card_number: str
    language: str
    status: PatronStatus
    academy_url: str
    assisted_by: str
    printed_at: datetime


# --- Use cases -----------------------------------------------------------------------------


class DeskService:
    def __init__(self, ctx: RegistryContext, *, seats: Seats, accounts: Accounts,
                 erasure: Erasure, corrections: Corrections):
        self.ctx = ctx
        self.store = ctx.store
        self.seats = seats
        self.accounts = accounts
        self.erasure = erasure
        self.corrections = corrections

    def find(self, staff: StaffView, text: str, birth_date: date | None = None) -> list[PatronHit]:
        """Patrons matching a card number, an e-mail address or a name + date of birth, in
        this staff member's reach only."""
        query = read_query(text, birth_date)
        stmt = (select(Patron, Library.name, Institution.code)
                .join(Library, Patron.library_id == Library.id)
                .join(Institution, Library.institution_id == Institution.id))
        if query.kind == "card":
            stmt = stmt.where(Patron.card_number == query.value)
        elif query.kind == "library_card":
            stmt = stmt.where(Patron.member_barcode == query.value)
        elif query.kind == "email":
            stmt = stmt.where(Patron.email == query.value)
        else:  # every word, in any order: "Dubois Élise" finds Élise Dubois
            stmt = stmt.where(*(Patron.search_name.contains(word, autoescape=True)
                                for word in query.value.split()),
                              Patron.birth_date == query.birth_date)
        if not staff.programme_wide:
            stmt = stmt.where(Institution.code == (staff.institution_code or ""))
        stmt = stmt.order_by(Patron.last_name, Patron.first_name, Patron.id).limit(SEARCH_LIMIT)
        with self.store.read() as s:
            return [PatronHit(p.id, mask_card_number(p.card_number), p.first_name, p.last_name,
                              p.birth_date, library_name, institution)
                    for p, library_name, institution in s.execute(stmt).all()]

    def patron(self, staff: StaffView, patron_id: int, lang: str, where: str = "") -> PatronRecord:
        """One patron's record; the look is audited (see VIEW_AUDIT_EVERY)."""
        now = self.ctx.clock()
        with self.store.read() as s:
            found = self._record(s, staff, patron_id, lang, now)
            seen = s.scalar(select(AuditEntry.id).where(
                AuditEntry.action == "patron_viewed", AuditEntry.actor == staff.actor,
                AuditEntry.subject == pseudonym(patron_id),
                AuditEntry.at > now - VIEW_AUDIT_EVERY).limit(1))
        if seen is None:
            with self.store.write(durable=False) as s:
                record(s, now, staff.actor, "patron_viewed", where=where,
                       subject=pseudonym(patron_id), institution=found.institution_code)
        return found

    def enrol(self, staff: StaffView, patron_id: int, course_slug: str,
              where: str = "") -> ClaimResult:
        """A seat or a waiting place, exactly as at a kiosk (`claim_for` takes the lock)."""
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            result = self.seats.claim_for(s, patron.id, course_slug)
            self._audit(s, staff, patron, "patron_enrolled", where, course=course_slug,
                        standing=result.standing.value)
        self.seats.on_claim("desk", result)
        return result

    def withdraw(self, staff: StaffView, patron_id: int, course_slug: str,
                 where: str = "") -> PatronStatus:
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            status = self.seats.withdraw_for(s, patron, course_slug)
            self._audit(s, staff, patron, "patron_withdrawn", where, course=course_slug,
                        standing=status.standing.value)
            return status

    def give_up_seat(self, staff: StaffView, patron_id: int, where: str = "") -> None:
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            self.seats.give_up_seat_for(s, patron.id)
            self._audit(s, staff, patron, "seat_given_up", where)

    def leave_waiting_list(self, staff: StaffView, patron_id: int, where: str = "") -> None:
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            self.seats.leave_waiting_list_for(s, patron.id)
            self._audit(s, staff, patron, "waiting_list_left", where)

    def receipt(self, staff: StaffView, patron_id: int, where: str = "") -> Receipt:
        """What the printed receipt shows; the printing is audited."""
        now = self.ctx.clock()
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            status = self.seats.status_of(s, patron.id, patron.language)
            academy = s.scalar(select(Programme.academy_url).where(THE_PROGRAMME)) or ""
            self._audit(s, staff, patron, "receipt_printed", where)
            return Receipt(patron.first_name, patron.card_number, patron.language, status,
                           academy, staff.assisted_label, now)

    def email_receipt(self, staff: StaffView, patron_id: int, where: str = "") -> None:
        """Put the receipt in the outbox, in the patron's language; a mail server that is
        down delays it, never the desk."""
        now = self.ctx.clock()
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            if not enabled(s):
                raise RegistryError("mail_not_set_up")
            enqueue(s, patron.id, "receipt", now)
            self._audit(s, staff, patron, "receipt_emailed", where)

    def erase(self, staff: StaffView, patron_id: int, reason: str, where: str = "") -> None:
        """Erase the account for the patron; their seat goes to the next in line."""
        reason = domain.clean_reason(reason)
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            self.erasure.erase_for(s, patron.id, actor=staff.actor, where=where,
                                   assisted_by=staff.assisted_label, reason=reason)

    def correct(self, staff: StaffView, patron_id: int, details: PatronDetails, reason: str,
                *, lookalike_ok: bool = False, where: str = "") -> Correction:
        """Correct the patron's details as sign-up checks them (`Corrections.correct`), at a
        library of the staff member's reach; the reason is required. The audit entry names
        the fields changed, not their values; nothing changed, nothing is written."""
        try:  # refused with the details' problems, so the librarian sees all at once
            reason, problems = domain.clean_reason(reason), {}
        except RegistryError as refusal:
            problems = refusal.fields
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            done = self.corrections.correct(s, patron, details, serves=staff.serves,
                                            lookalike_ok=lookalike_ok, now=self.ctx.clock(),
                                            errors=problems)
            if done.changed:
                detail: dict[str, object] = {"changed": list(done.changed), "reason": reason}
                if done.possible_duplicate:
                    detail["possible_duplicate"] = True
                self._audit(s, staff, patron, "patron_corrected", where, **detail)
            return done

    def register(self, staff: StaffView, data: NewPatron, *, identity_checked: bool,
                 where: str = "") -> tuple[Registration, int]:
        """Create an account for the patron (at a library of the staff member's reach, which
        `register_account` checks); answers what registration answers (card number, possible
        duplicate, pending) and the new patron's id."""
        with self.store.write() as s:
            made = self.accounts.register_account(data, assisted_by=staff,
                                                  identity_checked=identity_checked, where=where)
            patron_id = s.scalar(select(Patron.id).where(Patron.card_number == made.card_number))
            assert patron_id is not None
            return made, patron_id

    def set_password(self, staff: StaffView, patron_id: int, password: str | None = None,
                     where: str = "") -> str | None:
        """A new password: the one the patron typed on the desk PC, or (None) a printed
        one-time password, answered once and never stored in clear, which the patron must
        replace at their next log-in. Unlocks the account and ends their open sessions."""
        one_time = password is None
        if password is None:
            password = one_time_password()
        else:
            password = domain.normalise_password(password)
            problem = domain.password_problem(password)
            if problem is not None:
                raise RegistryError("invalid", {"password": problem})
        now = self.ctx.clock()
        with self.store.write() as s:
            patron = self._patron(s, staff, patron_id)
            was_locked = domain.LoginPolicy.is_locked(patron.locked_until, now)
            patron.password_hash = self.ctx.hash_password(
                domain.one_time_form(password) if one_time else password)
            patron.must_change_password = one_time
            patron.failed_logins, patron.locked_until = 0, None
            s.execute(update(PatronSession)
                      .where(PatronSession.patron_id == patron.id,
                             PatronSession.revoked_at.is_(None))
                      .values(revoked_at=now))
            self._audit(s, staff, patron, "password_set", where,
                        how="one_time" if one_time else "typed", unlocked=was_locked)
        return password if one_time else None

    def mail_on(self) -> bool:
        """Whether this registry sends e-mail (else the desk offers no "e-mail the receipt")."""
        with self.store.read() as s:
            return enabled(s)

    # --- Inside a transaction ----------------------------------------------------------------

    def _patron(self, s: Session, staff: StaffView, patron_id: int) -> Patron:
        """The patron, if this staff member may act for them; otherwise as if there were none."""
        patron = s.get(Patron, patron_id)
        if patron is None or not staff.serves(patron.library.institution.code):
            raise RegistryError("not_found")
        return patron

    def _audit(self, s: Session, staff: StaffView, patron: Patron, action: str, where: str,
               **detail: object) -> None:
        record(s, self.ctx.clock(), staff.actor, action, where=where,
               subject=pseudonym(patron.id), institution=patron.library.institution.code,
               assisted_by=staff.assisted_label, **detail)

    @staticmethod
    def _staff_name(s: Session, actor: str) -> str:
        """A staff member's display name for their audit name; the actor as written when it
        names no staff member (any more)."""
        username = staff_username(actor)
        name = username and s.scalar(select(Staff.display_name)
                                     .where(Staff.username == username))
        return name or actor

    def _record(self, s: Session, staff: StaffView, patron_id: int, lang: str,
                now: datetime) -> PatronRecord:
        p = self._patron(s, staff, patron_id)
        locked = p.locked_until if domain.LoginPolicy.is_locked(p.locked_until, now) else None
        return PatronRecord(
            id=p.id, card_number=p.card_number, first_name=p.first_name,
            last_name=p.last_name, email=p.email, birth_date=p.birth_date, postcode=p.postcode,
            phone=p.phone, library_code=p.library.code, library_name=p.library.name,
            institution_code=p.library.institution.code, language=p.language,
            created_at=p.created_at, last_active_at=p.last_active_at,
            status=self.seats.status_of(s, p.id, lang), pending_since=p.pending_since,
            identity_checked_at=p.identity_checked_at,
            identity_checked_by=p.identity_checked_by or "",
            identity_checked_by_name=self._staff_name(s, p.identity_checked_by or ""),
            must_change_password=bool(p.must_change_password), locked_until=locked,
            library_card=p.member_barcode or "")
