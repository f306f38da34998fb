"""The coordinator's cap change (preview, then confirm) and the staff waiting list: the
registry rules on SQLite and PostgreSQL, the pages through the staff client."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from kiosk.registry.domain import RegistryError, Standing
from kiosk.registry.roles import Role, StaffView
from kiosk.registry.staff import AuditQuery
from kiosk.registry.store import EnrolmentRow, Place
from tests.support.factories import add_patron

COORDINATOR = StaffView(id=1, username="coordinator", display_name="Sofie Claes",
                        role=Role.COORDINATOR, institution_code=None,
                        library_code="MUN-MUNTPUNT", library_name="Muntpunt")
ANT_LIBRARIAN = StaffView(id=2, username="an.peeters", display_name="An Peeters",
                          role=Role.LIBRARIAN, institution_code="ANT",
                          library_code="ANT-PERMEKE", library_name="Permeke")


def line(service, count: int, libraries: tuple[str, ...] = ("ANT-PERMEKE",)) -> list[str]:
    """`count` patrons who claimed a course, in this order; answers their tokens."""
    tokens = []
    for i in range(count):
        _card, token = add_patron(service, library_code=libraries[i % len(libraries)])
        service.claim(token, "instagram")
        tokens.append(token)
    return tokens


def patron_id(service, token: str) -> int:
    with service.store.read() as s:
        return service.patron_sessions.session(s, token).patron_id


def audit(service, action: str) -> list:
    entries, _total = service.staff.audit(AuditQuery(action=action), COORDINATOR)
    return entries


# --- The cap: preview, then confirm ------------------------------------------------------

def test_cap_raise_promotes_exactly_the_previewed_patrons_in_order(make_service) -> None:
    service = make_service(cap=2)
    tokens = line(service, 7)  # 2 seated, 5 waiting
    ids = [patron_id(service, t) for t in tokens]
    preview = service.waitlist.preview_cap(5)
    assert (preview.current_cap, preview.new_cap, preview.seats_taken, preview.waiting) == (
        2, 5, 2, 5)
    assert [e.patron_id for e in preview.promoted] == ids[2:5]
    assert [e.position for e in preview.promoted] == [1, 2, 3]
    assert preview.promoted[0].courses == (service.course("instagram", "en").title,)
    assert service.waitlist.change_cap(5, "Extra budget", actor="staff:coordinator",
                                       expected=preview.fingerprint) == 3
    standings = [service.status(t, "en").standing for t in tokens]
    assert standings == [Standing.SEATED] * 5 + [Standing.WAITING] * 2
    assert [service.status(t, "en").position for t in tokens[5:]] == [1, 2]
    (entry,) = audit(service, "cap_changed")
    assert entry.detail == {"from": 2, "to": 5, "promoted": 3, "reason": "Extra budget"}
    assert entry.actor == "staff:coordinator"


def test_a_changed_line_is_not_applied_and_shows_a_new_preview(make_service) -> None:
    service = make_service(cap=1)
    tokens = line(service, 4)
    preview = service.waitlist.preview_cap(2)
    service.leave_waiting_list(tokens[1])  # the one the preview promoted leaves meanwhile
    with pytest.raises(RegistryError) as refused:
        service.waitlist.change_cap(2, "Budget", actor="c", expected=preview.fingerprint)
    assert refused.value.code == "preview_stale"
    assert service.programme_status().cap == 1 and audit(service, "cap_changed") == []
    fresh = service.waitlist.preview_cap(2)
    assert [e.patron_id for e in fresh.promoted] == [patron_id(service, tokens[2])]
    assert service.waitlist.change_cap(2, "Budget", actor="c", expected=fresh.fingerprint) == 1
    assert service.status(tokens[2], "en").standing is Standing.SEATED


def test_lowering_the_cap_previews_no_promotion_and_keeps_every_seat(make_service) -> None:
    service = make_service(cap=4)
    tokens = line(service, 5)
    preview = service.waitlist.preview_cap(2)
    assert preview.lowering and preview.promoted == [] and preview.kept_above_cap == 2
    assert service.waitlist.change_cap(2, "Budget cut", actor="c",
                                       expected=preview.fingerprint) == 0
    assert [service.status(t, "en").standing for t in tokens] == (
        [Standing.SEATED] * 4 + [Standing.WAITING])
    service.give_up_seat(tokens[0])  # 3 seated, still above the cap of 2: no new grant
    assert service.status(tokens[4], "en").standing is Standing.WAITING


@pytest.mark.parametrize("reason", ["", "   ", "x" * 201])
def test_a_cap_change_needs_a_reason(make_service, reason: str) -> None:
    service = make_service(cap=1)
    with pytest.raises(RegistryError) as refused:
        service.waitlist.change_cap(3, reason, actor="c")
    assert refused.value.code == "invalid" and "reason" in refused.value.fields
    assert service.programme_status().cap == 1


def test_cap_pages_preview_then_confirm(service, staff_client) -> None:
    service.set_cap(1, actor="test")
    tokens = line(service, 4)
    ids = [patron_id(service, t) for t in tokens]
    client = staff_client("coordinator")
    assert client.get("/en/staff/seats").status_code == 200
    missing = client.post("/en/staff/seats", data={"cap": "3", "reason": ""})
    assert missing.status_code == 422
    assert 'id="reason-error"' in missing.get_data(as_text=True)
    bad_cap = client.post("/en/staff/seats", data={"cap": "-1", "reason": "x"})
    assert bad_cap.status_code == 422 and 'id="cap-error"' in bad_cap.get_data(as_text=True)
    page = client.post("/en/staff/seats", data={"cap": "3", "reason": "Budget"})
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.findall(r"patron#\d+", body) == [f"patron#{i}" for i in ids[1:3]]
    assert service.programme_status().cap == 1  # a preview changes nothing
    fingerprint = re.search(r'name="fingerprint" type="hidden" value="(\w+)"', body)
    assert fingerprint
    done = client.post("/en/staff/seats/confirm", data={
        "cap": "3", "reason": "Budget", "fingerprint": fingerprint.group(1)})
    assert done.status_code == 302
    assert service.programme_status().seats_taken == 3
    assert [service.status(t, "en").standing for t in tokens] == (
        [Standing.SEATED] * 3 + [Standing.WAITING])
    assert "2 patrons were promoted" in client.get("/en/staff/seats").get_data(as_text=True)


def test_a_stale_confirmation_shows_the_new_preview(service, staff_client) -> None:
    service.set_cap(1, actor="test")
    tokens = line(service, 3)
    client = staff_client("coordinator")
    body = client.post("/en/staff/seats", data={"cap": "2", "reason": "B"}).get_data(
        as_text=True)
    fingerprint = re.search(r'name="fingerprint" type="hidden" value="(\w+)"', body).group(1)
    service.leave_waiting_list(tokens[1])
    again = client.post("/en/staff/seats/confirm",
                        data={"cap": "2", "reason": "B", "fingerprint": fingerprint})
    assert again.status_code == 409
    text = again.get_data(as_text=True)
    assert "The waiting list changed since the preview" in text
    assert f"patron#{patron_id(service, tokens[2])}" in text
    assert service.programme_status().cap == 1


def test_a_policy_changed_since_the_preview_is_not_applied(make_service) -> None:
    """Previewed under "grant", the line unchanged, but the policy now says "offer" (or
    other offer days, or fair share with its quotas): the change is refused, not applied
    under a rule the coordinator never saw."""
    service = make_service(cap=1)
    tokens = line(service, 3)
    preview = service.waitlist.preview_cap(3)
    assert preview.promotion == "grant"
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    with pytest.raises(RegistryError) as refused:
        service.waitlist.change_cap(3, "Budget", actor="c", expected=preview.fingerprint)
    assert refused.value.code == "preview_stale"
    assert service.programme_status().cap == 1
    for change in (("offer", 5, False, {}), ("offer", 5, True, {}),
                   ("offer", 5, True, {"KOR": "10"})):
        before = service.waitlist.preview_cap(3)
        service.policies.set_seat_policy(*change, actor="test")
        assert service.waitlist.preview_cap(3).fingerprint != before.fingerprint, change
    fresh = service.waitlist.preview_cap(3)
    assert fresh.promotion == "offer"
    assert service.waitlist.change_cap(3, "Budget", actor="c", expected=fresh.fingerprint) == 2
    assert [service.status(t, "en").standing for t in tokens] == [
        Standing.SEATED, Standing.OFFERED, Standing.OFFERED]


def test_a_policy_change_between_preview_and_confirm_shows_the_new_preview(
        service, staff_client) -> None:
    service.set_cap(1, actor="test")
    line(service, 3)
    client = staff_client("coordinator")
    body = client.post("/en/staff/seats", data={"cap": "3", "reason": "B"}).get_data(
        as_text=True)
    assert "Each gets an offer" not in body
    fingerprint = re.search(r'name="fingerprint" type="hidden" value="(\w+)"', body).group(1)
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    again = client.post("/en/staff/seats/confirm",
                        data={"cap": "3", "reason": "B", "fingerprint": fingerprint})
    assert again.status_code == 409
    assert "Each gets an offer that holds their seat" in again.get_data(as_text=True)
    assert service.programme_status().cap == 1


def fair_share_line(service) -> dict[str, list[str]]:
    """Cap 1, fair share with Antwerp's quota 1: Antwerp's first holds the seat; behind them
    three more of Antwerp, one of Kortrijk pending an identity check, one of Kortrijk."""
    service.policies.set_seat_policy("grant", 3, True, {"ANT": "1"}, actor="test")
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5, 6], "verify", 14)},
                                              actor="test")
    ant = line(service, 4)
    pending = line(service, 1, ("KOR-CENTRUM",))
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5, 6], "open", 14)},
                                              actor="test")
    kor = line(service, 1, ("KOR-CENTRUM",))
    return {"ant": ant, "pending": pending, "kor": kor}


def test_the_preview_says_why_freed_seats_stay_empty(make_service) -> None:
    service = make_service(cap=1)
    tokens = fair_share_line(service)
    preview = service.waitlist.preview_cap(6)  # 5 seats freed, 5 waiting: 1 may take one
    assert [e.patron_id for e in preview.promoted] == [patron_id(service, tokens["kor"][0])]
    assert (preview.left_empty, preview.pending) == (4, 1)
    assert [(q.institution_code, q.institution_name, q.quota, q.waiting)
            for q in preview.over_quota] == [("ANT", "Antwerp Public Libraries", 1, 3)]
    assert service.waitlist.preview_cap(6, "fr").over_quota[0].institution_name == (
        "Bibliothèques d’Anvers")
    assert service.waitlist.change_cap(6, "Budget", actor="c",
                                       expected=preview.fingerprint) == 1
    assert service.programme_status().seats_taken == 2  # four seats stay empty, as said
    # Nothing held back: nothing to explain.
    plain = make_service(cap=1)
    line(plain, 3)
    assert (plain.waitlist.preview_cap(5).left_empty, plain.waitlist.preview_cap(5).pending,
            plain.waitlist.preview_cap(5).over_quota) == (0, 0, ())


def test_the_preview_page_explains_empty_seats_in_plain_words(service, staff_client) -> None:
    service.set_cap(1, actor="test")
    fair_share_line(service)
    body = staff_client("coordinator").post(
        "/en/staff/seats", data={"cap": "6", "reason": "Budget"}).get_data(as_text=True)
    assert "1 patron will be promoted" in body
    assert "nobody is waiting for a seat" not in body
    assert "4 seats stay empty for now, although patrons are waiting" in body
    assert ("3 patrons of Antwerp Public Libraries wait, but Antwerp Public Libraries has "
            "reached its seat quota (1) under fair share.") in body
    assert "1 patron waits for an identity check at the desk, and gets a seat once checked." \
        in body
    nl = staff_client("coordinator", "nl").post(
        "/nl/staff/seats", data={"cap": "6", "reason": "Budget"}).get_data(as_text=True)
    assert "Bibliotheken Antwerpen" in nl and "4 plaatsen blijven" in nl


def test_only_a_coordinator_changes_the_cap(staff_client) -> None:
    for who in ("an.peeters", "it.support"):
        client = staff_client(who)
        assert client.get("/en/staff/seats").status_code == 403
        assert client.post("/en/staff/seats/confirm",
                           data={"cap": "9", "reason": "x", "fingerprint": "f"}).status_code == 403


# --- The waiting list ----------------------------------------------------------------------

def test_remove_takes_the_place_and_the_courses_with_a_reason(service, staff_client) -> None:
    service.set_cap(0, actor="test")
    tokens = line(service, 3)
    target = patron_id(service, tokens[0])
    client = staff_client("an.peeters")
    assert client.get(f"/en/staff/waiting-list/{target}/remove").status_code == 200
    refused = client.post(f"/en/staff/waiting-list/{target}/remove", data={"reason": " "})
    assert refused.status_code == 422
    assert service.status(tokens[0], "en").standing is Standing.WAITING
    done = client.post(f"/en/staff/waiting-list/{target}/remove",
                       data={"reason": "Moved abroad"})
    assert done.status_code == 302
    assert service.status(tokens[0], "en").standing is Standing.NONE
    with service.store.read() as s:
        assert s.scalar(select(func.count()).where(EnrolmentRow.patron_id == target)) == 0
    assert [service.status(t, "en").position for t in tokens[1:]] == [1, 2]
    assert service.programme_status().waiting == 2
    (entry,) = audit(service, "waiting_list_removed")
    assert entry.subject == f"patron#{target}" and entry.institution == "ANT"
    assert entry.detail["reason"] == "Moved abroad" and entry.detail["position"] == 1
    assert entry.detail["assisted_by"] == "An Peeters (Bibliotheek Permeke)"
    assert entry.actor == "staff:an.peeters"


def test_move_renumbers_the_line(make_service) -> None:
    service = make_service(cap=0)
    tokens = line(service, 5)
    ids = [patron_id(service, t) for t in tokens]
    service.leave_waiting_list(tokens[2])  # a gap in the queue numbers
    order = [ids[0], ids[1], ids[3], ids[4]]

    def current() -> list[int]:
        return [e.patron_id for e in service.waitlist.page(COORDINATOR, "en").entries]

    assert current() == order
    assert service.waitlist.move(ids[4], 1, "Priority case", COORDINATOR) == 1
    assert current() == [ids[4], ids[0], ids[1], ids[3]]
    service.waitlist.move(ids[4], 4, "Mistake", COORDINATOR)
    assert current() == order
    service.waitlist.move(ids[1], 3, "Down one", COORDINATOR)
    assert current() == [ids[0], ids[3], ids[1], ids[4]]
    assert [service.status(tokens[i], "en").position for i in (0, 3, 1, 4)] == [1, 2, 3, 4]
    with service.store.read() as s:  # the same numbers dealt out again, still unique
        numbers = s.scalars(select(Place.queue_no).where(Place.status == "waiting")).all()
    assert sorted(numbers) == [1, 2, 4, 5]
    with pytest.raises(RegistryError) as refused:
        service.waitlist.move(ids[0], 5, "Too far", COORDINATOR)
    assert refused.value.fields == {"position": "position_invalid"}
    with pytest.raises(RegistryError) as refused:
        service.waitlist.move(ids[0], 2, "Not mine to do", ANT_LIBRARIAN)
    assert refused.value.code == "forbidden"
    moves = audit(service, "waiting_list_moved")
    assert [(m.detail["from"], m.detail["to"]) for m in moves] == [(2, 3), (1, 4), (4, 1)]
    assert moves[-1].detail["reason"] == "Priority case"
    # A seat freed now goes to the new first in line.
    service.waitlist.change_cap(1, "One seat", actor="c")
    assert service.status(tokens[0], "en").standing is Standing.SEATED


def test_only_a_coordinator_moves_an_entry_on_the_pages(service, staff_client) -> None:
    service.set_cap(0, actor="test")
    tokens = line(service, 3)
    last = patron_id(service, tokens[2])
    librarian = staff_client("an.peeters")
    assert "/move" not in librarian.get("/en/staff/waiting-list").get_data(as_text=True)
    assert librarian.get(f"/en/staff/waiting-list/{last}/move").status_code == 403
    assert librarian.post(f"/en/staff/waiting-list/{last}/move",
                          data={"position": "1", "reason": "x"}).status_code == 403
    coordinator = staff_client("coordinator")
    no_reason = coordinator.post(f"/en/staff/waiting-list/{last}/move",
                                 data={"position": "1", "reason": ""})
    assert no_reason.status_code == 422
    too_far = coordinator.post(f"/en/staff/waiting-list/{last}/move",
                               data={"position": "9", "reason": "x"})
    assert too_far.status_code == 422
    assert "between 1 and 3" in too_far.get_data(as_text=True)
    up = coordinator.post(f"/en/staff/waiting-list/{last}/move",
                          data={"direction": "up", "reason": "Waited at the desk"})
    assert up.status_code == 302
    assert service.status(tokens[2], "en").position == 2
    to = coordinator.post(f"/en/staff/waiting-list/{last}/move",
                          data={"direction": "to", "position": "1", "reason": "Priority"})
    assert to.status_code == 302
    assert [service.status(t, "en").position for t in tokens] == [2, 3, 1]
    down = coordinator.post(f"/en/staff/waiting-list/{last}/move",
                            data={"direction": "down", "reason": "Back"})
    assert down.status_code == 302
    assert [service.status(t, "en").position for t in tokens] == [1, 3, 2]


def test_a_librarian_sees_only_their_institutions_patrons(service, staff_client) -> None:
    service.set_cap(0, actor="test")
    tokens = line(service, 4, libraries=("ANT-PERMEKE", "KOR-CENTRUM"))
    ant = [patron_id(service, t) for t in tokens[0::2]]
    kor = [patron_id(service, t) for t in tokens[1::2]]
    body = staff_client("an.peeters").get("/en/staff/waiting-list").get_data(as_text=True)
    shown = set(re.findall(r"patron#\d+", body))
    assert shown == {f"patron#{i}" for i in ant}
    rows = re.findall(r'<td class="number">(\d+)</td>\s*<td>(patron#\d+)', body)
    assert rows == [("1", f"patron#{ant[0]}"), ("3", f"patron#{ant[1]}")]  # global places
    kor_client = staff_client("els.maes")
    kor_body = kor_client.get("/nl/staff/waiting-list").get_data(as_text=True)
    assert set(re.findall(r"patron#\d+", kor_body)) == {f"patron#{i}" for i in kor}
    librarian = staff_client("an.peeters")
    assert librarian.get(f"/en/staff/waiting-list/{kor[0]}/remove").status_code == 404
    assert librarian.post(f"/en/staff/waiting-list/{kor[0]}/remove",
                          data={"reason": "x"}).status_code == 404
    assert service.status(tokens[1], "en").standing is Standing.WAITING
    with pytest.raises(RegistryError):
        service.waitlist.remove(kor[0], "x", ANT_LIBRARIAN)
    everyone = staff_client("coordinator").get("/en/staff/waiting-list").get_data(as_text=True)
    assert set(re.findall(r"patron#\d+", everyone)) == {f"patron#{i}" for i in ant + kor}
    kor_only = staff_client("coordinator").get("/en/staff/waiting-list?institution=KOR")
    assert set(re.findall(r"patron#\d+", kor_only.get_data(as_text=True))) == {
        f"patron#{i}" for i in kor}


def test_the_list_shows_course_titles_in_the_staff_language(service, staff_client) -> None:
    service.set_cap(0, actor="test")
    (token,) = line(service, 1)
    titles = {lang: service.course("instagram", lang).title for lang in ("nl", "fr")}
    for lang, title in titles.items():
        body = staff_client("coordinator", lang).get(f"/{lang}/staff/waiting-list")
        assert title in body.get_data(as_text=True)


def test_the_list_is_paged_with_global_places(make_service) -> None:
    service = make_service(cap=0)
    tokens = line(service, 5, libraries=("ANT-PERMEKE", "KOR-CENTRUM"))
    ids = [patron_id(service, t) for t in tokens]
    second = service.waitlist.page(COORDINATOR, "en", page=2, per_page=2)
    assert (second.total, second.pages, second.page) == (5, 3, 2)
    assert [(e.position, e.patron_id) for e in second.entries] == [(3, ids[2]), (4, ids[3])]
    ant = service.waitlist.page(ANT_LIBRARIAN, "en", page=2, per_page=2)
    assert (ant.total, ant.waiting) == (3, 5)
    assert [(e.position, e.patron_id) for e in ant.entries] == [(5, ids[4])]
    assert service.waitlist.page(COORDINATOR, "en", page=99, per_page=2).page == 3
    card = service.waitlist.page(COORDINATOR, "en").entries[0].card_masked
    assert card[:9] == "•" * 9 and card[9:].isdigit() and len(card) == 13


def test_the_preview_counts_seats_of_lapsed_offers_like_the_change_does(make_service) -> None:
    """With "offer and hold", an offer past its time is ended before seats are counted: the
    preview must show the line as the change will see it."""
    from datetime import timedelta

    from sqlalchemy import update

    from kiosk.registry.services import utcnow
    from kiosk.registry.store import Programme

    now = [utcnow()]
    service = make_service(cap=1, clock=lambda: now[0])
    with service.store.write() as s:
        s.execute(update(Programme).values(promotion="offer", offer_days=1))
    tokens = line(service, 4)
    ids = [patron_id(service, t) for t in tokens]
    service.give_up_seat(tokens[0])  # the seat is offered to the first in line
    with service.store.read() as s:
        assert s.get(Place, ids[1]).status == "offered"
    now[0] += timedelta(days=10)  # the offer lapsed; nobody has touched the registry since
    preview = service.waitlist.preview_cap(2)
    assert [e.patron_id for e in preview.promoted] == ids[2:4]
    with service.store.read() as s:  # the preview kept nothing
        assert s.get(Place, ids[1]).status == "offered"
    assert service.waitlist.change_cap(2, "Budget", actor="c",
                                       expected=preview.fingerprint) == 2
    with service.store.read() as s:
        assert [getattr(s.get(Place, i), "status", None) for i in ids] == [
            None, None, "offered", "offered"]


def test_the_list_flags_patrons_still_waiting_for_an_identity_check(service, staff_client) -> None:
    service.set_cap(0, actor="test")
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5, 6], "verify", 14)},
                                              actor="test")
    active, pending = line(service, 2, libraries=("ANT-PERMEKE", "KOR-CENTRUM"))
    flags = {"en": "Pending: identity not checked yet",
             "nl": "In afwachting: identiteit nog niet gecontroleerd",
             "fr": "En attente\u00a0: identité pas encore vérifiée"}
    for lang, flag in flags.items():
        body = staff_client("coordinator", lang).get(f"/{lang}/staff/waiting-list")
        rows = body.get_data(as_text=True).split("<tr>")[2:]
        assert [flag in row for row in rows] == [False, True]
    kor = staff_client("els.maes")
    one = kor.get(f"/en/staff/waiting-list/{patron_id(service, pending)}/remove")
    assert flags["en"] in one.get_data(as_text=True)
    assert patron_id(service, active) != patron_id(service, pending)
