"""Closed days (public holidays, one-off closures) per institution: an offer's hold skips
them, on the patron's own institution's week; the coordinator replaces an institution's
list, audited like the other settings. Registry rules on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from kiosk.registry import closures, promotion
from kiosk.registry.closures import CLOSED_DAYS_MAX, Closures, parse_closed_days
from kiosk.registry.domain import RegistryError, Standing
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, Institution
from tests.support.clock import Clock
from tests.support.factories import add_patron

# Wednesday 23 December 2026, 10:00 in Brussels (CET, UTC+1): Christmas is on the Friday.
WEDNESDAY_23_DEC = datetime(2026, 12, 23, 9, 0)
TUE_SAT = [2, 3, 4, 5, 6]
MON_SAT = [1, 2, 3, 4, 5, 6]


def closing(day: date) -> datetime:
    """23:59 in Brussels on a winter day, as the naive UTC the registry keeps."""
    return datetime(day.year, day.month, day.day, 22, 59)


# --- The arithmetic (pure) -------------------------------------------------------------------


def test_closed_days_are_not_opening_days() -> None:
    christmas = {date(2026, 12, 25), date(2026, 12, 26)}
    assert date(2026, 12, 23).isoweekday() == 3
    # Monday to Saturday, no closures: Thursday, Friday, Saturday.
    assert promotion.nth_opening_day(date(2026, 12, 23), MON_SAT, 3) == date(2026, 12, 26)
    # Christmas and the 26th closed: Thursday, (Sunday shut), Monday, Tuesday.
    assert promotion.nth_opening_day(date(2026, 12, 23), MON_SAT, 3, christmas) == date(
        2026, 12, 29)
    # Tuesday to Saturday as well: Thursday, Tuesday, Wednesday.
    assert promotion.nth_opening_day(date(2026, 12, 23), TUE_SAT, 3, christmas) == date(
        2026, 12, 30)
    # A closed day that is no opening day anyway, or before the offer, changes nothing.
    assert promotion.nth_opening_day(date(2026, 12, 23), TUE_SAT, 1,
                                     {date(2026, 12, 21), date(2026, 12, 23)}) == date(
        2026, 12, 24)
    assert promotion.offer_expiry(WEDNESDAY_23_DEC, TUE_SAT, 3, christmas) == closing(
        date(2026, 12, 30))


def test_days_as_the_settings_page_sends_them() -> None:
    assert parse_closed_days("25/12/2026\n2026-12-26, 1.1.2027;25/12/2026") == [
        date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)]
    assert parse_closed_days([date(2026, 12, 25), "", "26/12/2026"]) == [
        date(2026, 12, 25), date(2026, 12, 26)]
    assert parse_closed_days("  ") == []
    for bad in ("31/02/2026", "Christmas", "2026-12-25" + " " * 40 + "x"):
        with pytest.raises(RegistryError) as refused:
            parse_closed_days([bad])
        assert refused.value.fields == {"closed_days": "date_invalid"}
    many = [date(2027, 1, 1) + timedelta(days=n) for n in range(CLOSED_DAYS_MAX + 1)]
    with pytest.raises(RegistryError) as refused:
        parse_closed_days(many)
    assert refused.value.fields == {"closed_days": "too_long"}


# --- The registry ----------------------------------------------------------------------------


def audit(service: RegistryService) -> list[tuple[str, str, dict]]:
    with service.store.read() as s:
        return [(e.actor, e.institution, dict(e.detail)) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "settings_changed")
            .order_by(AuditEntry.id))]


def test_an_institutions_closed_days_are_replaced_and_audited(make_service) -> None:
    service = make_service()
    closed = Closures(service)
    assert closed.closed_days() == {}
    assert closed.set_closed_days("KOR", "25/12/2026 26/12/2026", actor="staff:coordinator",
                                  where="desk") is True
    assert closed.set_closed_days("ANT", ["2026-12-25"], actor="staff:coordinator") is True
    assert closed.set_closed_days("KOR", ["2026-12-26", "2026-12-25"],
                                  actor="staff:coordinator") is False  # the same list
    assert closed.closed_days() == {"ANT": [date(2026, 12, 25)],
                                    "KOR": [date(2026, 12, 25), date(2026, 12, 26)]}
    assert closed.set_closed_days("KOR", ["2027-01-01"], actor="staff:coordinator") is True
    assert closed.closed_days(since=date(2027, 1, 1)) == {"KOR": [date(2027, 1, 1)]}
    assert audit(service) == [
        ("staff:coordinator", "KOR", {"part": "closed_days", "before": {"closed_days": []},
                                      "after": {"closed_days": ["2026-12-25", "2026-12-26"]}}),
        ("staff:coordinator", "ANT", {"part": "closed_days", "before": {"closed_days": []},
                                      "after": {"closed_days": ["2026-12-25"]}}),
        ("staff:coordinator", "KOR", {"part": "closed_days",
                                      "before": {"closed_days": ["2026-12-25", "2026-12-26"]},
                                      "after": {"closed_days": ["2027-01-01"]}}),
    ]
    for code, days, fields in (("XXX", [], {"institution_XXX": "institution_unknown"}),
                               ("KOR", ["someday"], {"closed_days_KOR": "date_invalid"})):
        with pytest.raises(RegistryError) as refused:
            closed.set_closed_days(code, days, actor="staff:coordinator")
        assert refused.value.fields == fields
    assert len(audit(service)) == 3


def test_offer_ends_per_institution_from_its_own_week_and_closed_days(make_service) -> None:
    service = make_service()
    service.policies.set_institution_policies({"KOR": (TUE_SAT, "open", 14)}, actor="test")
    Closures(service).set_closed_days("KOR", ["2026-12-25", "2026-12-26"], actor="test")
    Closures(service).set_closed_days("ANT", ["2026-12-25"], actor="test")
    with service.store.read() as s:
        ids = dict(s.execute(select(Institution.code, Institution.id)).all())
        ends = closures.offer_ends(s, [ids["ANT"], ids["KOR"], ids["HAS"]], WEDNESDAY_23_DEC, 3)
    assert ends == {ids["ANT"]: closing(date(2026, 12, 28)),  # Thu, Sat, Mon
                    ids["KOR"]: closing(date(2026, 12, 30)),  # Thu, Tue, Wed
                    ids["HAS"]: closing(date(2026, 12, 26))}  # Thu, Fri, Sat: no closures


def test_an_offer_made_on_23_december_holds_over_christmas(make_service) -> None:
    """The real promotion, frozen clock: Kortrijk opens Tuesday to Saturday and closes on
    the 25th and 26th; Antwerp opens Monday to Saturday and closes on the 25th only. Each
    patron's offer ends on their own institution's third opening day."""
    clock = Clock(WEDNESDAY_23_DEC - timedelta(hours=1))
    service = make_service(cap=0, clock=clock, session_idle=timedelta(days=30),
                           session_max=timedelta(days=30))
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    service.policies.set_institution_policies({"KOR": (TUE_SAT, "open", 14)}, actor="test")
    Closures(service).set_closed_days("KOR", "25/12/2026 26/12/2026", actor="test")
    Closures(service).set_closed_days("ANT", "25/12/2026", actor="test")
    _, ant = add_patron(service, library_code="ANT-PERMEKE")
    _, kor = add_patron(service, library_code="KOR-CENTRUM")
    service.claim(ant, "excel-basics")
    service.claim(kor, "excel-basics")

    clock.now = WEDNESDAY_23_DEC
    assert service.set_cap(2, actor="test") == 2
    assert service.status(ant).standing is service.status(kor).standing is Standing.OFFERED
    assert service.status(ant).offer_expires_at == closing(date(2026, 12, 28))
    assert service.status(kor).offer_expires_at == closing(date(2026, 12, 30))

    # Monday 28th, 23:58: Antwerp's offer holds; a minute later it is gone, Kortrijk's not.
    clock.now = closing(date(2026, 12, 28)) - timedelta(minutes=1)
    assert service.expire_offers().expired == 0
    clock.now = closing(date(2026, 12, 28))
    assert service.expire_offers().expired == 1
    assert service.status(ant).standing is Standing.NONE
    assert service.status(kor).standing is Standing.OFFERED
