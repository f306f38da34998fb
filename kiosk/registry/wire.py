"""The wire format of the registry's JSON API (/api/v1), shared by both of its ends.

The rule: the API (`api.py`) and the terminal's HTTP client (`http_client.py`) both take their
request and answer types, their pydantic adapters and their time conversion from here; never
define a wire type anywhere else, so the two ends cannot drift apart. Bodies that already are
domain objects (`PatronView`, `PatronStatus`, `Catalogue`, `StaffView`, ...) are used as they
are from `domain.py` and `roles.py`; only what the domain has no object for is defined here.

A type here is also part of the OpenAPI document: its class name is its schema's name and its
docstring the schema's description. Renaming a class, or adding or changing a docstring,
changes the published contract (use a comment for what only the code's reader needs).

Time: the store and the code on both ends keep naive UTC datetimes; the wire carries RFC 3339
date-times with an offset. `dump` marks naive datetimes as UTC on the way out and `load` makes
every datetime naive UTC on the way in, so neither end converts by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pydantic import StrictBool, TypeAdapter

from .domain import NewPatron, PatronView
from .roles import StaffView

T = TypeVar("T")

# --- Requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginRequest:
    identifier: str
    password: str
    # The patron's language at the kiosk: a library card's new account gets it for notices.
    language: str = ""


@dataclass(frozen=True)
class RegisterRequest(NewPatron):
    """A sign-up; `identity_checked` only with a librarian's X-Staff-Token (assisted mode)."""

    identity_checked: bool = False


@dataclass(frozen=True)
class StaffLoginRequest:
    username: str
    password: str


@dataclass(frozen=True)
class ClaimRequest:
    course: str


@dataclass(frozen=True)
class ErasureRequest:
    password: str


@dataclass(frozen=True)
class PasswordChange:
    old: str
    new: str


@dataclass(frozen=True)
class DetailsChange:
    """The patron's own e-mail address and language for e-mails ("My data"); the password
    only when the e-mail address changes."""

    email: str
    language: str
    password: str = ""


@dataclass(frozen=True)
class AlertsRequest:
    """The categories of new courses to hear about by e-mail (none: stop all); choosing any
    needs `consent`."""

    categories: list[str]
    # A JSON true or false only (not 0 or "yes"): it is the patron's consent.
    consent: StrictBool = False


# --- Answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionAnswer:
    token: str
    patron: PatronView


@dataclass(frozen=True)
class StaffSessionAnswer:
    token: str
    staff: StaffView


@dataclass(frozen=True)
class Registered:
    card_number: str
    # The same name and date of birth as an existing account: "ask at the desk".
    possible_duplicate: bool = False
    # The last day to show an identity document at the desk ("verify" institutions).
    pending_until: date | None = None


@dataclass(frozen=True)
class DetailsChanged:
    # The fields changed ("email", "language"), none when they were already so.
    changed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProgrammeAnswer:
    cap: int
    seats_taken: int
    seats_left: int
    waiting: int
    academy_url: str
    # A practice registry (the demo's, a training one): the kiosk shows a band saying so.
    # Absent from an older registry's answer: not one.
    practice: bool = False
    # How a freed seat is given: "grant" (at once) or "offer" (held for the next in line).
    # A registry older than this field sends none: its seats were granted.
    promotion: str = "grant"


@dataclass(frozen=True)
class MaintenanceAnswer:
    """Not an error: `active` false when kiosks run as usual."""

    active: bool
    messages: dict[str, str] = field(default_factory=dict)
    until: datetime | None = None


# --- Refusals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorDetail:
    code: str
    message: str
    fields: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None
    attempts_left: int | None = None


@dataclass(frozen=True)
class ErrorBody:
    error: ErrorDetail


# --- Adapters, and the time on the wire ------------------------------------------------------


# Built once per type: building an adapter costs milliseconds, and both ends use the same
# few on every call. Threads racing on a new type at worst build it twice.
_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def adapter(tp: Any) -> TypeAdapter[Any]:
    """The pydantic adapter of a wire type, a domain type or a `list[...]` of one."""
    found = _ADAPTERS.get(tp)
    if found is None:
        found = _ADAPTERS[tp] = TypeAdapter(tp)
    return found


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _each_datetime(value: Any, convert: Callable[[datetime], datetime]) -> Any:
    """`value` with `convert` applied to every datetime in it: the body types are frozen
    dataclasses, lists and dicts, so they are copied rather than changed."""
    if isinstance(value, datetime):
        return convert(value)
    if isinstance(value, list):
        return [_each_datetime(item, convert) for item in value]
    if isinstance(value, dict):
        return {key: _each_datetime(item, convert) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _each_datetime(getattr(value, f.name), convert)
                   for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    return value


def to_wire(value: T) -> T:
    """Naive datetimes (UTC, as the store keeps them) marked as UTC, so that they go out as
    RFC 3339 date-times ("…Z") as the document says; aware ones are left as they are."""
    return _each_datetime(value, _aware)


def from_wire(value: T) -> T:
    """Every datetime as naive UTC, whatever offset it came with: the code compares them
    with the store's naive UTC values."""
    return _each_datetime(value, _naive)


def dump(tp: Any, value: Any, *, exclude_none: bool = False) -> bytes:
    """`value` as a JSON body of type `tp`, its datetimes in UTC."""
    return adapter(tp).dump_json(to_wire(value), exclude_none=exclude_none)


def load(tp: type[T], data: Any) -> T:
    """A parsed JSON document checked and built as `tp` (pydantic's `ValidationError` when it
    does not fit), its datetimes naive UTC."""
    return from_wire(adapter(tp).validate_python(data))
