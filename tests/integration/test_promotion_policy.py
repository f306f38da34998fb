"""Who gets a freed seat, and how: offer and hold over library opening days (a frozen clock),
expiry, decline and accept; fair share after a cap raise; pending accounts skipped; the
coordinator's settings page. Registry rules on SQLite and PostgreSQL; never more seats than
the cap."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from kiosk.registry import promotion
from kiosk.registry.domain import ClaimOutlook, RegistryError, Standing, WaitReason
from kiosk.registry.promotion import Candidate
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, Institution, Library, Patron, Place, Programme
from tests.support.clock import Clock
from tests.support.contract import Registry, refusal
from tests.support.factories import CONFIRMED, add_patron, patron_data

PASSWORD = "correct horse"


# --- Opening-day arithmetic (pure) ---------------------------------------------------------------

MON_SAT = [1, 2, 3, 4, 5, 6]


def test_friday_offer_with_monday_to_saturday_opening_ends_tuesday_at_closing() -> None:
    friday = datetime(2026, 3, 6, 9, 0)  # 10:00 in Brussels (CET, UTC+1)
    assert date(2026, 3, 6).isoweekday() == 5
    # Saturday, (Sunday closed), Monday, Tuesday: Tuesday 23:59 CET = 22:59 UTC.
    assert promotion.offer_expiry(friday, MON_SAT, 3) == datetime(2026, 3, 10, 22, 59)
    assert promotion.offer_expiry(friday, MON_SAT, 1) == datetime(2026, 3, 7, 22, 59)
    assert promotion.offer_expiry(friday, MON_SAT, 2) == datetime(2026, 3, 9, 22, 59)


def test_sunday_and_monday_closed_library() -> None:
    saturday = datetime(2026, 3, 7, 12, 0)
    tue_sat = [2, 3, 4, 5, 6]
    assert promotion.nth_opening_day(date(2026, 3, 7), tue_sat, 1) == date(2026, 3, 10)
    assert promotion.offer_expiry(saturday, tue_sat, 2) == datetime(2026, 3, 11, 22, 59)
    # Open only on Wednesdays: three opening days are three weeks.
    assert promotion.nth_opening_day(date(2026, 3, 7), [3], 3) == date(2026, 3, 25)


def test_the_day_counted_is_the_belgian_date_not_the_utc_one() -> None:
    # Friday 23:30 UTC is already Saturday 00:30 in Brussels: Saturday is the offer's day.
    late = datetime(2026, 3, 6, 23, 30)
    assert promotion.offer_expiry(late, MON_SAT, 1) == datetime(2026, 3, 9, 22, 59)


def test_closing_time_across_daylight_saving_changes() -> None:
    # Clocks go forward on Sunday 29 March 2026: Tuesday 31 March 23:59 is CEST (UTC+2).
    assert promotion.offer_expiry(datetime(2026, 3, 27, 9), MON_SAT, 3) == datetime(
        2026, 3, 31, 21, 59)
    # Saturday 28 March is still CET (UTC+1).
    assert promotion.offer_expiry(datetime(2026, 3, 27, 9), MON_SAT, 1) == datetime(
        2026, 3, 28, 22, 59)
    # Clocks go back on Sunday 25 October 2026: Tuesday 27 October 23:59 is CET again.
    assert promotion.offer_expiry(datetime(2026, 10, 23, 9), MON_SAT, 3) == datetime(
        2026, 10, 27, 22, 59)
    assert promotion.offer_expiry(datetime(2026, 10, 23, 9), MON_SAT, 1) == datetime(
        2026, 10, 24, 21, 59)


def test_opening_days_default_and_bad_counts() -> None:
    assert promotion.opening_days_or_default(None) == (1, 2, 3, 4, 5, 6)
    assert promotion.opening_days_or_default([]) == (1, 2, 3, 4, 5, 6)
    assert promotion.opening_days_or_default([7, 1, 1, 9]) == (1, 7)
    with pytest.raises(ValueError):
        promotion.nth_opening_day(date(2026, 3, 6), MON_SAT, 0)


def test_reminder_window() -> None:
    end = datetime(2026, 3, 10, 22, 59)
    assert not promotion.reminder_due(end, end - timedelta(days=1, minutes=1))
    assert promotion.reminder_due(end, end - timedelta(days=1))
    assert promotion.reminder_due(end, end - timedelta(minutes=1))
    assert not promotion.reminder_due(end, end)


def test_choice_skips_pending_and_institutions_at_their_quota() -> None:
    line = [Candidate(1, 10, False), Candidate(2, 10, True), Candidate(3, 10, False),
            Candidate(4, 20, False), Candidate(5, 10, False), Candidate(6, 20, False)]
    # Without fair share only the pending one is skipped.
    assert [c.patron_id for c in promotion.choose(line, 3, {10: 5}, {10: 1}, False)] == [1, 3, 4]
    # Institution 10 holds 1 of its quota of 2: one more of theirs, then 20's patrons.
    chosen = promotion.choose(line, 4, {10: 1}, {10: 2, 20: None}, True)
    assert [c.patron_id for c in chosen] == [1, 4, 6]
    assert promotion.choose(line, 0, {}, {}, True) == []
    # The line is read lazily: no further than needed.
    seen: list[int] = []

    def lazily():  # type: ignore[no-untyped-def]
        for c in line:
            seen.append(c.patron_id)
            yield c

    promotion.choose(lazily(), 1, {}, {}, False)
    assert seen == [1]


def seats_now(**overrides: object) -> promotion.SeatsNow:
    values: dict = dict(cap=10, taken=3, waiting=0, fair_share=False, promotion="grant",
                        quota=None, held=0)
    values.update(overrides)
    return promotion.SeatsNow(**values)


def test_the_outlook_promises_a_seat_only_to_who_gets_one() -> None:
    outlook = promotion.claim_outlook
    newcomer, pending = Candidate(1, 10, False), Candidate(2, 10, True)
    assert outlook(Standing.NONE, None, newcomer, seats_now()) == ClaimOutlook(Standing.SEATED)
    # Fair share: seats are free, but the institution holds its quota: the back of the line.
    over = seats_now(fair_share=True, quota=2, held=2, waiting=3)
    assert outlook(Standing.NONE, None, newcomer, over) == ClaimOutlook(
        Standing.WAITING, 4, why_wait=WaitReason.QUOTA)
    # The same quota with fair share off counts for nothing.
    assert outlook(Standing.NONE, None, newcomer, seats_now(quota=2, held=2)).standing is (
        Standing.SEATED)
    # A pending account waits even with seats free, and is told why; pending comes first.
    assert outlook(Standing.NONE, None, pending, seats_now(taken=10, waiting=1)) == (
        ClaimOutlook(Standing.WAITING, 2, why_wait=WaitReason.PENDING))
    full = seats_now(taken=10, waiting=5, promotion="offer")
    assert outlook(Standing.NONE, None, newcomer, full) == ClaimOutlook(
        Standing.WAITING, 6, why_wait=WaitReason.FULL, promotion="offer")
    # A place held is kept: a seat, a seat offered, a place in line (and why they still wait).
    assert outlook(Standing.SEATED, None, newcomer, full) == ClaimOutlook(
        Standing.SEATED, kept=True, promotion="offer")
    assert outlook(Standing.OFFERED, None, newcomer, full).standing is Standing.OFFERED
    assert outlook(Standing.WAITING, 2, pending, seats_now()) == ClaimOutlook(
        Standing.WAITING, 2, True, WaitReason.PENDING)
    assert outlook(Standing.WAITING, 2, newcomer, over).why_wait is WaitReason.QUOTA


def test_settings_are_validated_all_at_once() -> None:
    with pytest.raises(RegistryError) as info:
        promotion.validate_seat_policy("lottery", "0", True, {"ANT": "-1", "XXX": "3",
                                                             "KOR": "2.5"}, ["ANT", "KOR"])
    assert info.value.fields == {"promotion": "promotion_unknown",
                                 "offer_days": "offer_days_invalid",
                                 "quota_ANT": "quota_invalid", "quota_XXX": "institution_unknown",
                                 "quota_KOR": "quota_invalid"}
    ok = promotion.validate_seat_policy("offer", "5", True, {"ANT": "", "KOR": "40"},
                                        ["ANT", "KOR"])
    assert (ok.promotion, ok.offer_days, ok.quotas) == ("offer", 5, {"ANT": None, "KOR": 40})
    with pytest.raises(RegistryError) as info:
        promotion.validate_institution_policy([], "maybe", "0")
    assert info.value.fields == {"opening_days": "opening_days_required",
                                 "verification": "verification_unknown",
                                 "pending_days": "pending_days_invalid"}
    with pytest.raises(RegistryError) as info:
        promotion.validate_institution_policy(["8"], "open", "14")
    assert info.value.fields == {"opening_days": "opening_days_invalid"}
    assert promotion.validate_institution_policy(["6", "1"], "verify", 10) == (
        promotion.InstitutionPolicy((1, 6), "verify", 10))


# --- The registry: offer and hold ----------------------------------------------------------------

FRIDAY_10H = datetime(2026, 3, 6, 9, 0)  # Friday 10:00 in Brussels
TUESDAY_CLOSING = datetime(2026, 3, 10, 22, 59)  # Tuesday 23:59 in Brussels


def assert_never_oversold(service: RegistryService) -> None:
    with service.store.read() as s:
        prog = s.get(Programme, 1)
        assert prog is not None
        held = s.scalar(select(func.count()).where(Place.status.in_(("seated", "offered"))))
        waiting = s.scalar(select(func.count()).where(Place.status == "waiting"))
        assert held == prog.seats_taken <= prog.cap + prog.over_cap
        assert waiting == prog.waiting


def offer_service(make_service, cap: int = 1, days: int = 3) -> tuple[RegistryService, Clock]:  # type: ignore[no-untyped-def]
    clock = Clock(FRIDAY_10H)
    # Sessions that outlive the clock's jumps: the offer, not the log-in, is under test.
    service = make_service(cap=cap, clock=clock, session_idle=timedelta(days=90),
                           session_max=timedelta(days=90))
    service.policies.set_seat_policy("offer", days, False, {}, actor="test")
    return service, clock


@dataclass(frozen=True)
class Entry:
    actor: str
    terminal: str
    subject: str
    institution: str
    detail: dict


def actions(service: RegistryService, action: str) -> list[Entry]:
    with service.store.read() as s:
        return [Entry(e.actor, e.terminal, e.subject, e.institution, dict(e.detail))
                for e in s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                   .order_by(AuditEntry.id))]


def test_offer_holds_the_seat_over_opening_days_then_passes_to_the_next(make_service) -> None:
    service, clock = offer_service(make_service)
    _, holder = add_patron(service)
    _, first = add_patron(service)
    _, second = add_patron(service)
    service.claim(holder, "excel-basics")
    service.claim(first, "instagram")
    service.claim(second, "word-basics")

    service.give_up_seat(holder)  # Friday 10:00: the seat is offered, not granted
    offered = service.status(first)
    assert offered.standing is Standing.OFFERED and offered.position is None
    assert offered.offer_expires_at == TUESDAY_CLOSING
    assert service.status(second).position == 1
    assert service.programme_status().seats_taken == 1  # the offer holds the seat
    assert_never_oversold(service)
    # A newcomer in between waits: the held seat is not free.
    _, newcomer = add_patron(service)
    assert service.claim(newcomer, "excel-basics").standing is Standing.WAITING

    # Monday: nothing to do yet. Tuesday 00:00 (within a day of the end): one reminder, once.
    clock.set(datetime(2026, 3, 9, 12, 0))
    assert service.expire_offers() == promotion.OfferSweep(0, 0, 0)
    clock.set(datetime(2026, 3, 9, 23, 0))
    assert service.expire_offers() == promotion.OfferSweep(0, 0, 1)
    assert service.expire_offers() == promotion.OfferSweep(0, 0, 0)
    assert [e.subject for e in actions(service, "offer_expiring")] == ["patron#2"]

    # Tuesday 23:58 in Brussels the offer still holds; at 23:59 it is gone.
    clock.set(TUESDAY_CLOSING - timedelta(minutes=1))
    assert service.status(first).standing is Standing.OFFERED
    clock.set(TUESDAY_CLOSING)
    assert service.expire_offers() == promotion.OfferSweep(1, 1, 0)
    lapsed = service.status(first)
    assert lapsed.standing is Standing.NONE and lapsed.enrolments == []
    nxt = service.status(second)
    assert nxt.standing is Standing.OFFERED
    # Offered on Tuesday 23:59: Wednesday, Thursday, Friday.
    assert nxt.offer_expires_at == datetime(2026, 3, 13, 22, 59)
    assert service.status(newcomer).position == 1
    assert [e.subject for e in actions(service, "offer_expired")] == ["patron#2"]
    assert [e.subject for e in actions(service, "offer_made")] == ["patron#2", "patron#3"]
    assert_never_oversold(service)


def test_a_claim_ends_a_lapsed_offer_by_itself(make_service) -> None:
    """No job has run: the next claim under the lock ends the lapsed offer first."""
    service, clock = offer_service(make_service)
    _, holder = add_patron(service)
    _, first = add_patron(service)
    service.claim(holder, "excel-basics")
    service.claim(first, "excel-basics")
    service.give_up_seat(holder)
    assert service.status(first).standing is Standing.OFFERED
    clock.set(TUESDAY_CLOSING + timedelta(hours=1))
    # Not swept yet, but over: the patron is never told "yours until" a time gone by.
    over = service.status(first)
    assert (over.standing, over.enrolments, over.offer_expires_at) == (Standing.NONE, [], None)
    _, late = add_patron(service)
    # The line is empty once the offer ends: the newcomer gets the seat it held.
    assert service.claim(late, "instagram").standing is Standing.SEATED
    assert service.status(first).standing is Standing.NONE
    assert_never_oversold(service)


def test_accept_the_seat(make_service) -> None:
    service, clock = offer_service(make_service)
    _, holder = add_patron(service)
    _, first = add_patron(service)
    service.claim(holder, "excel-basics")
    service.claim(first, "instagram")
    with pytest.raises(RegistryError) as info:
        service.accept_offer(first)
    assert info.value.code == "no_offer"
    service.give_up_seat(holder)
    clock.set(datetime(2026, 3, 9, 8, 0))
    status = service.accept_offer(first)
    assert status.standing is Standing.SEATED and status.offer_expires_at is None
    assert status.seated_at == datetime(2026, 3, 9, 8, 0)
    assert [e.course_slug for e in status.enrolments] == ["instagram"]
    with pytest.raises(RegistryError) as info:
        service.accept_offer(first)
    assert info.value.code == "no_offer"
    # Long after the offer's end, nothing takes the accepted seat away.
    clock.set(datetime(2026, 4, 1))
    assert service.expire_offers().expired == 0
    assert service.status(first).standing is Standing.SEATED
    assert_never_oversold(service)


def test_accepting_too_late_is_refused_and_the_seat_moves_on(make_service) -> None:
    service, clock = offer_service(make_service)
    _, holder = add_patron(service)
    _, first = add_patron(service)
    _, second = add_patron(service)
    for token in (holder, first, second):
        service.claim(token, "excel-basics")
    service.give_up_seat(holder)
    clock.set(TUESDAY_CLOSING + timedelta(minutes=5))
    with pytest.raises(RegistryError) as info:
        service.accept_offer(first)
    assert info.value.code == "offer_expired"
    assert service.status(first).standing is Standing.NONE  # the expiry was kept
    assert service.status(second).standing is Standing.OFFERED
    assert_never_oversold(service)


def test_no_thanks_gives_the_seat_to_the_next_in_line(make_service) -> None:
    service, _clock = offer_service(make_service)
    _, holder = add_patron(service)
    _, first = add_patron(service)
    _, second = add_patron(service)
    for token in (holder, first, second):
        service.claim(token, "excel-basics")
    service.give_up_seat(holder)
    service.decline_offer(first)
    assert service.status(first).standing is Standing.NONE
    assert service.status(first).enrolments == []
    assert service.status(second).standing is Standing.OFFERED
    with pytest.raises(RegistryError) as info:
        service.decline_offer(first)
    assert info.value.code == "no_offer"
    assert [e.actor for e in actions(service, "offer_declined")] == ["patron#2"]
    # Withdrawing from the last course while offered frees the held seat too.
    service.withdraw(second, "excel-basics")
    assert service.programme_status().seats_taken == 0
    assert_never_oversold(service)


def test_grant_stays_the_default(make_service) -> None:
    service = make_service(cap=1)
    _, holder = add_patron(service)
    _, first = add_patron(service)
    service.claim(holder, "excel-basics")
    service.claim(first, "excel-basics")
    service.give_up_seat(holder)
    assert service.status(first).standing is Standing.SEATED


# --- Pending accounts ----------------------------------------------------------------------------


def test_pending_accounts_wait_and_keep_their_place_until_verified(make_service) -> None:
    service = make_service(cap=1)
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5, 6], "verify", 14)},
                                              actor="test")
    _, pending = add_patron(service, library_code="KOR-CENTRUM")
    with service.store.read() as s:
        assert s.scalar(select(Patron.pending_since).where(Patron.id == 1)) is not None
    # A free seat, and still the pending account waits.
    assert service.claim(pending, "excel-basics").standing is Standing.WAITING
    assert service.programme_status().seats_taken == 0
    _, active = add_patron(service)
    assert service.claim(active, "excel-basics").standing is Standing.SEATED
    _, later = add_patron(service)
    service.claim(later, "excel-basics")
    assert service.status(pending).position == 1 and service.status(later).position == 2

    service.give_up_seat(active)  # the pending one is skipped, keeps their place
    assert service.status(later).standing is Standing.SEATED
    assert service.status(pending).position == 1

    # Verified at the desk: served as soon as a seat is free.
    staff = service.staff.login("els.maes", "demo-librarian")[1]
    service.verification.confirm_identity(1, staff)
    assert service.status(pending).standing is Standing.WAITING
    service.give_up_seat(later)
    assert service.status(pending).standing is Standing.SEATED
    assert_never_oversold(service)


# --- Fair share ----------------------------------------------------------------------------------


def seats_by_institution(service: RegistryService) -> dict[str, int]:
    with service.store.read() as s:
        rows = s.execute(select(Institution.code, func.count()).select_from(Place)
                         .join(Patron, Patron.id == Place.patron_id)
                         .join(Library, Library.id == Patron.library_id)
                         .join(Institution, Institution.id == Library.institution_id)
                         .where(Place.status.in_(("seated", "offered")))
                         .group_by(Institution.code)).all()
        return dict(rows)


def test_fair_share_after_a_cap_raise(make_service) -> None:
    service = make_service(cap=2)
    service.policies.set_seat_policy("grant", 3, True, {"ANT": "3", "KOR": "3"}, actor="test")
    ant = [add_patron(service)[1] for _ in range(6)]
    kor = [add_patron(service, library_code="KOR-CENTRUM")[1] for _ in range(2)]
    for token in ant + kor:
        service.claim(token, "excel-basics")
    assert seats_by_institution(service) == {"ANT": 2}

    # 1 → 6 seats: Antwerp's six would take them all; with fair share, Antwerp stops at 3.
    assert service.set_cap(6, actor="test") == 3
    assert seats_by_institution(service) == {"ANT": 3, "KOR": 2}
    assert [service.status(t).standing for t in ant] == [Standing.SEATED] * 3 + [
        Standing.WAITING] * 3
    assert [service.status(t).position for t in ant[3:]] == [1, 2, 3]  # they keep their place
    assert service.programme_status().seats_taken == 5  # one seat free, nobody eligible

    # A newcomer from Antwerp waits even so; one from Hasselt (no quota) takes the free seat.
    _, ant_new = add_patron(service)
    assert service.claim(ant_new, "instagram").standing is Standing.WAITING
    _, has_new = add_patron(service, library_code="HAS-CENTRUM")
    assert service.claim(has_new, "instagram").standing is Standing.SEATED
    assert_never_oversold(service)

    # A raised quota serves Antwerp's next at once, in order; fair share off ignores quotas.
    assert service.policies.set_seat_policy("grant", 3, True, {"ANT": "4", "KOR": "3"},
                                            actor="test") == 0  # no seat free
    service.set_cap(8, actor="test")
    assert [service.status(t).standing for t in ant[3:5]] == [Standing.SEATED, Standing.WAITING]
    assert service.policies.set_seat_policy("grant", 3, False, {}, actor="test") == 1
    assert service.status(ant[4]).standing is Standing.SEATED
    assert service.programme_status().seats_taken == 8
    assert_never_oversold(service)
    changed = actions(service, "settings_changed")
    assert changed[-1].detail["before"] == {"fair_share": True}
    assert changed[-1].detail["after"] == {"fair_share": False}


def test_fair_share_counts_offers_too(make_service) -> None:
    service = make_service(cap=1)
    service.policies.set_seat_policy("offer", 3, True, {"ANT": "1"}, actor="test")
    _, holder = add_patron(service)
    others = [add_patron(service)[1] for _ in range(2)]
    _, kor = add_patron(service, library_code="KOR-CENTRUM")
    for token in (holder, *others, kor):
        service.claim(token, "excel-basics")
    service.set_cap(3, actor="test")  # Antwerp holds 1 = its quota: only Kortrijk is offered
    assert service.status(kor).standing is Standing.OFFERED
    assert [service.status(t).standing for t in others] == [Standing.WAITING] * 2
    assert seats_by_institution(service) == {"ANT": 1, "KOR": 1}
    assert_never_oversold(service)


def test_the_preview_and_the_promotion_make_the_same_choice(make_service) -> None:
    service = make_service(cap=1)
    service.policies.set_seat_policy("grant", 3, True, {"ANT": "1"}, actor="test")
    tokens = [add_patron(service)[1] for _ in range(3)]
    _, kor = add_patron(service, library_code="KOR-CENTRUM")
    for token in (*tokens, kor):
        service.claim(token, "excel-basics")
    with service.store.write() as s:
        chosen = service.seats(s).next_in_line(3)
    assert chosen == [4]  # Antwerp at its quota: only Kortrijk's patron
    service.set_cap(4, actor="test")
    assert service.status(kor).standing is Standing.SEATED


def test_fair_share_through_the_cap_preview_and_its_fingerprint(make_service) -> None:
    """The coordinator's path: the preview shows the fair-share choice and why the other
    seats stay empty; a quota raised after it makes it stale; the fresh one is applied."""
    service = make_service(cap=1)
    service.policies.set_seat_policy("grant", 3, True, {"ANT": "1"}, actor="test")
    tokens = [add_patron(service)[1] for _ in range(3)]
    _, kor = add_patron(service, library_code="KOR-CENTRUM")
    for token in (*tokens, kor):
        service.claim(token, "excel-basics")
    preview = service.waitlist.preview_cap(4)
    assert [e.patron_id for e in preview.promoted] == [4]  # Antwerp holds its quota
    assert preview.left_empty == 2 and preview.pending == 0
    assert [(q.institution_code, q.quota, q.waiting) for q in preview.over_quota] == [
        ("ANT", 1, 2)]
    assert service.waitlist.preview_cap(4).fingerprint == preview.fingerprint  # stable

    service.policies.set_seat_policy("grant", 3, True, {"ANT": "2"}, actor="test")
    with pytest.raises(RegistryError) as refused:
        service.waitlist.change_cap(4, "Budget", actor="c", expected=preview.fingerprint)
    assert refused.value.code == "preview_stale"
    assert service.programme_status().cap == 1

    fresh = service.waitlist.preview_cap(4)
    assert [e.patron_id for e in fresh.promoted] == [2, 4]
    assert fresh.left_empty == 1 and fresh.over_quota[0].waiting == 1
    assert service.waitlist.change_cap(4, "Budget", actor="c",
                                       expected=fresh.fingerprint) == 2
    assert seats_by_institution(service) == {"ANT": 2, "KOR": 1}
    assert service.status(tokens[2]).position == 1  # over quota: keeps their place
    assert_never_oversold(service)


# --- Settings use cases --------------------------------------------------------------------------


def test_settings_changes_are_validated_and_audited(make_service) -> None:
    service = make_service()
    with pytest.raises(RegistryError) as info:
        service.policies.set_seat_policy("offer", "99", True, {"ANT": "x"}, actor="test")
    assert info.value.fields == {"offer_days": "offer_days_invalid", "quota_ANT": "quota_invalid"}
    assert actions(service, "settings_changed") == []
    service.policies.set_seat_policy("offer", "5", True, {"ANT": "100"}, actor="staff:c",
                                     where="desk")
    entry = actions(service, "settings_changed")[-1]
    assert (entry.actor, entry.terminal) == ("staff:c", "desk")
    assert entry.detail["before"] == {"fair_share": False, "offer_days": 3,
                                      "promotion": "grant", "quota_ANT": None}
    assert entry.detail["after"] == {"fair_share": True, "offer_days": 5,
                                     "promotion": "offer", "quota_ANT": 100}
    with pytest.raises(RegistryError) as info:
        service.policies.set_institution_policies(
            {"ANT": ([], "open", 14), "KOR": (["1"], "verify", "0")}, actor="test")
    assert info.value.fields == {"opening_days_ANT": "opening_days_required",
                                 "pending_days_KOR": "pending_days_invalid"}
    assert service.policies.set_institution_policies(
        {"ANT": ([1, 2, 3, 4, 5, 6], "open", 14), "KOR": ([2, 3, 4, 5, 6], "verify", 10)},
        actor="test") == 1  # Antwerp's values did not change
    entry = actions(service, "settings_changed")[-1]
    assert entry.institution == "KOR"
    assert entry.detail["after"] == {"opening_days": [2, 3, 4, 5, 6], "pending_days": 10,
                                     "verification": "verify"}
    settings = service.policies.settings()
    kor = next(i for i in settings.institutions if i.code == "KOR")
    assert (kor.opening_days, kor.verification, kor.pending_days) == ((2, 3, 4, 5, 6),
                                                                      "verify", 10)
    assert (settings.promotion, settings.offer_days, settings.fair_share) == ("offer", 5, True)


def test_never_more_seats_than_the_cap_through_a_mixed_day(make_service) -> None:
    """Offers, declines, expiries, quota changes and claims mixed: the counts always agree."""
    service, clock = offer_service(make_service, cap=3, days=1)
    service.policies.set_seat_policy("offer", 1, True, {"ANT": "2"}, actor="test")
    tokens = [add_patron(service, library_code=lib)[1]
              for lib in ("ANT-PERMEKE", "KOR-CENTRUM") * 5]
    for n, token in enumerate(tokens):
        service.claim(token, "excel-basics")
        assert_never_oversold(service)
        if n % 3 == 2:
            clock.set(clock.now + timedelta(days=1))
    for token in tokens:
        standing = service.status(token).standing
        if standing is Standing.OFFERED:
            service.decline_offer(token)
        elif standing is Standing.SEATED:
            service.give_up_seat(token)
        assert_never_oversold(service)
        assert service.programme_status().seats_taken <= 3


def test_patron_data_never_reaches_the_audit_log(make_service) -> None:
    service, _clock = offer_service(make_service)
    data = patron_data()
    card = service.register(data)
    token = service.login(card, data.password)[0]
    _, other = add_patron(service)
    service.claim(other, "excel-basics")
    service.claim(token, "excel-basics")
    service.give_up_seat(other)
    service.decline_offer(token)
    with service.store.read() as s:
        details = " ".join(str(e.detail) + e.subject for e in s.scalars(select(AuditEntry)))
    assert card not in details and data.email not in details and data.last_name not in details


# --- The coordinator's settings page -------------------------------------------------------------


def test_settings_page_is_for_coordinators_only(staff_client) -> None:
    page = staff_client("coordinator").get("/en/staff/settings")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Offer the seat and hold it" in html and "Seats held now" in html
    assert 'id="opening_days_KOR_7"' in html and 'id="quota_ANT"' in html
    for who in ("an.peeters", "it.support"):
        assert staff_client(who).get("/en/staff/settings").status_code == 403
        assert staff_client(who).post("/en/staff/settings/seats",
                                      data={"promotion": "offer"}).status_code == 403


def seat_form(**overrides: str) -> dict[str, str]:
    data = {"promotion": "grant", "offer_days": "3"}
    data.update(overrides)
    return data


def test_settings_page_refuses_bad_values_next_to_the_fields(staff_client, service) -> None:
    coordinator = staff_client("coordinator")
    bad = coordinator.post("/en/staff/settings/seats",
                           data=seat_form(promotion="offer", offer_days="0", quota_ANT="-4"))
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert html.count("Please give a whole number of opening days from 1 to 30.") == 2
    assert 'href="#quota_ANT"' in html and 'value="-4"' in html  # what was typed stays
    assert service.policies.settings().promotion == "grant"

    days = {f"opening_days_{code}": ["1", "2", "3", "4", "5", "6"]
            for code in ("ANT", "HAS", "KOR", "DEN", "DIL", "HAL", "SPL", "IVE", "MUN")}
    form = {**days, "opening_days_KOR": [], "verification_KOR": "verify",
            "pending_days_KOR": "400"}
    for inst in service.policies.settings().institutions:
        form.setdefault(f"verification_{inst.code}", inst.verification)
        form.setdefault(f"pending_days_{inst.code}", str(inst.pending_days))
    bad = coordinator.post("/en/staff/settings/institutions", data=form)
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "Please tick at least one opening day." in html
    assert 'href="#opening_days_KOR_1"' in html and 'href="#pending_days_KOR"' in html


def test_settings_page_saves_and_audits(staff_client, service) -> None:
    coordinator = staff_client("coordinator", "nl")
    ok = coordinator.post("/nl/staff/settings/seats",
                          data=seat_form(promotion="offer", offer_days="4", fair_share="y",
                                         quota_KOR="25"))
    assert ok.status_code == 302
    settings = service.policies.settings()
    assert (settings.promotion, settings.offer_days, settings.fair_share) == ("offer", 4, True)
    assert next(i for i in settings.institutions if i.code == "KOR").seat_quota == 25
    entry = actions(service, "settings_changed")[-1]
    assert entry.actor == "staff:coordinator" and entry.terminal
    assert entry.detail["after"]["quota_KOR"] == 25

    form: dict[str, object] = {}
    for inst in settings.institutions:
        form[f"opening_days_{inst.code}"] = [str(d) for d in inst.opening_days]
        form[f"verification_{inst.code}"] = inst.verification
        form[f"pending_days_{inst.code}"] = str(inst.pending_days)
    form["opening_days_DEN"] = ["2", "3", "4", "5", "6"]  # closed on Sunday and Monday
    form["verification_DEN"] = "verify"
    assert coordinator.post("/nl/staff/settings/institutions", data=form).status_code == 302
    den = next(i for i in service.policies.settings().institutions if i.code == "DEN")
    assert (den.opening_days, den.verification) == ((2, 3, 4, 5, 6), "verify")
    entry = actions(service, "settings_changed")[-1]
    assert entry.institution == "DEN" and entry.detail["before"]["verification"] == "open"
    page = coordinator.get("/nl/staff/settings").get_data(as_text=True)
    monday = re.search(r'<input[^>]*id="opening_days_DEN_1"[^>]*>', page)
    tuesday = re.search(r'<input[^>]*id="opening_days_DEN_2"[^>]*>', page)
    assert monday and "checked" not in monday.group(0)
    assert tuesday and "checked" in tuesday.group(0)


# --- The offer at the kiosk ----------------------------------------------------------------------


def offered_at_the_kiosk(service) -> str:  # type: ignore[no-untyped-def]
    """Offer and hold, one seat: a seated patron gives it up and it is offered to the one who
    waits; answers the card number of the latter (password PASSWORD)."""
    service.set_cap(1, actor="test")
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    _, holder = add_patron(service)
    card = service.register(patron_data())
    service.claim(holder, "excel-basics")  # seated
    service.claim(service.login(card, PASSWORD)[0], "excel-basics")  # waits
    service.give_up_seat(holder)  # the seat is offered to the one who waits
    return card


def test_the_offer_is_shown_at_log_in_and_accepted_or_declined(client, service) -> None:
    card = offered_at_the_kiosk(service)
    answer = client.post("/en/login", data={"identifier": card, "password": PASSWORD})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/en/my/offer")
    page = client.get("/en/my/offer").get_data(as_text=True)
    assert "Accept the seat" in page and "No thanks" in page and "(23:59)" in page
    assert "A seat is waiting for you" in client.get("/en/my").get_data(as_text=True)
    done = client.post("/en/my/offer/accept")
    assert done.status_code == 302 and "done=offer-accept" in done.headers["Location"]
    assert "The seat is yours" in client.get(done.headers["Location"]).get_data(as_text=True)
    # No offer any more: the page sends the patron to their courses.
    assert client.get("/en/my/offer").status_code == 302
    refused = client.post("/en/my/offer/decline", data=CONFIRMED)
    assert refused.status_code == 409
    assert "There is no seat offer for you" in refused.get_data(as_text=True)


def test_the_offer_comes_right_after_choosing_ones_own_password(client, service) -> None:  # type: ignore[no-untyped-def]
    """A patron with a printed one-time password and a seat held for them: first their own
    password, then the offer (not the catalogue, where they would not see it)."""
    from kiosk.registry.roles import Role, StaffView

    card = offered_at_the_kiosk(service)
    an = StaffView(2, "an.peeters", "An Peeters", Role.LIBRARIAN, "ANT", "ANT-PERMEKE",
                   "Permeke")
    [hit] = service.desk.find(an, card)
    secret = service.desk.set_password(an, hit.id)
    assert secret
    answer = client.post("/en/login", data={"identifier": card, "password": secret})
    assert answer.headers["Location"].endswith("/en/account/password")
    chosen = client.post("/en/account/password",
                         data={"old_password": secret, "new_password": "my own words"})
    assert chosen.status_code == 302 and chosen.headers["Location"].endswith("/en/my/offer")


def test_no_thanks_at_the_kiosk(client, service) -> None:
    card = offered_at_the_kiosk(service)
    client.post("/fr/login", data={"identifier": card, "password": PASSWORD})
    done = client.post("/fr/my/offer/decline", data=CONFIRMED)
    assert done.status_code == 302 and "done=offer-decline" in done.headers["Location"]
    assert service.programme_status().seats_taken == 0


def test_the_confirm_page_announces_the_place_in_line_the_claim_then_gives(client, service) -> None:  # type: ignore[no-untyped-def]
    """Fair share on and Antwerp at its quota: seats are free, but an Antwerp patron is told
    the waiting list and their number, not "a free seat", and that is what they get."""
    service.set_cap(5, actor="test")
    service.policies.set_seat_policy("offer", 3, True, {"ANT": "1"}, actor="test")
    _, holder = add_patron(service)
    service.claim(holder, "excel-basics")
    card = service.register(patron_data())
    client.post("/en/login", data={"identifier": card, "password": PASSWORD})
    page = client.get("/en/courses/excel-basics/enrol").get_data(as_text=True)
    assert "There is a free seat for you" not in page and "automatically" not in page
    assert "You will join the waiting list, at number 1, and keep this course." in page
    assert "The libraries of your institution already use all the seats" in page
    assert "we keep it for a few days for the first person in line" in page
    done = client.post("/en/courses/excel-basics/enrol")
    receipt = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Your place in line: 1" in receipt
    assert "The libraries of your institution already use all the seats" in receipt
    assert "automatically" not in receipt


def test_the_waiting_texts_follow_the_promotion_policy(client, service) -> None:  # type: ignore[no-untyped-def]
    service.set_cap(1, actor="test")
    _, holder = add_patron(service)
    service.claim(holder, "excel-basics")
    card = service.register(patron_data())
    client.post("/nl/login", data={"identifier": card, "password": PASSWORD})
    grant = client.get("/en/courses/excel-basics/enrol").get_data(as_text=True)
    assert "it goes to the first person in line straight away" in grant
    assert "All seats are taken at the moment." in grant
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    offer = client.get("/en/courses/excel-basics/enrol").get_data(as_text=True)
    assert "straight away" not in offer and "automatically" not in offer
    assert "we keep it for a few days for the first person in line" in offer


# --- Both clients: accept_offer / decline_offer ------------------------------------------------


def test_offers_through_both_clients(registry: Registry) -> None:  # noqa: F811 - the fixture
    """In-process and over HTTP alike: the answers, the refusals, the seat counts."""
    client, service = registry.client, registry.service
    service.set_cap(1, actor="test")
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    _, holder = registry.patron()
    _, first = registry.patron(language="fr")
    _, second = registry.patron()
    for token in (holder, first, second):
        client.claim(token, "excel-basics")
    for call in (lambda: client.accept_offer(first), lambda: client.decline_offer(first)):
        error = refusal(call)
        assert (error.code, error.fields, error.detail) == ("no_offer", {}, {})
    client.give_up_seat(holder)
    offered = client.status(first, "en")
    assert offered.standing is Standing.OFFERED and offered.offer_expires_at is not None
    assert offered.offer_expires_at.tzinfo is None and offered == service.status(first, "en")
    accepted = client.accept_offer(first)
    assert accepted == service.status(first, "fr")  # in the patron's language
    assert accepted.standing is Standing.SEATED and accepted.offer_expires_at is None
    client.give_up_seat(first)
    assert client.status(second, "en").standing is Standing.OFFERED
    assert client.decline_offer(second) is None
    assert client.status(second, "en").standing is Standing.NONE
    assert client.programme_status().seats_taken == 0
