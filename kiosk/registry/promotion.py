"""Who gets a freed seat, and until when an offer holds it: plain Python, no Flask, no SQL.

- Opening-day arithmetic: an offer holds its seat until closing time (23:59, Belgian time) of
  the Nth opening day of the patron's institution after the day it was made; its closed days
  (public holidays, one-off closures) are not opening days.
- The choice of the next in line: the line in order, skipping pending accounts (they keep
  their place until verified) and, with fair share on, patrons whose institution already
  holds its quota of seats (they keep their place too).
- The settings a coordinator may change, validated in one go.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from .days import BELGIUM, belgian_date
from .domain import (
    ClaimDecision,
    ClaimOutlook,
    ProgrammeStatus,
    RegistryError,
    Standing,
    WaitReason,
    decide_claim,
    seats_to_promote,
)

# Libraries close at different hours; the offer lasts the whole of its last opening day.
CLOSING = time(23, 59)
DEFAULT_OPENING_DAYS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)  # Monday to Saturday
# The reminder ("your offer ends tomorrow") goes out this long before the end.
REMINDER_BEFORE = timedelta(days=1)

PROMOTIONS = ("grant", "offer")
VERIFICATIONS = ("open", "verify")
OFFER_DAYS_MAX = 30
PENDING_DAYS_MAX = 365
QUOTA_MAX = 1_000_000


# --- Opening days ---------------------------------------------------------------------------


def opening_days_or_default(days: Iterable[int] | None) -> tuple[int, ...]:
    """The stored ISO weekdays, or Monday to Saturday when none are stored."""
    clean = tuple(sorted({int(d) for d in days or () if 1 <= int(d) <= 7}))
    return clean or DEFAULT_OPENING_DAYS


def nth_opening_day(after: date, opening_days: Iterable[int] | None, n: int,
                    closed: Collection[date] = ()) -> date:
    """The `n`th day after `after` (that day itself not counted) on which the libraries open:
    one of their weekdays and not one of their `closed` days. (Closed days are finite, so
    the count always ends.)"""
    if n < 1:
        raise ValueError("n must be 1 or more")
    days = set(opening_days_or_default(opening_days))
    day, counted = after, 0
    while counted < n:
        day += timedelta(days=1)
        if day.isoweekday() in days and day not in closed:
            counted += 1
    return day


def offer_expiry(offered_at: datetime, opening_days: Iterable[int] | None, n: int,
                 closed: Collection[date] = ()) -> datetime:
    """When an offer made at `offered_at` (naive UTC) ends: 23:59 Belgian time on the `n`th
    opening day after the Belgian date it was made (skipping the institution's `closed`
    days), as naive UTC (what the database holds).

    An offer made on Friday with Monday-to-Saturday opening and n = 3 counts Saturday, Monday
    and Tuesday: it ends on Tuesday at 23:59. 23:59 exists every day (clocks change at 02:00
    and 03:00), and the offset is that of the last day, so a DST change in between is right."""
    local_day = belgian_date(offered_at)
    last = nth_opening_day(local_day, opening_days, n, closed)
    closing = datetime.combine(last, CLOSING, tzinfo=BELGIUM)
    return closing.astimezone(UTC).replace(tzinfo=None)




def reminder_due(expires_at: datetime, now: datetime) -> bool:
    """Time for "your offer ends soon": within a day of the end, and not yet past it."""
    return expires_at - REMINDER_BEFORE <= now < expires_at


# --- The next in line -----------------------------------------------------------------------


class FreedSeat(StrEnum):
    """What becomes of a seat given up (a patron's "no thanks", a last course stopped, a
    seat given up), as a confirmation says it before it is done."""

    GIVEN = "given"  # "grant": the next in line has it at once
    OFFERED = "offered"  # "offer": it is held for the next in line, who may take it or not
    STAYS_FREE = "stays_free"  # nobody waits: the next to enrol takes it
    NOT_REFILLED = "not_refilled"  # above a lowered cap: the seat is not given again


def freed_seat(programme: ProgrammeStatus) -> FreedSeat:
    """What one seat given up now becomes, by the programme's policy: the same count
    `ledger.promote` makes after a release (one seat fewer taken, then as many of the line
    as the cap allows). Someone pending or over a fair-share quota is passed over there,
    not here: the words "the next in line" still hold."""
    if programme.waiting == 0:
        return FreedSeat.STAYS_FREE
    if seats_to_promote(programme.cap, programme.seats_taken - 1, programme.waiting) == 0:
        return FreedSeat.NOT_REFILLED
    return FreedSeat.OFFERED if programme.promotion == "offer" else FreedSeat.GIVEN


@dataclass(frozen=True)
class Candidate:
    """A waiting patron, as the choice needs them."""

    patron_id: int
    institution_id: int
    pending: bool  # self-registered, identity not yet checked


def may_take_seat(candidate: Candidate, held: Mapping[int, int],
                  quotas: Mapping[int, int | None], fair_share: bool) -> bool:
    """A pending account never gets a seat; with fair share on, nor does a patron whose
    institution already holds its quota (seated + offered). With it off, quotas are ignored."""
    if candidate.pending:
        return False
    if not fair_share:
        return True
    quota = quotas.get(candidate.institution_id)
    return quota is None or held.get(candidate.institution_id, 0) < quota


def choose(line: Iterable[Candidate], n: int, held: Mapping[int, int],
           quotas: Mapping[int, int | None], fair_share: bool) -> list[Candidate]:
    """The first `n` of the line (in order) who may take a seat, counting each chosen one
    against their institution's quota as they are chosen. `line` is read lazily and only as
    far as needed; those skipped keep their place."""
    chosen: list[Candidate] = []
    if n <= 0:
        return chosen
    counts = dict(held)
    for candidate in line:
        if may_take_seat(candidate, counts, quotas, fair_share):
            chosen.append(candidate)
            counts[candidate.institution_id] = counts.get(candidate.institution_id, 0) + 1
            if len(chosen) == n:
                break
    return chosen


@dataclass(frozen=True)
class Skipped:
    """Why those in line who were not chosen were passed over."""

    pending: int  # waiting for an identity check
    over_quota: dict[int, int]  # institution id → patrons of it waiting over its quota


def skipped(line: Iterable[Candidate], chosen: Collection[int]) -> Skipped:
    """Sort the line's unchosen patrons by why `choose` passed them over, when it read the
    whole line without filling every seat: then each was pending or over their institution's
    quota (quotas only fill up as the choice goes on, so over once is over to the end)."""
    pending, over = 0, dict[int, int]()
    for candidate in line:
        if candidate.patron_id in chosen:
            continue
        if candidate.pending:
            pending += 1
        else:
            over[candidate.institution_id] = over.get(candidate.institution_id, 0) + 1
    return Skipped(pending, over)


# --- What a claim would give ---------------------------------------------------------------


@dataclass(frozen=True)
class SeatsNow:
    """The programme's seats as a claim reads them, with the claimant's institution's share."""

    cap: int
    taken: int
    waiting: int
    fair_share: bool
    promotion: str  # "grant" or "offer"
    quota: int | None  # the claimant's institution's quota
    held: int  # seats its patrons hold now (seated + offered)


def claim_outlook(standing: Standing, position: int | None, candidate: Candidate,
                  seats: SeatsNow) -> ClaimOutlook:
    """What a claim made now gives: the same decision as the ledger's (decide_claim with
    may_take_seat), so "there is a free seat for you" is said only to someone who gets it.
    A place held is kept; a new waiting place is at the back of the line. A waiting patron
    is told why too: pending first (a seat would not help them), then a full programme,
    then their institution's quota."""
    held = {candidate.institution_id: seats.held}
    may_take = may_take_seat(candidate, held, {candidate.institution_id: seats.quota},
                             seats.fair_share)
    decision = decide_claim(standing, seats.taken, seats.cap, may_take)
    if decision is ClaimDecision.GRANT:
        return ClaimOutlook(Standing.SEATED, promotion=seats.promotion)
    kept = decision is ClaimDecision.KEEP
    after = standing if kept else Standing.WAITING
    if after is not Standing.WAITING:
        return ClaimOutlook(after, kept=kept, promotion=seats.promotion)
    why = (WaitReason.PENDING if candidate.pending
           else WaitReason.FULL if seats.taken >= seats.cap or may_take
           else WaitReason.QUOTA)
    return ClaimOutlook(Standing.WAITING, position if kept else seats.waiting + 1, kept, why,
                        seats.promotion)


# --- Settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeatPolicy:
    """How freed seats are given: the programme's part of the settings."""

    promotion: str  # "grant" or "offer"
    offer_days: int
    fair_share: bool
    quotas: dict[str, int | None]  # institution code → quota (None: no quota)


@dataclass(frozen=True)
class InstitutionPolicy:
    """One institution's part: when its libraries open, and how new accounts are checked."""

    opening_days: tuple[int, ...]
    verification: str  # "open" or "verify"
    pending_days: int


def _whole(value: object) -> int | None:
    """A whole number from a form or an API (not a bool, not "3.5")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value or "").strip()
    if text.isascii() and text.lstrip("-").isdigit() and len(text) <= 9:
        return int(text)
    return None


def validate_seat_policy(promotion: str, offer_days: object, fair_share: bool,
                         quotas: Mapping[str, object], codes: Iterable[str]) -> SeatPolicy:
    """Every value checked at once; field codes name `quota_<CODE>` per institution."""
    errors: dict[str, str] = {}
    if promotion not in PROMOTIONS:
        errors["promotion"] = "promotion_unknown"
    days = _whole(offer_days)
    if days is None or not 1 <= days <= OFFER_DAYS_MAX:
        errors["offer_days"] = "offer_days_invalid"
    clean: dict[str, int | None] = {}
    known = set(codes)
    for code, raw in quotas.items():
        if code not in known:
            errors[f"quota_{code}"] = "institution_unknown"
            continue
        if raw is None or str(raw).strip() == "":
            clean[code] = None
            continue
        quota = _whole(raw)
        if quota is None or not 0 <= quota <= QUOTA_MAX:
            errors[f"quota_{code}"] = "quota_invalid"
        else:
            clean[code] = quota
    if errors:
        raise RegistryError("invalid", errors)
    assert days is not None
    return SeatPolicy(promotion, days, bool(fair_share), clean)


def validate_institution_policy(opening_days: Iterable[object], verification: str,
                                pending_days: object) -> InstitutionPolicy:
    errors: dict[str, str] = {}
    days: set[int] = set()
    for raw in opening_days:
        day = _whole(raw)
        if day is None or not 1 <= day <= 7:
            errors["opening_days"] = "opening_days_invalid"
        else:
            days.add(day)
    if not days and "opening_days" not in errors:
        errors["opening_days"] = "opening_days_required"
    if verification not in VERIFICATIONS:
        errors["verification"] = "verification_unknown"
    pending = _whole(pending_days)
    if pending is None or not 1 <= pending <= PENDING_DAYS_MAX:
        errors["pending_days"] = "pending_days_invalid"
    if errors:
        raise RegistryError("invalid", errors)
    assert pending is not None
    return InstitutionPolicy(tuple(sorted(days)), verification, pending)


@dataclass(frozen=True)
class OfferSweep:
    """What `expire_offers` did: offers ended, seats then served, reminders sent."""

    expired: int
    promoted: int
    reminded: int
