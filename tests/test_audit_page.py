"""The audit log page: filters (action, actor, patron, institution, Belgian dates), newest
first, paged, readable details; only coordinators read it."""

from __future__ import annotations

import re
from datetime import datetime

from kiosk.registry.staff import record


def write(service, at: datetime, actor: str, action: str, **kwargs: object) -> None:
    with service.store.write() as s:
        record(s, at, actor, action, **kwargs)


def rows(response) -> list[str]:
    """The actions shown, top to bottom (third column)."""
    body = response.get_data(as_text=True)
    tbody = body.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in body else ""
    return [cells[2] for cells in (re.findall(r"<td>(.*?)</td>", tr, re.S)
                                   for tr in tbody.split("<tr>")[1:])]


def seeded(service) -> None:
    # Times are naive UTC. 2025-12-01 23:30 UTC is 00:30 on 2 December in Belgium.
    write(service, datetime(2025, 11, 30, 9, 0), "staff:an.peeters", "waiting_list_removed",
          subject="patron#7", institution="ANT", reason="Moved abroad", position=3)
    write(service, datetime(2025, 12, 1, 22, 30), "staff:els.maes", "waiting_list_removed",
          subject="patron#8", institution="KOR", reason="Asked to leave", position=1)
    write(service, datetime(2025, 12, 1, 23, 30), "staff:coordinator", "cap_changed",
          **{"from": 1000, "to": 2000, "promoted": 12, "reason": "New budget"})
    write(service, datetime(2025, 12, 2, 10, 0), "staff:coordinator", "waiting_list_moved",
          subject="patron#7", institution="ANT", **{"from": 5, "to": 1, "reason": "Desk"})


def test_newest_first_with_readable_details(service, staff_client) -> None:
    seeded(service)
    response = staff_client("coordinator").get("/en/staff/audit?institution=&until=2025-12-31")
    assert response.status_code == 200
    shown = rows(response)
    assert shown[:4] == ["Moved in the waiting list", "Cap changed",
                         "Removed from the waiting list", "Removed from the waiting list"]
    body = response.get_data(as_text=True)
    assert "<dt>Reason</dt><dd>New budget</dd>" in body
    assert "<dt>Promoted</dt><dd>12</dd>" in body
    assert "Dec 2, 2025, 12:30:00\u202fAM" in body  # Belgian time (UTC+1 in winter)


def test_each_filter(service, staff_client) -> None:
    seeded(service)
    client = staff_client("coordinator")
    assert rows(client.get("/en/staff/audit?action=cap_changed")) == ["Cap changed"]
    assert len(rows(client.get("/en/staff/audit?actor=els.maes"))) == 1
    assert rows(client.get("/en/staff/audit?subject=patron%237")) == [
        "Moved in the waiting list", "Removed from the waiting list"]
    assert len(rows(client.get("/en/staff/audit?subject=7"))) == 2  # the number alone
    assert rows(client.get("/en/staff/audit?institution=KOR")) == [
        "Removed from the waiting list"]
    # Belgian days: 22:30 UTC on 1 Dec is still 1 Dec in Brussels, 23:30 UTC is 2 Dec.
    on_2nd = client.get("/en/staff/audit?since=2025-12-02&until=2025-12-02")
    assert rows(on_2nd) == ["Moved in the waiting list", "Cap changed"]
    on_1st = client.get("/en/staff/audit?since=2025-12-01&until=2025-12-01")
    assert rows(on_1st) == ["Removed from the waiting list"]
    combined = client.get("/en/staff/audit?action=waiting_list_removed&until=2025-11-30")
    assert "patron#7" in combined.get_data(as_text=True) and len(rows(combined)) == 1


def test_bad_dates_are_refused_with_a_message(service, staff_client) -> None:
    client = staff_client("coordinator")
    response = client.get("/en/staff/audit?since=yesterday")
    assert response.status_code == 422 and 'id="since-error"' in response.get_data(as_text=True)
    reversed_ = client.get("/en/staff/audit?since=2025-12-02&until=2025-12-01")
    assert reversed_.status_code == 422
    assert "before the first date" in reversed_.get_data(as_text=True)


def test_paged(service, staff_client) -> None:
    for minute in range(55):
        write(service, datetime(2025, 12, 3, 9, minute), "staff:coordinator", "cap_changed",
              **{"from": minute, "to": minute + 1, "promoted": 0, "reason": "r"})
    client = staff_client("coordinator")
    first = client.get("/en/staff/audit?action=cap_changed")
    assert len(rows(first)) == 50 and "Page 1 of 2" in first.get_data(as_text=True)
    assert "page=2" in first.get_data(as_text=True)
    second = client.get("/en/staff/audit?action=cap_changed&page=2")
    assert len(rows(second)) == 5
    assert "<dt>From</dt><dd>0</dd>" in second.get_data(as_text=True)  # the oldest last


def test_only_coordinators_read_the_audit_log(staff_client) -> None:
    for who in ("an.peeters", "els.maes", "it.support"):
        assert staff_client(who).get("/en/staff/audit").status_code == 403
    assert staff_client("coordinator", "fr").get("/fr/staff/audit").status_code == 200
