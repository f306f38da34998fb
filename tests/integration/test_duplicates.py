"""Possible duplicates: the same name and date of birth as an existing account warns the
patron and lands in a queue where staff merge the two accounts (keeping the better standing,
seat counts right) or dismiss the warning. Rules on SQLite and PostgreSQL, pages through the
staff client."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from kiosk.registry.domain import RegistryError, Standing, format_card_number, standing_rank
from kiosk.registry.services import RegistryService, pseudonym
from kiosk.registry.store import DuplicateFlag, EnrolmentRow, Patron, Place
from tests.support.factories import form_data, patron_data
from tests.support.verification import audit, counts_match_places, patron_id, set_policy, staff

PASSWORD = "correct horse"


def person(service: RegistryService, library: str = "ANT-PERMEKE", **overrides: object):  # type: ignore[no-untyped-def]
    """Register "Élise Van Damme", born 1950-04-03, and log in: (patron id, token, answer)."""
    values: dict = {"first_name": "Élise", "last_name": "Van Damme", "birth_date": "1950-04-03",
                    "library_code": library, **overrides}
    data = patron_data(**values)
    made = service.register_account(data)
    token, _ = service.login(made.card_number, data.password)
    return patron_id(service, made.card_number), token, made


def flag_between(service: RegistryService, a: int, b: int) -> int:
    with service.store.read() as s:
        found = s.scalar(select(DuplicateFlag.id).where(
            DuplicateFlag.patron_id.in_((a, b)), DuplicateFlag.other_id.in_((a, b))))
        assert found is not None
        return found


def place_of(service: RegistryService, pid: int) -> tuple[str | None, int | None]:
    with service.store.read() as s:
        place = s.get(Place, pid)
        return (place.status, place.queue_no) if place else (None, None)


def courses_of(service: RegistryService, pid: int) -> set[str]:
    with service.store.read() as s:
        rows = s.scalars(select(EnrolmentRow).where(EnrolmentRow.patron_id == pid)).all()
        return {r.course.slug for r in rows}


def test_the_same_name_and_birth_date_warns_but_registers(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    first, _, made = person(service)
    assert made.possible_duplicate is False
    # Accents, case and hyphens do not make another person.
    second, _, made = person(service, library="KOR-CENTRUM", first_name="ELISE",
                             last_name="van-damme")
    assert made.possible_duplicate is True
    _, _, other_day = person(service, birth_date="1950-04-04")
    assert other_day.possible_duplicate is False
    with service.store.read() as s:
        flags = s.execute(select(DuplicateFlag.patron_id, DuplicateFlag.other_id,
                                 DuplicateFlag.resolved_at)).all()
    assert [tuple(f) for f in flags] == [(second, first, None)]
    # The same e-mail is still refused outright.
    service.register(patron_data(email="elise.vd@example.be"))
    with pytest.raises(RegistryError) as taken:
        service.register(patron_data(email="Elise.VD@example.be"))
    assert taken.value.fields == {"email": "email_taken"}


def test_librarians_see_flags_where_either_account_is_theirs(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    older, _, _ = person(service, library="ANT-PERMEKE")
    newer, _, _ = person(service, library="KOR-CENTRUM")
    person(service, library="ANT-PERMEKE", first_name="Jan", last_name="Peeters")
    home, _, _ = person(service, library="ANT-PERMEKE", first_name="Jan", last_name="Peeters")
    ant, kor, coordinator = (staff(service, u) for u in ("an.peeters", "els.maes",
                                                         "coordinator"))
    assert len(service.verification.duplicates(coordinator)) == 2
    assert len(service.verification.duplicates(ant)) == 2
    (pair,) = service.verification.duplicates(kor)
    assert (pair.older.patron_id, pair.newer.patron_id) == (older, newer)
    assert pair.newer.institution_code == "KOR" and pair.older.institution_code == "ANT"
    ant_only = flag_between(service, home, home - 1)
    for act in (lambda: service.verification.duplicate(ant_only, kor),
                lambda: service.verification.dismiss(ant_only, kor),
                lambda: service.verification.merge(ant_only, home, kor)):
        with pytest.raises(RegistryError) as hidden:
            act()
        assert hidden.value.code == "not_found"


def test_dismiss_keeps_both_accounts(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    older, _, _ = person(service)
    newer, _, _ = person(service)
    flag = flag_between(service, older, newer)
    librarian = staff(service, "an.peeters")
    service.verification.dismiss(flag, librarian, where="desk")
    assert service.verification.duplicates(librarian) == []
    with service.store.read() as s:
        row = s.get(DuplicateFlag, flag)
        assert row is not None and row.resolution == "dismissed"
        assert row.resolved_by == "staff:an.peeters"
        assert s.get(Patron, older) is not None and s.get(Patron, newer) is not None
    (entry,) = audit(service, "dismissed")
    assert (entry.subject, entry.detail["other"]) == (pseudonym(newer), pseudonym(older))
    with pytest.raises(RegistryError) as done:
        service.verification.dismiss(flag, librarian)
    assert done.value.code == "duplicate_resolved"


# (keep's place, other's place) → the place the kept account has after the merge.
SCENARIOS = {
    "the other's seat beats the kept waiting place": ("waiting", "seated", "seated"),
    "the kept seat beats the other's waiting place": ("seated", "waiting", "seated"),
    "the other's earlier place in line wins": ("waiting-late", "waiting-early", "waiting"),
    "two seats: one goes to the next in line": ("seated", "seated", "seated"),
    "the kept account had nothing": (None, "waiting", "waiting"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_merge_keeps_the_better_standing_and_the_counts_right(make_service,
                                                               scenario: str) -> None:  # type: ignore[no-untyped-def]
    keep_has, other_has, expected = SCENARIOS[scenario]
    service = make_service(cap=2)
    keep, keep_token, _ = person(service)
    other, other_token, _ = person(service)
    filler = [person(service, first_name="Filler", last_name=str(n))[1] for n in range(3)]

    def claim(token: str, course: str) -> None:
        service.claim(token, course)

    # Arrange the places: the seats first, then the line in the order the scenario needs.
    seated = [t for t, has in ((keep_token, keep_has), (other_token, other_has))
              if has == "seated"]
    for token in seated:
        claim(token, "excel-basics" if token == keep_token else "instagram")
    while service.programme_status().seats_taken < 2:
        claim(filler.pop(0), "word-basics")
    line = sorted([(has, token) for token, has in ((keep_token, keep_has),
                                                   (other_token, other_has))
                   if has and has.startswith("waiting")],
                  key=lambda x: x[0] != "waiting-early")
    for _, token in line:
        claim(token, "excel-basics" if token == keep_token else "instagram")
    behind = filler.pop(0)
    claim(behind, "word-basics")  # someone behind in line
    before = counts_match_places(service)
    other_rank = standing_rank(*place_of(service, other))
    keep_rank = standing_rank(*place_of(service, keep))

    flag = flag_between(service, keep, other)
    librarian = staff(service, "an.peeters")
    service.verification.merge(flag, keep, librarian, where="desk")

    with service.store.read() as s:
        assert s.get(Patron, other) is None
        assert s.scalar(select(DuplicateFlag.id).where(DuplicateFlag.id == flag)) is None
    status, _ = place_of(service, keep)
    assert status == expected
    assert standing_rank(*place_of(service, keep)) <= min(other_rank, keep_rank)
    expected_courses = {c for has, c in ((keep_has, "excel-basics"), (other_has, "instagram"))
                        if has}
    assert courses_of(service, keep) == expected_courses
    seats, waiting = counts_match_places(service)
    dropped = 1 if keep_has and other_has else 0  # two places became one
    if scenario.startswith("two seats"):
        # The freed seat went to the first in line: seats stay, the line shrinks.
        assert (seats, waiting) == (before[0], before[1] - 1)
        assert service.status(behind, "en").standing is Standing.SEATED
    else:  # the seats stay where they were; the line loses the place that went
        assert (seats, waiting) == (before[0], before[1] - dropped)
        assert service.status(behind, "en").standing is Standing.WAITING
    (entry,) = audit(service, "merged")
    assert (entry.subject, entry.detail["erased"]) == (pseudonym(keep), pseudonym(other))
    assert entry.detail["assisted_by"] == librarian.assisted_label
    assert any(e.subject == pseudonym(other) for e in audit(service, "patron_erased"))


def test_merge_refuses_an_account_that_is_not_in_the_pair(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    older, _, _ = person(service)
    newer, _, _ = person(service)
    stranger, _, _ = person(service, first_name="Jan", last_name="Peeters")
    flag = flag_between(service, older, newer)
    with pytest.raises(RegistryError) as refused:
        service.verification.merge(flag, stranger, staff(service, "coordinator"))
    assert refused.value.fields == {"keep": "keep_unknown"}


def test_merge_carries_an_identity_check_over(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    set_policy(service, "ANT", "verify")
    librarian = staff(service, "an.peeters")
    checked = service.register_account(
        patron_data(first_name="Élise", last_name="Van Damme", birth_date="1950-04-03"),
        assisted_by=librarian, identity_checked=True)
    pending_id, _, made = person(service)
    assert made.pending_until is not None and made.possible_duplicate
    flag = flag_between(service, pending_id, patron_id(service, checked.card_number))
    service.verification.merge(flag, pending_id, librarian)
    assert service.verification.pending(librarian) == []


def test_only_staff_serving_both_institutions_merge(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    ant_id, _, ant_made = person(service, library="ANT-PERMEKE")
    kor_id, _, kor_made = person(service, library="KOR-CENTRUM")
    flag = flag_between(service, ant_id, kor_id)
    ant, kor, coordinator = (staff(service, u) for u in ("an.peeters", "els.maes",
                                                         "coordinator"))
    for librarian, mine, theirs in ((ant, ant_made, kor_made), (kor, kor_made, ant_made)):
        pair = service.verification.duplicate(flag, librarian)
        assert not pair.mergeable
        by_card = {not side.masked: side for side in (pair.newer, pair.older)}
        assert by_card[True].card_number == mine.card_number and by_card[True].email
        other = by_card[False]
        assert other.card_number != theirs.card_number and other.email == ""
        assert other.card_number.endswith(theirs.card_number[-3:])
        for keep in (ant_id, kor_id):  # either way one institution's account would go
            with pytest.raises(RegistryError) as refused:
                service.verification.merge(flag, keep, librarian)
            assert refused.value.code == "not_found"
    assert service.verification.duplicate(flag, coordinator).mergeable
    service.verification.merge(flag, kor_id, coordinator, where="desk")
    (erased,) = audit(service, "patron_erased")
    assert erased.subject == pseudonym(ant_id) and erased.institution == "ANT"
    assert erased.detail["assisted_by"] == coordinator.assisted_label


def test_merging_an_active_account_into_a_pending_one_makes_it_active(make_service) -> None:  # type: ignore[no-untyped-def]
    now = [datetime(2026, 3, 2, 9, 0)]
    service = make_service(clock=lambda: now[0])
    active, active_token, _ = person(service)  # ANT is "open": active, never checked
    service.claim(active_token, "excel-basics")
    set_policy(service, "ANT", "verify", 14)
    pending, _, made = person(service)
    assert made.pending_until is not None and made.possible_duplicate
    service.verification.merge(flag_between(service, active, pending), pending,
                               staff(service, "an.peeters"))
    with service.store.read() as s:
        kept = s.get(Patron, pending)
        assert kept is not None and kept.pending_since is None
        assert kept.identity_checked_at is None  # nobody saw a document: none is claimed
    assert place_of(service, pending)[0] == "seated"
    (entry,) = audit(service, "merged")
    assert entry.detail["activated"] is True
    now[0] += timedelta(days=30)
    assert service.verification.erase_expired_pending() == 0
    assert place_of(service, pending)[0] == "seated"
    counts_match_places(service)


# --- Pages ---------------------------------------------------------------------------------


def test_the_created_page_warns_kindly(app, client) -> None:  # type: ignore[no-untyped-def]
    data = form_data(first_name="Élise", last_name="Dubois")
    assert client.post("/en/account/new", data=data).status_code == 302
    again = app.test_client()
    page = again.post("/en/account/new", data=form_data(first_name="elise", last_name="DUBOIS"),
                      follow_redirects=True)
    assert page.status_code == 200
    assert "You may already have an account — please ask at the desk." in page.get_data(
        as_text=True)
    first = app.test_client().post("/en/account/new", data=form_data(first_name="Other"),
                                   follow_redirects=True)
    assert "You may already have an account" not in first.get_data(as_text=True)


def test_the_duplicates_pages(app, staff_client) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = app.extensions["registry_service"]
    older, older_token, _ = person(service)
    newer, _, made = person(service)
    service.claim(older_token, "excel-basics")
    flag = flag_between(service, older, newer)

    desk = staff_client("an.peeters")
    listing = desk.get("/en/staff/duplicates")
    assert listing.status_code == 200 and "Élise Van Damme" in listing.get_data(as_text=True)
    for lang in ("nl", "fr", "en"):
        page = desk.get(f"/{lang}/staff/duplicates/{flag}")
        assert page.status_code == 200
    text = desk.get(f"/en/staff/duplicates/{flag}").get_data(as_text=True)
    assert "Existing account" in text and "New account" in text and "has a seat" in text

    other = staff_client("els.maes")
    assert "Élise" not in other.get("/en/staff/duplicates").get_data(as_text=True)
    assert other.get(f"/en/staff/duplicates/{flag}").status_code == 404
    assert other.post(f"/en/staff/duplicates/{flag}/merge",
                      data={"keep": str(newer)}).status_code == 404
    assert other.post(f"/en/staff/duplicates/{flag}/dismiss").status_code == 404
    assert staff_client("it.support").get("/en/staff/duplicates").status_code == 403

    missing = desk.post(f"/en/staff/duplicates/{flag}/merge", data={})
    assert missing.status_code == 422
    assert "Please choose which of the two accounts to keep." in missing.get_data(as_text=True)
    merged = desk.post(f"/en/staff/duplicates/{flag}/merge", data={"keep": str(newer)},
                       follow_redirects=True)
    assert merged.status_code == 200 and "are one now" in merged.get_data(as_text=True)
    token, _ = service.login(made.card_number, PASSWORD)
    assert service.status(token, "en").standing is Standing.SEATED  # the seat came along
    counts_match_places(service)
    assert desk.get(f"/en/staff/duplicates/{flag}").status_code == 404


def test_dismiss_from_the_page(app, staff_client) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = app.extensions["registry_service"]
    older, _, _ = person(service)
    newer, _, _ = person(service, library="KOR-CENTRUM")
    flag = flag_between(service, older, newer)
    desk = staff_client("els.maes")  # the new account is theirs
    done = desk.post(f"/en/staff/duplicates/{flag}/dismiss", follow_redirects=True)
    assert done.status_code == 200 and "warning is dismissed" in done.get_data(as_text=True)
    late = desk.get(f"/en/staff/duplicates/{flag}", follow_redirects=True)  # a stale link
    assert "already dealt with this warning" in late.get_data(as_text=True)
    assert staff_client("an.peeters").post(f"/en/staff/duplicates/{flag}/merge",
                                           data={"keep": str(older)}).status_code == 302
    assert service.verification.duplicates(staff(service, "coordinator")) == []


def test_a_pair_across_institutions_is_masked_and_left_to_the_coordinator(
        app, staff_client) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = app.extensions["registry_service"]
    older, _, older_made = person(service, email="elise.ant@example.be")
    newer, _, newer_made = person(service, library="KOR-CENTRUM", email="elise.kor@example.be")
    flag = flag_between(service, older, newer)

    desk = staff_client("an.peeters")
    page = desk.get(f"/en/staff/duplicates/{flag}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "elise.ant@example.be" in html and format_card_number(older_made.card_number) in html
    assert "elise.kor@example.be" not in html
    assert newer_made.card_number not in html  # masked, in any grouping
    assert format_card_number(newer_made.card_number) not in html
    assert newer_made.card_number[-3:] in html  # enough to tell them apart aloud
    assert "only the coordinator can merge them" in html
    assert "Merge the two accounts" not in html and "Dismiss the warning" in html
    for lang in ("nl", "fr"):
        assert desk.get(f"/{lang}/staff/duplicates/{flag}").status_code == 200
    forged = desk.post(f"/en/staff/duplicates/{flag}/merge", data={"keep": str(older)})
    assert forged.status_code == 404
    with service.store.read() as s:
        assert s.get(Patron, older) is not None and s.get(Patron, newer) is not None

    coordinator = staff_client("coordinator")
    html = coordinator.get(f"/en/staff/duplicates/{flag}").get_data(as_text=True)
    assert "elise.kor@example.be" in html and "Merge the two accounts" in html
    assert coordinator.post(f"/en/staff/duplicates/{flag}/merge",
                            data={"keep": str(older)}).status_code == 302
