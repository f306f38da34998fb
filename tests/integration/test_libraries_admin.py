"""The coordinator keeps the programme's institutions and libraries in the console: added,
renamed, retired and offered again, each audited; a retired library takes no new patron and
its patrons keep everything they have."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kiosk.registry.domain import RegistryError, Standing
from kiosk.registry.store import AuditEntry
from tests.support.factories import add_patron, patron_data

NAMES = {"nl": "Bibliotheek Leuven", "fr": "Bibliothèque de Louvain", "en": "Leuven Library"}


def offered(service) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return {i.code: [lib.code for lib in i.libraries] for i in service.institutions()}


def actions(service) -> list[str]:  # type: ignore[no-untyped-def]
    with service.store.read() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_an_institution_and_its_library_are_added_and_offered_at_once(make_service) -> None:
    service = make_service()
    admin = service.libraries_admin
    admin.add_institution("leu", "2199", NAMES, actor="staff:coordinator")
    admin.add_library("LEU", "leu-centrum", "  Tweebronnen ", actor="staff:coordinator")
    assert offered(service)["LEU"] == ["LEU-CENTRUM"]
    card, _token = add_patron(service, library_code="LEU-CENTRUM")
    assert card.startswith("2199")
    assert actions(service)[-3:-1] == ["institution_added", "library_added"]
    row = next(i for i in admin.institutions() if i.code == "LEU")
    assert row.names == NAMES and row.libraries[0].name == "Tweebronnen"
    assert row.libraries[0].patrons == 1


def test_a_retired_library_takes_no_new_patron_and_its_patrons_keep_their_seat(
        make_service) -> None:
    service = make_service(cap=5)
    card, token = add_patron(service, library_code="ANT-PERMEKE")
    assert service.claim(token, "excel-basics").standing is Standing.SEATED
    service.libraries_admin.set_library_retired("ANT-PERMEKE", True, actor="staff:coordinator")
    assert "ANT-PERMEKE" not in offered(service)["ANT"]
    with pytest.raises(RegistryError) as refused:
        service.register(patron_data(library_code="ANT-PERMEKE"))
    assert refused.value.fields == {"library_code": "library_unknown"}
    assert service.status(token).standing is Standing.SEATED  # nothing taken away
    service.libraries_admin.set_library_retired("ANT-PERMEKE", True, actor="again")  # once
    service.libraries_admin.set_library_retired("ANT-PERMEKE", False, actor="staff:coordinator")
    assert "ANT-PERMEKE" in offered(service)["ANT"]
    assert actions(service).count("library_retired") == 1
    assert actions(service)[-1] == "library_restored"


def test_a_retired_institution_offers_none_of_its_libraries(make_service) -> None:
    service = make_service()
    service.libraries_admin.set_institution_retired("KOR", True, actor="staff:coordinator")
    assert "KOR" not in offered(service)
    assert any(i.code == "KOR" and i.retired for i in service.libraries_admin.institutions())
    service.libraries_admin.set_institution_retired("KOR", False, actor="staff:coordinator")
    assert "KOR" in offered(service)


@pytest.mark.parametrize(("change", "fields"), [
    (lambda a: a.add_institution("ANT", "2199", NAMES, actor="t"),
     {"code": "institution_code_taken"}),
    (lambda a: a.add_institution("LEU", "2101", NAMES, actor="t"),
     {"card_prefix": "card_prefix_taken"}),
    (lambda a: a.add_institution("1X", "21a", {"nl": "", "fr": "x", "en": "y"}, actor="t"),
     {"name_nl": "required", "code": "institution_code_invalid",
      "card_prefix": "card_prefix_invalid"}),
    (lambda a: a.add_library("ANT", "ANT-PERMEKE", "Permeke", actor="t"),
     {"library_code": "library_code_taken"}),
    (lambda a: a.add_library("ANT", "ant permeke", "", actor="t"),
     {"library_code": "library_code_invalid", "library_name": "required"}),
    (lambda a: a.rename_library("ANT-PERMEKE", "x" * 121, actor="t"),
     {"library_name": "too_long"}),
])
def test_a_wrong_code_or_name_is_refused_with_every_field_and_nothing_changes(
        make_service, change, fields) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    before = service.libraries_admin.institutions()
    with pytest.raises(RegistryError) as refused:
        change(service.libraries_admin)
    assert refused.value.fields == fields
    assert service.libraries_admin.institutions() == before


def test_an_unknown_code_is_not_found(make_service) -> None:
    service = make_service()
    for change in (lambda a: a.rename_library("NOPE", "x", actor="t"),
                   lambda a: a.set_institution_retired("ZZZ", True, actor="t"),
                   lambda a: a.add_library("ant\x00", "ANT-X", "x", actor="t")):
        with pytest.raises(RegistryError) as refused:
            change(service.libraries_admin)
        assert refused.value.code == "not_found"


def test_the_coordinator_adds_renames_and_retires_in_the_console(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    client = staff_client("coordinator", "nl")
    wrong = client.post("/nl/staff/libraries/institutions/new", data={
        "code": "ANT", "card_prefix": "2101", "name_nl": "X", "name_fr": "X", "name_en": "X"})
    page = wrong.get_data(as_text=True)
    assert wrong.status_code == 422
    assert "Een andere organisatie heeft deze code al." in page
    assert "De kaartnummers van een andere organisatie beginnen al met deze cijfers." in page
    made = client.post("/nl/staff/libraries/institutions/new", data={
        "code": "LEU", "card_prefix": "2199", **{f"name_{k}": v for k, v in NAMES.items()}})
    assert made.status_code == 302
    assert client.post("/nl/staff/libraries/institutions/LEU/new-library", data={
        "library_code": "LEU-CENTRUM", "library_name": "Tweebronnen"}).status_code == 302
    listing = client.get("/fr/staff/libraries").get_data(as_text=True)
    assert "Bibliothèque de Louvain" in listing and "Tweebronnen" in listing
    assert client.post("/nl/staff/libraries/LEU-CENTRUM/retire").status_code == 302
    assert "LEU-CENTRUM" not in {lib.code for i in service.institutions() for lib in i.libraries}
    audit = client.get("/nl/staff/audit").get_data(as_text=True)
    assert "Bibliotheek buiten gebruik gesteld" in audit and "Organisatie toegevoegd" in audit
    librarian = staff_client("an.peeters", "nl")
    assert librarian.get("/nl/staff/libraries").status_code == 403
