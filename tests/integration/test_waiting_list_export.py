"""The waiting list's exports: the audited one with personal data, in the line's own order and
scoped like the page, and the figures without personal data. The registry rules on SQLite and
PostgreSQL, the pages through the staff client."""

from __future__ import annotations

import csv
import io
import re
from functools import cache

import pytest
from sqlalchemy import select, update

from kiosk.registry import waitlist
from kiosk.registry.domain import RegistryError, Standing, format_card_number
from kiosk.registry.passwords import hash_password
from kiosk.registry.roles import Role, StaffView
from kiosk.registry.services import RegistryService
from kiosk.registry.staff import AuditQuery
from kiosk.registry.store import Patron
from kiosk.staff.csv_files import BOM
from tests.support.factories import add_patron, new_store, patron_data

COORDINATOR = StaffView(id=1, username="coordinator", display_name="Sofie Claes",
                        role=Role.COORDINATOR, institution_code=None,
                        library_code="MUN-MUNTPUNT", library_name="Muntpunt")
ANT_LIBRARIAN = StaffView(id=2, username="an.peeters", display_name="An Peeters",
                          role=Role.LIBRARIAN, institution_code="ANT",
                          library_code="ANT-PERMEKE", library_name="Permeke")
IT_ADMIN = StaffView(id=4, username="it.support", display_name="IT", role=Role.IT_ADMIN,
                     institution_code=None, library_code=None)


def line(service, libraries: list[str], course: str = "instagram") -> list[str]:  # type: ignore[no-untyped-def]
    """One patron per library given, who claimed `course`, in this order; their cards."""
    cards = []
    for library in libraries:
        card, token = add_patron(service, library_code=library)
        service.claim(token, course)
        cards.append(card)
    return cards


def ids_of(service, cards: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    with service.store.read() as s:
        found = dict(s.execute(select(Patron.card_number, Patron.id)).all())
    return [found[c] for c in cards]


def the_ledgers_line(service) -> list[int]:  # type: ignore[no-untyped-def]
    """Who waits, in order, as the seat ledger serves them."""
    with service.store.write() as s:
        return service.seats(s).waiting_line()


def exported(service, viewer: StaffView = COORDINATOR, **kwargs) -> list:  # type: ignore[no-untyped-def]
    return list(service.waitlist.export(viewer, "checking the line", "en", **kwargs).rows)


def audit(service, action: str) -> list:  # type: ignore[no-untyped-def]
    entries, _total = service.staff.audit(AuditQuery(action=action), COORDINATOR)
    return entries


def read_csv(response) -> list[list[str]]:  # type: ignore[no-untyped-def]
    raw = response.get_data()
    assert raw.startswith(BOM.encode("utf-8"))
    return list(csv.reader(io.StringIO(raw.decode("utf-8")[1:]), delimiter=";"))


# --- The registry: order, scope, flags, audit ----------------------------------------------

def test_the_export_follows_the_ledgers_line_even_after_a_move(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service(cap=1)
    cards = line(service, ["ANT-PERMEKE", "KOR-CENTRUM", "ANT-HOBOKEN", "MUN-MUNTPUNT",
                           "KOR-HEULE", "ANT-PERMEKE"])
    ids = ids_of(service, cards)
    service.waitlist.move(ids[4], 1, "urgent", COORDINATOR)  # out of sign-up order
    rows = exported(service)
    by_card = dict(zip(cards, ids, strict=True))
    assert [by_card[r.card_number] for r in rows] == the_ledgers_line(service)
    assert [r.position for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].card_number == cards[4] and rows[0].library_name
    assert {r.standing for r in rows} == {Standing.WAITING}
    assert rows[0].courses == (service.course("instagram", "en").title,)
    kortrijk = next(i for i in service.institutions() if i.code == "KOR")
    assert (rows[1].institution_code, rows[1].institution_name) == ("KOR", kortrijk.names["en"])
    assert rows[1].email.endswith("@example.be")


def test_a_librarian_exports_their_institution_at_places_in_the_whole_line(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service(cap=0)
    cards = line(service, ["ANT-PERMEKE", "KOR-CENTRUM", "ANT-HOBOKEN", "KOR-HEULE"])
    ant = exported(service, ANT_LIBRARIAN, institution="KOR")  # asking for another: ignored
    assert [(r.position, r.card_number) for r in ant] == [(1, cards[0]), (3, cards[2])]
    kor = exported(service, COORDINATOR, institution="KOR")
    assert [(r.position, r.card_number) for r in kor] == [(2, cards[1]), (4, cards[3])]
    assert len(exported(service, COORDINATOR)) == 4
    with pytest.raises(RegistryError) as refused:
        service.waitlist.export(IT_ADMIN, "curious", "en")
    assert refused.value.code == "forbidden"
    assert sorted(e.institution for e in audit(service, "waiting_list_export")) == [
        "", "ANT", "KOR"]


def test_the_export_says_who_is_pending_and_who_holds_an_offer(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service(cap=1)
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5, 6], "verify", 14)},
                                              actor="test")
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    seated, _token = add_patron(service, library_code="ANT-PERMEKE")
    service.claim(_token, "instagram")
    cards = line(service, ["ANT-HOBOKEN", "KOR-CENTRUM", "ANT-PERMEKE"])
    service.give_up_seat(_token)  # the seat is offered to the first in line, and held
    rows = exported(service)
    assert [(r.card_number, r.standing, r.position, r.pending) for r in rows] == [
        (cards[0], Standing.OFFERED, None, False),
        (cards[1], Standing.WAITING, 1, True),
        (cards[2], Standing.WAITING, 2, False)]
    assert rows[0].offer_ends is not None and rows[0].offer_ends > rows[0].requested_at
    assert all(r.offer_ends is None for r in rows[1:])
    assert seated not in {r.card_number for r in rows}


def test_the_export_is_audited_with_its_reason_before_a_row_is_read(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service(cap=0)
    line(service, ["ANT-PERMEKE", "ANT-HOBOKEN"])
    for blank in ("", "   "):
        with pytest.raises(RegistryError) as refused:
            service.waitlist.export(ANT_LIBRARIAN, blank, "en")
        assert refused.value.code == "invalid"
    assert audit(service, "waiting_list_export") == []
    export = service.waitlist.export(ANT_LIBRARIAN, "calling them back", "en", where="desk")
    (entry,) = audit(service, "waiting_list_export")  # before a single row was read
    assert (entry.actor, entry.institution, entry.detail) == (
        "staff:an.peeters", "ANT", {"reason": "calling them back", "row_count": 2})
    assert export.count == 2
    line(service, ["ANT-PERMEKE"])  # joins after the audit entry: not in the file
    assert len(list(export.rows)) == 2


def test_the_figures_count_waiting_pending_and_offers_without_names(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service(cap=1)
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5, 6], "verify", 14)},
                                              actor="test")
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    _card, token = add_patron(service, library_code="MUN-MUNTPUNT")
    service.claim(token, "instagram")
    line(service, ["ANT-PERMEKE", "KOR-CENTRUM", "KOR-CENTRUM", "ANT-HOBOKEN"])
    line(service, ["ANT-HOBOKEN"], course="excel-basics")
    service.give_up_seat(token)  # ANT-PERMEKE's patron is offered the seat
    counts = service.waitlist.counts(COORDINATOR, "en")
    institutions = {c.code: (c.waiting, c.pending, c.offered) for c in counts.institutions}
    assert {"ANT": (2, 0, 1), "KOR": (2, 2, 0), "MUN": (0, 0, 0)}.items() <= institutions.items()
    assert {code for code, n in institutions.items() if n != (0, 0, 0)} == {"ANT", "KOR"}
    libraries = {c.code: (c.waiting, c.pending, c.offered) for c in counts.libraries
                 if c.waiting or c.offered}
    assert libraries == {"ANT-PERMEKE": (0, 0, 1), "ANT-HOBOKEN": (2, 0, 0),
                         "KOR-CENTRUM": (2, 2, 0)}
    courses = {c.code: (c.waiting, c.pending, c.offered) for c in counts.courses}
    assert courses["instagram"] == (3, 2, 1) and courses["excel-basics"] == (1, 0, 0)
    assert courses["word-basics"] == (0, 0, 0)
    mine = service.waitlist.counts(ANT_LIBRARIAN, "en", institution="KOR")
    assert {c.code for c in mine.institutions} == {"ANT"}
    assert {c.institution_code for c in mine.libraries} == {"ANT"}
    assert {c.code: c.waiting for c in mine.courses}["instagram"] == 1
    assert audit(service, "waiting_list_export") == []  # figures are no personal export


def test_a_line_longer_than_a_batch_is_exported_whole_and_in_order(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A line streamed in several batches (made small here: 120 waiting, read 25 at a time),
    some moved: the file is the ledger's line, whole. The same SQL streams on PostgreSQL
    (the tests above run on both)."""
    monkeypatch.setattr(waitlist, "EXPORT_BATCH", 25)
    service = RegistryService(new_store(f"sqlite:///{tmp_path / 'long.sqlite3'}", 0),
                              hash_password=cache(hash_password))
    libraries = ["ANT-PERMEKE", "KOR-CENTRUM", "ANT-HOBOKEN", "MUN-MUNTPUNT"]
    with service.store.write() as s:
        for i in range(120):
            card = service.register(patron_data(library_code=libraries[i % 4]))
            service.claim_for(s, s.scalar(select(Patron.id).where(Patron.card_number == card)),
                              "instagram")
    line_before = the_ledgers_line(service)
    for patron, to in ((line_before[119], 1), (line_before[5], 90), (line_before[70], 2)):
        service.waitlist.move(patron, to, "urgent", COORDINATOR)
    line_now = the_ledgers_line(service)
    assert line_now[:2] == [line_before[119], line_before[70]]
    rows = exported(service)
    with service.store.read() as s:
        card_of = dict(s.execute(select(Patron.id, Patron.card_number)).all())
    assert [r.card_number for r in rows] == [card_of[i] for i in line_now]
    assert [r.position for r in rows] == list(range(1, 121))
    assert all(r.courses == (service.course("instagram", "en").title,) for r in rows)
    ant = exported(service, ANT_LIBRARIAN)
    assert [r.card_number for r in ant] == [r.card_number for r in rows
                                            if r.institution_code == "ANT"]


# --- The pages ---------------------------------------------------------------------------

def test_the_export_page_asks_a_reason_in_the_staff_language(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    service.set_cap(0, actor="test")
    line(service, ["ANT-PERMEKE"])
    librarian = staff_client("an.peeters", "fr")
    page = librarian.get("/fr/staff/waiting-list/export")
    assert page.status_code == 200
    assert "Exporter la liste d’attente" in page.get_data(as_text=True)
    refused = librarian.post("/fr/staff/waiting-list/export", data={"reason": "  "})
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert 'class="error-summary"' in body and "text/csv" not in refused.headers["Content-Type"]
    assert audit(service, "waiting_list_export") == []


def test_a_librarians_file_is_their_line_guarded_against_formulas(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    service.set_cap(0, actor="test")
    cards = line(service, ["KOR-CENTRUM", "ANT-PERMEKE", "ANT-HOBOKEN"])
    with service.store.write() as s:  # what a spreadsheet would run, typed as a name
        s.execute(update(Patron).where(Patron.card_number == cards[1])
                  .values(last_name="=HYPERLINK(\"http://evil\")", first_name="@SUM(A1)"))
    librarian = staff_client("an.peeters", "nl")
    response = librarian.post("/nl/staff/waiting-list/export",
                              data={"reason": "terugbellen", "institution": "KOR"},
                              buffered=False)
    assert response.status_code == 200
    (entry,) = audit(service, "waiting_list_export")
    assert (entry.actor, entry.institution, entry.detail["reason"]) == (
        "staff:an.peeters", "ANT", "terugbellen")
    assert response.headers["Cache-Control"].startswith("no-store")
    assert re.match(r'attachment; filename="wachtlijst-\d{4}-\d\d-\d\d\.csv"',
                    response.headers["Content-Disposition"])
    rows = read_csv(response)
    response.close()
    assert rows[0][:5] == ["Plaats op de wachtlijst", "Status",
                           "Einde van het aanbod (Belgische tijd)",
                           "Op de wachtlijst sinds (Belgische tijd)",
                           "In afwachting: identiteit nog niet gecontroleerd"]
    assert [r[0] for r in rows[1:]] == ["2", "3"]
    assert rows[1][4:8] == ["nee", format_card_number(cards[1]), "'@SUM(A1)",
                            "'=HYPERLINK(\"http://evil\")"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows[1][3])
    assert rows[1][-1] == service.course("instagram", "nl").title


def test_a_coordinator_chooses_an_institution_or_all(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    service.set_cap(0, actor="test")
    line(service, ["KOR-CENTRUM", "ANT-PERMEKE"])
    coordinator = staff_client("coordinator")
    form = coordinator.get("/en/staff/waiting-list/export?institution=KOR").get_data(
        as_text=True)
    assert re.search(r'<option selected value="KOR">|<option value="KOR" selected', form)
    kor = read_csv(coordinator.post("/en/staff/waiting-list/export",
                                    data={"reason": "check", "institution": "KOR"}))
    kortrijk = next(i for i in service.institutions() if i.code == "KOR")
    assert [(r[0], r[9]) for r in kor[1:]] == [("1", kortrijk.names["en"])]
    everyone = read_csv(coordinator.post("/en/staff/waiting-list/export",
                                         data={"reason": "check", "institution": ""}))
    assert [r[0] for r in everyone[1:]] == ["1", "2"]
    unknown = coordinator.post("/en/staff/waiting-list/export",
                               data={"reason": "check", "institution": "XXX"})
    assert unknown.status_code == 422
    assert "Please choose an institution from the list." in unknown.get_data(as_text=True)
    assert len(audit(service, "waiting_list_export")) == 2


def test_the_figures_need_no_reason_and_stay_in_a_librarians_reach(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    service.set_cap(0, actor="test")
    line(service, ["KOR-CENTRUM", "ANT-PERMEKE", "ANT-PERMEKE"])
    librarian = staff_client("an.peeters")
    libraries = librarian.get("/en/staff/waiting-list/per-library.csv")
    assert libraries.status_code == 200
    rows = read_csv(libraries)
    assert rows[0] == ["Institution code", "Library code", "Library", "Waiting",
                       "Of them pending: identity not checked yet", "Offers not yet accepted"]
    assert {r[0] for r in rows[1:]} == {"ANT"}
    assert [r[1:] for r in rows[1:] if r[1] == "ANT-PERMEKE"][0][2:] == ["2", "0", "0"]
    courses = read_csv(staff_client("coordinator", "fr").get(
        "/fr/staff/waiting-list/per-course.csv?institution=KOR"))
    assert courses[0][:2] == ["Code du cours", "Cours"]
    assert [r[2] for r in courses[1:] if r[0] == "instagram"] == ["1"]
    institutions = read_csv(staff_client("coordinator").get(
        "/en/staff/waiting-list/per-institution.csv"))
    assert {r[0]: r[2] for r in institutions[1:]}["ANT"] == "2"
    assert librarian.get("/en/staff/waiting-list/per-patron.csv").status_code == 404
    assert audit(service, "waiting_list_export") == []


def test_the_list_page_offers_both_exports_and_it_gets_neither(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    body = staff_client("coordinator").get("/en/staff/waiting-list?institution=KOR").get_data(
        as_text=True)
    assert "/en/staff/waiting-list/export?institution=KOR" in body
    assert "/en/staff/waiting-list/per-library.csv?institution=KOR" in body
    it = staff_client("it.support")
    assert it.get("/en/staff/waiting-list/export").status_code == 403
    assert it.post("/en/staff/waiting-list/export", data={"reason": "x"}).status_code == 403
    assert it.get("/en/staff/waiting-list/per-course.csv").status_code == 403
    assert audit(service, "waiting_list_export") == []

