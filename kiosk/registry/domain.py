"""The programme's rules in plain Python: seats, waiting list, identity, log-in policy.

Nothing here knows about Flask, HTTP or SQL. The service layer asks these functions what
to do and the store makes it so; tests can check every rule without a database.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email

LANGUAGES = ("nl", "fr", "en")
# Babel's locale for each: Belgian dates and month names (British English).
LOCALES = {"nl": "nl_BE", "fr": "fr_BE", "en": "en_GB"}
POSTCODE_RE = re.compile(r"^[1-9][0-9]{3}$")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
NAME_MAX = 60
EMAIL_MAX = 254


class RegistryError(Exception):
    """A refusal with a stable code; the terminal turns the code into the patron's language.

    `fields` maps a form field to a field-level code for validation refusals.
    """

    def __init__(self, code: str, fields: dict[str, str] | None = None, **detail: object):
        super().__init__(code)
        self.code = code
        self.fields = fields or {}
        self.detail = detail

    def __repr__(self) -> str:
        return f"RegistryError({self.code!r}, fields={self.fields!r}, detail={self.detail!r})"


# --- Library card numbers -------------------------------------------------------------


def luhn_check_digit(digits: str) -> str:
    """Luhn check digit, so a mistyped card number is caught before any look-up."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # positions that get doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def make_card_number(prefix: str, serial: int) -> str:
    """Institution prefix (4 digits) + 8-digit serial + check digit: 13 digits, EAN-sized."""
    body = f"{prefix}{serial:08d}"
    return body + luhn_check_digit(body)


def ascii_digits(text: str) -> str:
    """Digits as a keyboard in another mode may type them, as ASCII: fullwidth '２０００' (an
    East Asian input method), Arabic-Indic '٢٠٠٠', superscripts. Other characters unchanged."""
    folded = unicodedata.normalize("NFKC", text or "")
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in folded)


def normalise_card_input(text: str) -> str:
    """What a patron or a barcode scanner typed, without spaces, dots or dashes."""
    return re.sub(r"[\s.\-]", "", ascii_digits(text))


_BARCODE = re.compile(r"[0-9A-Z]{4,40}")


def normalise_barcode(text: str) -> str:
    """A library card of a member system as scanned or typed: without spaces, dots or dashes,
    in capitals."""
    return re.sub(r"[\s.\-]", "", ascii_digits(text or "")).upper()


def is_barcode(text: str) -> bool:
    """A normalised library card: letters and digits, at least one digit (a name has none)."""
    return _BARCODE.fullmatch(text) is not None and any(c.isdigit() for c in text)


CARD_LENGTH = 13  # the registry's own card numbers


def is_valid_card_number(text: str) -> bool:
    # ASCII only: str.isdigit() also says yes to '²', which int() refuses.
    return (
        len(text) == CARD_LENGTH and text.isascii() and text.isdigit()
        and luhn_check_digit(text[:-1]) == text[-1]
    )


def format_card_number(card: str) -> str:
    """Groups of 4-4-5 so it can be read aloud and noted down."""
    return f"{card[:4]} {card[4:8]} {card[8:]}" if len(card) == 13 else card


# --- New patron ------------------------------------------------------------------------


class FieldRule(StrEnum):
    """Whether a sign-up form asks for an optional field, and whether it must be filled."""

    NOT_ASKED = "not_asked"
    OPTIONAL = "optional"
    REQUIRED = "required"


DEFAULT_MIN_AGE = 16
MIN_AGE_LOWEST, MIN_AGE_HIGHEST = 12, 99  # what a coordinator may set for an institution


@dataclass(frozen=True)
class SignUpRules:
    """What an institution's sign-up asks (phone, postcode) and the age a patron must have.
    The defaults are the programme's rules from before they were set per institution."""

    phone: FieldRule = FieldRule.OPTIONAL
    postcode: FieldRule = FieldRule.REQUIRED
    min_age: int = DEFAULT_MIN_AGE


def correction_rules(rules: SignUpRules, *, had_phone: bool, had_postcode: bool,
                     age_checked: bool) -> SignUpRules:
    """What a correction of an existing account is held to, from its institution's sign-up
    `rules`: the same formats, but existing accounts are not made to follow a rule set after
    they signed up. A field no longer asked is kept, not wiped; a required one may not be
    emptied, but is not demanded of an account that never had it; the age limit counts only
    when the date of birth or the institution changes (`age_checked`)."""
    def kept(rule: FieldRule, had: bool) -> FieldRule:
        return FieldRule.REQUIRED if rule is FieldRule.REQUIRED and had else FieldRule.OPTIONAL

    return SignUpRules(phone=kept(rules.phone, had_phone),
                       postcode=kept(rules.postcode, had_postcode),
                       min_age=rules.min_age if age_checked else 0)


def validate_sign_up_rules(phone: str, postcode: str, min_age: object) -> SignUpRules:
    """A coordinator's choice, checked: each field code at once in a RegistryError."""
    errors: dict[str, str] = {}
    rules: dict[str, FieldRule] = {}
    for name, value in (("phone", phone), ("postcode", postcode)):
        try:
            rules[name] = FieldRule(value)
        except ValueError:
            errors[name] = "choice_unknown"
    age = None
    text = ascii_digits(str(min_age if min_age is not None else "")).strip()
    if not text:
        errors["min_age"] = "required"
    elif not (text.isascii() and text.isdigit()
              and MIN_AGE_LOWEST <= int(text) <= MIN_AGE_HIGHEST):
        errors["min_age"] = "min_age_invalid"
    else:
        age = int(text)
    if errors:
        raise RegistryError("invalid", errors)
    assert age is not None
    return SignUpRules(phone=rules["phone"], postcode=rules["postcode"], min_age=age)


@dataclass(frozen=True)
class NewPatron:
    first_name: str
    last_name: str
    email: str
    birth_date: str  # "YYYY-M-D" as typed in three boxes, or an ISO date from the API
    postcode: str
    library_code: str
    password: str
    phone: str = ""
    language: str = "nl"
    consent: bool = False


@dataclass(frozen=True)
class CleanPatron:
    """A NewPatron after validation: normalised values, ready to store."""

    first_name: str
    last_name: str
    email: str
    birth_date: date
    postcode: str
    library_code: str
    phone: str
    language: str


# Explicit bidi embeddings, overrides and isolates: in a name they make what a librarian's
# screen shows differ from what is stored (U+202E turns "Jan" into "naJ"), and no name needs
# them: Arabic and Hebrew names display right to left without them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_name(value: str) -> str:
    """NFC, so 'é' typed as e + combining accent is stored (and found) as one character."""
    return " ".join(unicodedata.normalize("NFC", value or "").split())


def fold(text: str) -> str:
    """Case- and accent-insensitive, so 'francais' finds 'Français' (the catalogue's search,
    at the kiosk and on the coordinator's course list)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def matches_all_words(query: str, text: str) -> bool:
    """Every word of the query is in the text (folded): 'excel basis' finds 'Excel: de
    basis'."""
    folded = fold(text)
    return all(word in folded for word in fold(query).split())


def search_name(first_name: str, last_name: str) -> str:
    """How the desk finds a patron by name: no accents, no case, hyphens as spaces
    ("Élise Van-Damme" and "elise van damme" are the same search)."""
    text = unicodedata.normalize("NFKD", f"{first_name} {last_name}")
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.casefold().replace("-", " ").split())


def one_time_form(password: str) -> str:
    """A printed one-time password as it is stored and checked: without case, spaces or
    dashes, so "K7QM 3WXA-HP9T" typed by a patron is "k7qm-3wxa-hp9t" as printed."""
    return "".join(ch for ch in password.lower() if ch not in " -\u2010\u2011\u2013")


REASON_MAX = 200


def clean_reason(text: str) -> str:
    """A reason a staff member gives for the audit log: required, one line, at most
    REASON_MAX characters; answers it tidied, or raises RegistryError("invalid", {"reason"})."""
    reason = clean_name(text)
    if not reason or not has_visible_chars(reason):
        raise RegistryError("invalid", {"reason": "required"})
    if len(reason) > REASON_MAX:
        raise RegistryError("invalid", {"reason": "too_long"})
    if has_control_chars(reason):
        raise RegistryError("invalid", {"reason": "invalid_characters"})
    return reason


def token_hash(token: str) -> str:
    """Bearer tokens are stored only as this digest: a leaked table opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


def has_visible_chars(value: str) -> bool:
    """At least one letter, digit, symbol or punctuation: zero-width characters alone are not
    a name."""
    return any(unicodedata.category(ch)[0] in "LNPS" for ch in value)


def has_control_chars(value: str) -> bool:
    """Control (NUL included: PostgreSQL refuses it), surrogate, private-use or bidi override."""
    return any(
        unicodedata.category(ch) in ("Cc", "Cs", "Co") or ch in BIDI_CONTROLS for ch in value
    )


def normalise_password(value: str) -> str:
    """NFC: 'é' typed as one character or as e + combining accent (a dead key, a paste from
    a Mac) is the same password. Not NFKC: it also folds '²' into '2' and 'ﬁ' into 'fi', which
    would lock out a password already stored with them."""
    return unicodedata.normalize("NFC", value or "")


def password_problem(password: str) -> str | None:
    """A field code if a patron's new password cannot be used, else None."""
    if has_control_chars(password):
        return "invalid_characters"
    if len(password) < MIN_PASSWORD_LENGTH:
        return "password_too_short"
    if len(password) > MAX_PASSWORD_LENGTH:
        return "too_long"
    return None


def normalise_login_identifier(value: str) -> str:
    """A card number (normalised later, by `normalise_card_input`) or an e-mail address in the
    form it was stored in at registration (NFC local part, IDNA domain, lower case)."""
    ident = unicodedata.normalize("NFC", value or "").strip()
    if "@" in ident:
        try:
            return normalise_email(ident)
        except EmailNotValidError:
            return ident  # no account has it; the registry answers "login_failed"
    return ident


def normalise_email(value: str) -> str:
    """Checks syntax only: a kiosk must not wait on DNS, and the academy sends no mail to it."""
    result = validate_email((value or "").strip(), check_deliverability=False)
    return result.normalized.lower()


def normalise_phone(value: str) -> str:
    number = phonenumbers.parse(value, "BE")
    if not phonenumbers.is_valid_number(number):
        raise ValueError("invalid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def format_phone(stored: str) -> str:
    """As a Belgian reads it: '0470 12 34 56' for a Belgian number, international otherwise."""
    if not stored:
        return ""
    try:
        number = phonenumbers.parse(stored, "BE")
    except phonenumbers.NumberParseException:
        return stored
    style = (phonenumbers.PhoneNumberFormat.NATIONAL if number.country_code == 32
             else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(number, style)


def parse_date(text: str) -> date | None:
    """'1960-1-31' or '1960-01-31'; None when it is not a real calendar date."""
    parts = ascii_digits(text).strip().split("-")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        return None
    try:
        return date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class PatronDetails:
    """What a patron tells about themselves, as typed: at sign-up (`NewPatron`) and when a
    librarian or the patron corrects it (`kiosk.registry.corrections`)."""

    first_name: str
    last_name: str
    email: str
    birth_date: str  # "YYYY-M-D" as typed in three boxes, or an ISO date
    postcode: str
    library_code: str
    phone: str = ""
    language: str = "nl"


def validate_new_patron(
    data: NewPatron, *, today: date, rules: SignUpRules, library_codes: set[str]
) -> CleanPatron:
    """Every field checked at once, so the patron sees all problems in one go. `rules`: those
    of the chosen library's institution; a field it does not ask for is stored empty."""
    errors: dict[str, str] = {}
    if data.password and ("\x00" in data.password or has_control_chars(data.password)):
        errors["password"] = "invalid_characters"
    elif len(data.password or "") < MIN_PASSWORD_LENGTH:
        errors["password"] = "password_too_short"
    elif len(data.password) > MAX_PASSWORD_LENGTH:
        errors["password"] = "too_long"
    if not data.consent:
        errors["consent"] = "consent_required"
    details = PatronDetails(
        first_name=data.first_name, last_name=data.last_name, email=data.email,
        birth_date=data.birth_date, postcode=data.postcode, library_code=data.library_code,
        phone=data.phone, language=data.language)
    return validate_details(details, today=today, rules=rules,
                            library_codes=library_codes, errors=errors)


def validate_details(
    data: PatronDetails, *, today: date, rules: SignUpRules, library_codes: set[str],
    errors: dict[str, str] | None = None,
) -> CleanPatron:
    """The rules on a patron's own details (`check_details`), the same at sign-up and for a
    correction: answers the values tidied, or refuses every problem at once, with the
    `errors` already found in other fields (a password), so the patron sees all in one go."""
    checked = check_details(data, today=today, rules=rules, library_codes=library_codes)
    if checked.errors or errors:
        raise RegistryError("invalid", {**checked.errors, **(errors or {})})
    assert checked.birth_date is not None
    return CleanPatron(
        first_name=checked.first_name,
        last_name=checked.last_name,
        email=checked.email,
        birth_date=checked.birth_date,
        postcode=checked.postcode,
        library_code=checked.library_code,
        phone=checked.phone,
        language=checked.language,
    )


@dataclass(frozen=True)
class CheckedDetails:
    """`PatronDetails` after each field's rule: the values tidied (empty, or None, where the
    field has a problem) and the problems, field → code."""

    first_name: str
    last_name: str
    email: str
    birth_date: date | None
    postcode: str
    library_code: str
    phone: str
    language: str
    errors: dict[str, str]


def check_details(
    data: PatronDetails, *, today: date, rules: SignUpRules, library_codes: set[str]
) -> CheckedDetails:
    """Each field of a patron's details checked on its own: names, e-mail, date of birth and
    the minimum age, postcode, library, phone, language, by `rules` (what is asked, the age).
    `validate_details` refuses what this finds; a correction of a member's account leaves out
    the fields their library keeps."""
    errors: dict[str, str] = {}
    texts = {
        "first_name": data.first_name,
        "last_name": data.last_name,
        "email": data.email,
        "postcode": data.postcode,
        "phone": data.phone,
    }
    for name, value in texts.items():
        if value and ("\x00" in value or has_control_chars(value)):
            errors[name] = "invalid_characters"

    first, last = clean_name(data.first_name), clean_name(data.last_name)
    for name, value in (("first_name", first), ("last_name", last)):
        if name in errors:
            continue
        if not has_visible_chars(value):
            errors[name] = "required"
        elif len(value) > NAME_MAX:
            errors[name] = "too_long"

    email = ""
    if "email" not in errors:
        if not (data.email or "").strip():
            errors["email"] = "required"
        elif len(data.email) > EMAIL_MAX:
            errors["email"] = "too_long"
        else:
            try:
                email = normalise_email(data.email)
            except EmailNotValidError:
                errors["email"] = "email_invalid"

    birth = None
    if not (data.birth_date or "").strip("- "):
        errors["birth_date"] = "required"
    else:
        birth = parse_date(data.birth_date)
        if birth is None or birth > today or birth.year < today.year - 120:
            errors["birth_date"] = "birth_date_invalid"
        elif age_on(birth, today) < rules.min_age:
            errors["birth_date"] = "too_young"

    postcode = ascii_digits(data.postcode).strip()
    if rules.postcode is FieldRule.NOT_ASKED:
        postcode = ""
        errors.pop("postcode", None)
    elif "postcode" not in errors:
        if not postcode:
            if rules.postcode is FieldRule.REQUIRED:
                errors["postcode"] = "required"
        elif not POSTCODE_RE.match(postcode):
            errors["postcode"] = "postcode_invalid"

    if data.library_code not in library_codes:
        errors["library_code"] = "required" if not data.library_code else "library_unknown"

    phone = ""
    if rules.phone is FieldRule.NOT_ASKED:
        errors.pop("phone", None)
    elif not (data.phone or "").strip():
        if rules.phone is FieldRule.REQUIRED and "phone" not in errors:
            errors["phone"] = "required"
    elif "phone" not in errors:
        try:
            phone = normalise_phone(data.phone)
        except (ValueError, phonenumbers.NumberParseException):
            errors["phone"] = "phone_invalid"

    if data.language not in LANGUAGES:
        errors["language"] = "language_unknown"

    return CheckedDetails(first_name=first, last_name=last, email=email,
                          birth_date=birth if "birth_date" not in errors else None,
                          postcode=postcode, library_code=data.library_code, phone=phone,
                          language=data.language, errors=errors)


# --- Log-in policy ---------------------------------------------------------------------


@dataclass(frozen=True)
class LoginPolicy:
    """Per account, not per address: a whole library shares one public IP."""

    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)

    def after_failure(self, failures: int, now: datetime) -> tuple[int, datetime | None]:
        failures += 1
        if failures >= self.max_failures:
            return 0, now + self.lock_for
        return failures, None

    @staticmethod
    def is_locked(locked_until: datetime | None, now: datetime) -> bool:
        return locked_until is not None and locked_until > now


# --- Seats and the waiting list --------------------------------------------------------


class Standing(StrEnum):
    """Where a patron stands in the programme: one of these, never two."""

    NONE = "none"
    SEATED = "seated"
    WAITING = "waiting"
    OFFERED = "offered"  # a freed seat held for them until `offer_expires_at`: accept or not


class ClaimDecision(StrEnum):
    GRANT = "grant"
    WAIT = "wait"
    KEEP = "keep"  # already seated or already waiting: the claim only adds a course


def decide_claim(standing: Standing, seats_taken: int, cap: int,
                 may_take_seat: bool = True) -> ClaimDecision:
    """A seat belongs to a patron, not a course: a second course never takes a second seat.
    `may_take_seat` false (a pending account, an institution at its quota): they wait even
    with seats free (see promotion.may_take_seat)."""
    if standing is not Standing.NONE:
        return ClaimDecision.KEEP
    return (ClaimDecision.GRANT if seats_taken < cap and may_take_seat
            else ClaimDecision.WAIT)


def seats_to_promote(cap: int, seats_taken: int, waiting: int) -> int:
    """How many of the first in line get a seat now (after a release or a cap raise)."""
    return max(0, min(cap - seats_taken, waiting))


@dataclass(frozen=True)
class Maintenance:
    """What every kiosk shows instead of the journey, in each language, until a moment (UTC)."""

    messages: dict[str, str]
    until: datetime


MAINTENANCE_MAX = 500


def validate_maintenance(messages: dict[str, str], until: datetime,
                         now: datetime) -> dict[str, str]:
    """All three languages, plain text of a sensible length, ending in the future; answers the
    cleaned messages or raises RegistryError("invalid", fields)."""
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for lang in LANGUAGES:
        text = " ".join(unicodedata.normalize("NFC", messages.get(lang) or "").split())
        if not text:
            errors[lang] = "required"
        elif len(text) > MAINTENANCE_MAX:
            errors[lang] = "too_long"
        elif has_control_chars(text):
            errors[lang] = "invalid_characters"
        clean[lang] = text
    if until <= now:
        errors["until"] = "not_in_future"
    if errors:
        raise RegistryError("invalid", errors)
    return clean


# A terminal calls the registry at least every HEARTBEAT_SECONDS (`kiosk terminal serve`);
# a few missed beats and it counts as offline.
HEARTBEAT_SECONDS = 60
OFFLINE_AFTER = timedelta(minutes=5)


def terminal_state(terminal: TerminalView, now: datetime, current_version: str) -> str:
    """"revoked", "offline" (no contact lately), "outdated" (an older kiosk version than the
    registry's), or "online" — what branch IT looks at first."""
    if terminal.revoked:
        return "revoked"
    if terminal.last_seen_at is None or now - terminal.last_seen_at > OFFLINE_AFTER:
        return "offline"
    return "outdated" if is_outdated(terminal, current_version) else "online"


def is_outdated(terminal: TerminalView, current_version: str) -> bool:
    """Runs an older kiosk than the registry's (or one too old to say): also worth knowing
    of an offline terminal, to update it when it is back."""
    version = terminal.version.rpartition("/")[2]
    return _version_key(version) < _version_key(current_version)


def _version_key(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version)
    return tuple(int(p) for p in parts[:3]) if parts else (0,)


RETENTION_YEARS = 2


def years_before(moment: datetime, years: int) -> datetime:
    """The same moment `years` earlier; 29 February becomes 28 February."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def retention_cutoff(now: datetime, programme_ends: date | None) -> datetime:
    """Accounts last active before this moment are erased: two years without activity, or
    two years after the programme ended, whichever comes first (the privacy statement)."""
    cutoff = years_before(now, RETENTION_YEARS)
    if programme_ends is not None and datetime.combine(programme_ends, time()) <= cutoff:
        return datetime.max  # the programme ended two years ago: every account goes
    return cutoff


def over_cap(cap: int, seats_taken: int) -> int:
    """Seats kept above a lowered cap: lowering the cap takes no seat away."""
    return max(0, seats_taken - cap)


@dataclass(frozen=True)
class ProgrammeStatus:
    cap: int
    seats_taken: int
    waiting: int
    # How a freed seat is given ("grant" or "offer", kiosk.registry.promotion.PROMOTIONS):
    # what a kiosk says will happen to a seat given up.
    promotion: str = "grant"

    @property
    def seats_left(self) -> int:
        return max(0, self.cap - self.seats_taken)

    @property
    def full(self) -> bool:
        return self.seats_left == 0


@dataclass(frozen=True)
class ClaimResult:
    """The answer to a claim. A full programme is not an error: it is a waiting-list result."""

    standing: Standing
    position: int | None = None  # waiting-list position, 1-based, when waiting
    newly_granted: bool = False


class WaitReason(StrEnum):
    """Why a patron waits, or would wait, instead of having a seat."""

    FULL = "full"  # every seat is taken
    PENDING = "pending"  # the account waits for an identity check at the desk
    QUOTA = "quota"  # fair share: their institution holds its quota of seats


@dataclass(frozen=True)
class ClaimOutlook:
    """What a claim would give the patron now, so a page announces what the claim will do
    (promotion.claim_outlook). In the ordinary case (no one else claims in between) the
    claim's answer has the same standing and position."""

    standing: Standing  # what they hold after the claim
    position: int | None = None  # their place in line after the claim, when waiting
    kept: bool = False  # they already hold this place: the claim only adds a course
    why_wait: WaitReason | None = None  # when waiting: why there is no seat for them
    promotion: str = "grant"  # how a freed seat reaches the line: "grant" or "offer"


@dataclass(frozen=True)
class Enrolment:
    course_slug: str
    title: str
    enrolled_at: datetime


@dataclass(frozen=True)
class PatronStatus:
    standing: Standing
    position: int | None
    enrolments: list[Enrolment] = field(default_factory=list)
    seated_at: datetime | None = None
    # While OFFERED: the seat is held for them until this moment (naive UTC).
    offer_expires_at: datetime | None = None
    # Set while the account waits for an identity check at the desk ("verify" institutions):
    # the last day to show a document; until then no seat, but the waiting list is open.
    pending_until: date | None = None
    # The academy link (kiosk/registry/academy.py): "" (no link, or no seat), "pending"
    # (being set up on the platform) or "ready" (the platform holds their seat).
    academy: str = ""


@dataclass(frozen=True)
class PatronData:
    """Everything the registry holds about a patron (GDPR art. 15), shown to the patron."""

    card_number: str
    first_name: str
    last_name: str
    email: str | None  # None: a member whose library gave us no e-mail address
    birth_date: date | None  # None: a member (their library checked it, we do not keep it)
    postcode: str
    phone: str
    library_code: str
    language: str
    created_at: datetime
    status: PatronStatus
    library_card: str = ""  # see PatronView.library_card


@dataclass(frozen=True)
class PatronView:
    """What a terminal may know of the logged-in patron."""

    card_number: str
    first_name: str
    language: str
    library_code: str
    # A printed one-time password was set at the desk: choose your own before anything else.
    must_change_password: bool = False
    pending_until: date | None = None  # see PatronStatus.pending_until
    # A member who signs in with their library card: that card (they have no number of ours
    # to remember, and no password of ours to change).
    library_card: str = ""


# --- What the catalogue and the library list look like to a terminal ---------------------


@dataclass(frozen=True)
class LibraryView:
    code: str
    name: str


@dataclass(frozen=True)
class InstitutionView:
    code: str
    names: dict[str, str]
    libraries: list[LibraryView]
    # Its members sign in with their library card and PIN (it has a member system).
    member_cards: bool = False
    # What its sign-up form asks; a registry older than this field sends none: the defaults.
    sign_up: SignUpRules = field(default_factory=SignUpRules)


@dataclass(frozen=True)
class CategoryView:
    code: str
    name: str


@dataclass(frozen=True)
class AlertChoice:
    """E-mails about new courses: the categories, the codes of those the patron chose, and
    whether a message can go (`available`: the registry sends mail; `has_email`: the account
    has an address)."""

    categories: list[CategoryView]
    chosen: list[str]
    available: bool
    has_email: bool


@dataclass(frozen=True)
class CourseView:
    slug: str
    category: str
    title: str
    summary: str
    hours: int
    featured: bool


@dataclass(frozen=True)
class Catalogue:
    categories: list[CategoryView]
    courses: list[CourseView]

    @property
    def module_of_the_month(self) -> CourseView | None:
        return next((c for c in self.courses if c.featured), None)


@dataclass(frozen=True)
class TerminalView:
    """A library PC known to the registry (never its token)."""

    id: int
    name: str
    library_code: str
    created_at: datetime
    last_seen_at: datetime | None
    version: str
    revoked: bool


# --- Verification at the desk and possible duplicates ------------------------------------

VERIFICATION_POLICIES = ("open", "verify")


@dataclass(frozen=True)
class Registration:
    """The answer to a registration: the new card number, and what the patron must be told."""

    card_number: str
    # The same name and date of birth as an existing account: "ask at the desk".
    possible_duplicate: bool = False
    # The last day to show an identity document ("verify" institutions), else None.
    pending_until: date | None = None


def starts_pending(verification: str, identity_checked: bool) -> bool:
    """A new account waits for an identity check only where the institution asks for one and
    nobody at the desk has checked a document yet."""
    return verification == "verify" and not identity_checked


def pending_deadline(since: datetime, pending_days: int) -> datetime:
    """The moment a pending account is erased if nobody has checked an identity document."""
    return since + timedelta(days=pending_days)


DEFAULT_PENDING_DAYS = 14  # an institution's days to show a document, unless it sets its own


def pending_until(since: datetime, pending_days: int) -> date:
    """The last day to show a document, as the patron is told."""
    return (pending_deadline(since, pending_days) - timedelta(microseconds=1)).date()


def pending_expired(since: datetime, pending_days: int, now: datetime) -> bool:
    return now >= pending_deadline(since, pending_days)


def standing_rank(status: str | None, queue_no: int | None) -> tuple[int, int]:
    """Lower is better: a seat, then an offer (a seat held for them), then a waiting place
    (an earlier place in line first), then nothing."""
    if status == "seated":
        return (0, 0)
    if status == "offered":
        return (1, 0)
    if status == "waiting":
        return (2, queue_no if queue_no is not None else 0)
    return (3, 0)


def merged_place_comes_from_other(keep: tuple[str | None, int | None],
                                  other: tuple[str | None, int | None]) -> bool:
    """Merging two accounts keeps the better standing of the two: True when that is the
    place of the account about to be erased (it moves to the kept account)."""
    return standing_rank(*other) < standing_rank(*keep)
