"""Correcting a patron's details: by a librarian at the desk (`DeskService.correct`, in the
desk's transaction) and by the patron under "My data" at a kiosk (the e-mail address, after
their password, and the language of their e-mails).

The rules on each value are sign-up's (`domain.check_details`). A correction must not make
two accounts look alike: an e-mail address another account has is refused, as at sign-up; the
name and date of birth of another account are refused unless the librarian confirms these
are two people, and the pair then goes to the duplicates queue (as a sign-up's would).

A member who signs in with their library card: their name and e-mail address are brought
from their member system at each sign-in (`Accounts._refresh_member`) and their library
checked their date of birth (not kept here), so those are not corrected here: their library
corrects them. A postcode their account never had may stay empty.

A new e-mail address is told at the old address and at the new one, through the outbox, in
the patron's language. The audit entry names the fields changed, never their values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import academy, domain
from .accounts import Accounts
from .context import RegistryContext
from .domain import FieldRule, PatronDetails, RegistryError, SignUpRules
from .notices import enqueue
from .patron_sessions import PatronSessions
from .signup_rules import SignUpRulesBook
from .staff import pseudonym, record
from .store import Institution, Library, Patron
from .verification import Verification

# The fields a correction may change, in the order the desk's form shows them; the audit
# entry's "changed" list names them.
FIELDS = ("first_name", "last_name", "email", "birth_date", "postcode", "library", "phone",
          "language")
# What a member's library keeps for them (see the module's text).
MEMBER_SYSTEM_FIELDS = frozenset({"first_name", "last_name", "email", "birth_date"})
# The patron's own fields under "My data" at a kiosk, and the rules they are held to there
# (the others are left as they are: nothing is asked again, the age not checked again).
OWN_FIELDS = ("email", "language")
OWN_RULES = SignUpRules(phone=FieldRule.OPTIONAL, postcode=FieldRule.OPTIONAL, min_age=0)


def kept_by_library(is_member: bool) -> frozenset[str]:
    """The fields nobody here corrects: a member's library keeps them."""
    return MEMBER_SYSTEM_FIELDS if is_member else frozenset()


@dataclass(frozen=True)
class Correction:
    """What a correction did: the fields changed (FIELDS' names, in their order) and whether
    the account now looks like another one (confirmed, and in the duplicates queue)."""

    changed: tuple[str, ...]
    possible_duplicate: bool = False


@dataclass(frozen=True)
class _Values:
    first_name: str
    last_name: str
    email: str | None
    birth_date: date | None
    postcode: str
    library: str
    phone: str
    language: str


class Corrections:
    def __init__(self, ctx: RegistryContext, *, sessions: PatronSessions, accounts: Accounts,
                 verification: Verification, sign_up: SignUpRulesBook):
        self.ctx = ctx
        self.sessions = sessions
        self.accounts = accounts
        self.verification = verification
        self.sign_up = sign_up

    # --- At the desk (the caller's transaction) ---------------------------------------

    def correct(self, s: Session, patron: Patron, details: PatronDetails, *,
                serves: Callable[[str], bool], lookalike_ok: bool, now: datetime,
                errors: dict[str, str] | None = None) -> Correction:
        """Correct `patron` (whom the caller may act for) to `details`, at a library of an
        institution `serves` says yes to. Refuses with RegistryError("invalid", fields):
        sign-up's codes, "library_out_of_reach", "email_taken", and "lookalike_account" (on
        "lookalike") unless `lookalike_ok`; with the `errors` the caller found (a reason),
        so all are shown at once."""
        member = patron.member_barcode is not None
        kept = kept_by_library(member)
        libraries = self._libraries(s, patron, serves)
        checked = domain.check_details(details, today=now.date(),
                                       rules=self._rules(s, patron, details, libraries),
                                       library_codes=set(libraries))
        problems = {name: code for name, code in checked.errors.items()
                    if _field(name) not in kept
                    and not (member and name == "postcode" and code == "required")}
        if problems.get("library_code") == "library_unknown" and self._exists(
                s, details.library_code):
            problems["library_code"] = "library_out_of_reach"
        if problems or errors:
            raise RegistryError("invalid", {**problems, **(errors or {})})
        before = _values_of(patron)
        assert checked.birth_date is not None or member
        after = _Values(
            first_name=before.first_name if member else checked.first_name,
            last_name=before.last_name if member else checked.last_name,
            email=before.email if member else checked.email,
            birth_date=before.birth_date if member else checked.birth_date,
            postcode=checked.postcode, library=checked.library_code, phone=checked.phone,
            language=checked.language)
        changed = tuple(name for name in FIELDS
                        if getattr(before, name) != getattr(after, name))
        if not changed:
            return Correction(())
        if "email" in changed:
            self._refuse_taken_email(s, patron.id, after.email)
        lookalike = bool({"first_name", "last_name", "birth_date"} & set(changed)) and \
            self._lookalike(s, patron.id, after)
        if lookalike and not lookalike_ok:
            raise RegistryError("invalid", {"lookalike": "lookalike_account"})
        self._apply(s, patron, before, after, libraries[after.library], now)
        if lookalike:
            self.verification.flag_duplicates(s, patron, now)
        return Correction(changed, lookalike)

    # --- At a kiosk: the patron's own --------------------------------------------------

    def change_own(self, token: str, email: str, language: str, password: str) -> Correction:
        """The patron's e-mail address (after their password: a new address also logs in)
        and the language of their e-mails, checked as at sign-up. A member's e-mail address
        comes from their library: refused ("email_from_library"). Audited by the patron's
        pseudonym, naming the fields changed."""
        now = self.ctx.clock()
        password = domain.normalise_password(password)
        with self.ctx.store.write() as s:
            patron = self.sessions.patron_for(s, token)
            before = _values_of(patron)
            birth = patron.birth_date.isoformat() if patron.birth_date else ""
            checked = domain.check_details(
                PatronDetails(first_name=patron.first_name, last_name=patron.last_name,
                              email=email, birth_date=birth, postcode=patron.postcode,
                              library_code=before.library, phone=patron.phone,
                              language=language),
                today=now.date(), rules=OWN_RULES, library_codes={before.library})
            member = patron.member_barcode is not None
            errors = {name: code for name, code in checked.errors.items()
                      if name in OWN_FIELDS and not (member and name == "email")}
            new_email = checked.email or None
            if member:  # their library's: kept, and refused if another one was typed
                if email.strip() and new_email != before.email:
                    errors["email"] = "email_from_library"
                new_email = before.email
            if errors:
                raise RegistryError("invalid", errors)
            after = replace(before, email=new_email, language=checked.language)
            changed = tuple(name for name in OWN_FIELDS
                            if getattr(before, name) != getattr(after, name))
            if not changed:
                return Correction(())
            if "email" in changed:
                self.accounts.recheck_password(s, patron, password, field="password",
                                               wrong="current_password_wrong")
                self._refuse_taken_email(s, patron.id, after.email)
            self._apply(s, patron, before, after, patron.library_id, now)
            record(s, now, pseudonym(patron.id), "patron_corrected",
                   subject=pseudonym(patron.id),
                   institution=patron.library.institution.code, changed=list(changed))
            return Correction(changed)

    # --- Inside a transaction ------------------------------------------------------------

    def _rules(self, s: Session, patron: Patron, details: PatronDetails,
               libraries: dict[str, int]) -> SignUpRules:
        """The sign-up rules of the chosen library's institution, as they hold for a
        correction (`domain.correction_rules`)."""
        chosen = s.get(Library, libraries[details.library_code]) \
            if details.library_code in libraries else None
        institution = chosen.institution if chosen is not None else patron.library.institution
        birth = patron.birth_date.isoformat() if patron.birth_date else ""
        return domain.correction_rules(
            self.sign_up.of(institution), had_phone=bool(patron.phone),
            had_postcode=bool(patron.postcode),
            age_checked=institution.id != patron.library.institution_id
            or domain.parse_date(details.birth_date) != domain.parse_date(birth))

    @staticmethod
    def _libraries(s: Session, patron: Patron,
                   serves: Callable[[str], bool]) -> dict[str, int]:
        """Library code → id of the libraries the patron may be moved to: those offered (not
        retired) of an institution served, a member's only of their member institution; and
        the one they have, even retired."""
        rows = s.execute(select(Library.code, Library.id, Institution.code, Institution.id)
                         .join(Institution, Library.institution_id == Institution.id)
                         .where(Library.retired.is_(False),
                                Institution.retired.is_(False))).all()
        found = {code: lib_id for code, lib_id, inst_code, inst_id in rows
                 if serves(inst_code) and patron.member_institution_id in (None, inst_id)}
        found[patron.library.code] = patron.library_id
        return found

    @staticmethod
    def _exists(s: Session, library_code: str) -> bool:
        return s.scalar(select(Library.id).where(Library.code == library_code)) is not None

    @staticmethod
    def _refuse_taken_email(s: Session, patron_id: int, email: str | None) -> None:
        holder = s.scalar(select(Patron.id).where(Patron.email == email, Patron.id != patron_id))
        if holder is not None:
            raise RegistryError("invalid", {"email": "email_taken"})

    @staticmethod
    def _lookalike(s: Session, patron_id: int, after: _Values) -> bool:
        """Another account has this name and date of birth (the duplicates queue's rule)."""
        if after.birth_date is None:
            return False
        return s.scalar(select(Patron.id).where(
            Patron.search_name == domain.search_name(after.first_name, after.last_name),
            Patron.birth_date == after.birth_date, Patron.id != patron_id).limit(1)) is not None

    @staticmethod
    def _apply(s: Session, patron: Patron, before: _Values, after: _Values, library_id: int,
               now: datetime) -> None:
        patron.first_name, patron.last_name = after.first_name, after.last_name
        patron.search_name = domain.search_name(after.first_name, after.last_name)
        patron.email, patron.birth_date = after.email, after.birth_date
        patron.postcode, patron.phone = after.postcode, after.phone
        patron.library_id, patron.language = library_id, after.language
        s.flush()
        s.refresh(patron, ["library"])
        if after.email != before.email:
            # In the patron's language, at both addresses: whoever changed it, the owner of
            # the old address hears of it.
            if before.email:
                enqueue(s, patron.id, "email_changed", now, address=before.email, side="old")
            enqueue(s, patron.id, "email_changed", now, side="new")
        if (after.first_name, after.last_name, after.email) != \
                (before.first_name, before.last_name, before.email):
            academy.enqueue(s, patron.id, now)  # the course platform hears of it


def _field(name: str) -> str:
    """A refusal's field as FIELDS names it (the library's code is "library_code")."""
    return "library" if name == "library_code" else name


def _values_of(patron: Patron) -> _Values:
    return _Values(first_name=patron.first_name, last_name=patron.last_name,
                   email=patron.email, birth_date=patron.birth_date,
                   postcode=patron.postcode, library=patron.library.code,
                   phone=patron.phone, language=patron.language)
