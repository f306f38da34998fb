"""Each institution's sign-up, as its coordinator sets it in the console: whether a phone
number and a postcode are asked (and must be given) and the minimum age. The registry checks
every sign-up against the chosen library's institution; the kiosk's and the desk's forms ask
what that institution asks; existing accounts are never touched by a change."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from kiosk.registry.domain import FieldRule, RegistryError, SignUpRules
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, Patron
from tests.support.factories import add_patron, build_app, form_data, patron_data

COORDINATOR = "staff:coordinator"
STRICT = {"phone": "required", "postcode": "not_asked", "min_age": "18"}
NOT_ASKED, OPTIONAL, REQUIRED = FieldRule.NOT_ASKED, FieldRule.OPTIONAL, FieldRule.REQUIRED


def make_kortrijk_strict(service: RegistryService) -> None:
    """Kortrijk asks for a phone number, not for a postcode, and takes part from 18."""
    assert service.sign_up_rules.set_rules("KOR", **STRICT, actor=COORDINATOR)


def refusal_of(service: RegistryService, **fields: object) -> dict[str, str]:
    with pytest.raises(RegistryError) as refused:
        service.register(patron_data(**fields))
    assert refused.value.code == "invalid"
    return refused.value.fields


def stored(service: RegistryService, card: str) -> Patron:
    with service.store.read() as s:
        row = s.scalar(select(Patron).where(Patron.card_number == card))
        assert row is not None
        s.expunge(row)
        return row


def born_years_ago(years: int) -> str:
    today = date.today()
    return today.replace(year=today.year - years).isoformat()


def sign_up_audit(service: RegistryService) -> list[AuditEntry]:
    with service.store.read() as s:
        rows = [e for e in s.scalars(select(AuditEntry)
                                     .where(AuditEntry.action == "settings_changed"))
                if e.detail.get("part") == "sign_up"]
        s.expunge_all()
        return rows


# --- The registry ------------------------------------------------------------------------------


def test_every_institution_starts_with_the_programmes_rules(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service(min_age=17)
    assert {i.sign_up for i in service.institutions()} == {SignUpRules(min_age=17)}


def test_a_required_phone_is_refused_when_empty_at_that_institution_only(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    make_kortrijk_strict(service)
    assert refusal_of(service, library_code="KOR-CENTRUM", phone=" ") == {"phone": "required"}
    assert add_patron(service, library_code="ANT-PERMEKE", phone="")  # Antwerpen: optional


def test_a_postcode_not_asked_is_stored_empty(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    make_kortrijk_strict(service)
    card, _token = add_patron(service, library_code="KOR-HEULE", postcode="8500",
                              phone="0470 12 34 56")
    assert (stored(service, card).postcode, stored(service, card).phone) == ("", "+32470123456")
    assert refusal_of(service, library_code="ANT-PERMEKE", postcode="") == {
        "postcode": "required"}


def test_the_minimum_age_is_the_institutions(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    make_kortrijk_strict(service)
    seventeen = born_years_ago(17)
    assert refusal_of(service, library_code="KOR-CENTRUM", phone="0470 12 34 56",
                      birth_date=seventeen) == {"birth_date": "too_young"}
    assert add_patron(service, library_code="ANT-PERMEKE", birth_date=seventeen)


def test_existing_accounts_are_untouched_by_a_change(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    card, token = add_patron(service, library_code="KOR-CENTRUM", postcode="8500", phone="",
                             birth_date=born_years_ago(16))
    before = stored(service, card)
    make_kortrijk_strict(service)
    after = stored(service, card)
    assert {c: getattr(after, c) for c in ("postcode", "phone", "birth_date", "pending_since")} \
        == {c: getattr(before, c) for c in ("postcode", "phone", "birth_date", "pending_since")}
    assert service.status(token).standing is not None  # still in, though 16 and no phone
    assert service.login(card, "correct horse")[1].card_number == card


def test_a_change_is_audited_with_what_it_was_and_what_it_became(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    make_kortrijk_strict(service)
    assert not service.sign_up_rules.set_rules("KOR", **STRICT, actor=COORDINATOR)  # no change
    [entry] = sign_up_audit(service)
    assert (entry.actor, entry.institution) == (COORDINATOR, "KOR")
    assert entry.detail["before"] == {"phone": "optional", "postcode": "required", "min_age": 16}
    assert entry.detail["after"] == {"phone": "required", "postcode": "not_asked", "min_age": 18}


def test_wrong_rules_are_refused_and_nothing_is_stored(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    with pytest.raises(RegistryError) as refused:
        service.sign_up_rules.set_rules("KOR", "always", "required", "9", actor=COORDINATOR)
    assert refused.value.fields == {"phone": "choice_unknown", "min_age": "min_age_invalid"}
    for code in ("NOPE", "KOR\x00"):  # (a NUL never reaches PostgreSQL)
        with pytest.raises(RegistryError) as unknown:
            service.sign_up_rules.set_rules(code, "optional", "required", "16",
                                            actor=COORDINATOR)
        assert unknown.value.code == "not_found"
    assert service.sign_up_rules.rules("KOR") == SignUpRules()
    assert sign_up_audit(service) == []


# --- The coordinator's console -----------------------------------------------------------------


def test_the_coordinator_sets_the_sign_up_in_the_console(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    client = staff_client("coordinator", "fr")
    page = client.get("/fr/staff/libraries/institutions/KOR/sign-up")
    assert page.status_code == 200
    assert "Âge minimum" in page.get_data(as_text=True)
    wrong = client.post("/fr/staff/libraries/institutions/KOR/sign-up",
                        data={"phone": "required", "postcode": "sometimes", "min_age": "100"})
    text = wrong.get_data(as_text=True)
    assert wrong.status_code == 422
    assert "Choisissez une des possibilités." in text
    assert "Indiquez un nombre entier d’années de 12 à 99." in text
    assert service.sign_up_rules.rules("KOR") == SignUpRules()
    saved = client.post("/fr/staff/libraries/institutions/KOR/sign-up", data=STRICT)
    assert saved.status_code == 302
    assert service.sign_up_rules.rules("KOR") == SignUpRules(REQUIRED, NOT_ASKED, 18)
    institution = client.get(saved.location).get_data(as_text=True)
    assert "<dd>Demandé, obligatoire</dd>" in institution
    assert "<dd>Non demandé</dd>" in institution and "<dd>18</dd>" in institution
    audit = client.get("/fr/staff/audit").get_data(as_text=True)
    assert "Création d’un compte" in audit and "Non demandé" in audit


def test_a_librarian_may_not_change_the_sign_up(staff_client) -> None:  # type: ignore[no-untyped-def]
    librarian = staff_client("els.maes", "nl")
    assert librarian.post("/nl/staff/libraries/institutions/KOR/sign-up",
                          data=STRICT).status_code == 403


# --- The kiosk's form ---------------------------------------------------------------------------


def kiosk(tmp_path: Path, library: str) -> Flask:
    app = build_app(tmp_path / library, LIBRARY_CODE=library)
    make_kortrijk_strict(app.extensions["registry_service"])
    return app


def shown_for(page: str) -> str:
    found = re.search(r'name="sign_up_shown" type="hidden" value="([^"]*)"', page)
    assert found, "the form says which rules it was shown with"
    return found.group(1)


def test_the_kiosk_form_asks_what_its_librarys_institution_asks(tmp_path: Path) -> None:
    antwerp = kiosk(tmp_path, "ANT-PERMEKE").test_client().get("/en/account/new")
    kortrijk = kiosk(tmp_path, "KOR-CENTRUM").test_client().get("/en/account/new")
    page_a, page_k = antwerp.get_data(as_text=True), kortrijk.get_data(as_text=True)
    assert 'name="postcode"' in page_a and "Phone number (optional)" in page_a
    assert "from the age of 16" in page_a
    assert 'name="postcode"' not in page_k and 'name="phone"' in page_k
    assert "Phone number (optional)" not in page_k and "from the age of 18" in page_k
    assert shown_for(page_a) != shown_for(page_k)


def test_choosing_a_library_that_asks_otherwise_shows_the_form_again_for_it(
        tmp_path: Path) -> None:
    app = kiosk(tmp_path, "ANT-PERMEKE")
    client = app.test_client()
    shown = shown_for(client.get("/en/account/new").get_data(as_text=True))
    sent = form_data(library="KOR-CENTRUM", phone="", first_name="Noor", sign_up_shown=shown)
    again = client.post("/en/account/new", data=sent)
    page = again.get_data(as_text=True)
    assert again.status_code == 200 and "You chose another library" in page
    assert 'value="Noor"' in page and 'name="postcode"' not in page  # typed, kept; not asked
    assert "error-summary" not in page  # nothing was sent yet
    service: RegistryService = app.extensions["registry_service"]
    with service.store.read() as s:
        assert s.scalar(select(Patron.id).where(Patron.email == sent["email"])) is None

    sent.update(sign_up_shown=shown_for(page), phone="0470 12 34 56")
    made = client.post("/en/account/new", data=sent)
    assert made.status_code == 302 and made.location.endswith("/en/account/created")
    with service.store.read() as s:
        assert s.scalar(select(Patron.postcode).where(Patron.email == sent["email"])) == ""


def test_the_registry_checks_the_chosen_librarys_rules_whatever_the_form_says(
        tmp_path: Path) -> None:
    client = kiosk(tmp_path, "ANT-PERMEKE").test_client()
    no_phone = client.post("/en/account/new", data=form_data(library="KOR-CENTRUM", phone=""))
    assert "Type the phone number." in no_phone.get_data(as_text=True)
    young = client.post("/en/account/new", data=form_data(
        library="KOR-CENTRUM", birth_year=str(date.today().year - 17), birth_month="1",
        birth_day="1"))
    assert "You must be at least 18 years old to take part." in young.get_data(as_text=True)


# --- The desk's form ----------------------------------------------------------------------------


DESK_FORM = {"first_name": "Jan", "last_name": "Desk", "email": "jan.desk@example.be",
             "birth_day": "1", "birth_month": "2", "birth_year": "1960", "postcode": "8500",
             "phone": "", "password": "chosen by jan", "language": "nl", "consent": "y"}


def test_the_desk_form_asks_what_the_librarians_institution_asks(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    make_kortrijk_strict(service)
    kortrijk = staff_client("els.maes", "nl")
    page = kortrijk.get("/nl/staff/desk/new").get_data(as_text=True)
    assert 'name="postcode"' not in page and "Leners kunnen meedoen vanaf 18 jaar." in page
    refused = kortrijk.post("/nl/staff/desk/new", data={
        **DESK_FORM, "library": "KOR-CENTRUM", "sign_up_shown": shown_for(page)})
    assert refused.status_code == 422
    assert "Typ het telefoon- of gsm-nummer." in refused.get_data(as_text=True)
    made = kortrijk.post("/nl/staff/desk/new", data={
        **DESK_FORM, "library": "KOR-CENTRUM", "phone": "0470 12 34 56",
        "sign_up_shown": shown_for(page)})
    assert made.status_code == 302
    with service.store.read() as s:
        assert s.scalar(select(Patron.postcode)
                        .where(Patron.email == DESK_FORM["email"])) == ""  # not asked
    antwerp = staff_client("an.peeters", "nl").get("/nl/staff/desk/new").get_data(as_text=True)
    assert 'name="postcode"' in antwerp and "Leners kunnen meedoen vanaf 16 jaar." in antwerp


def test_a_field_the_kiosk_did_not_ask_yet_is_shown_with_its_error(tmp_path: Path) -> None:
    """A kiosk keeps the rules a minute: a phone number made required meanwhile is asked for
    beside its box, not in a summary that points nowhere."""
    app = build_app(tmp_path, LIBRARY_CODE="KOR-CENTRUM")
    service: RegistryService = app.extensions["registry_service"]
    service.sign_up_rules.set_rules("KOR", "not_asked", "required", "16", actor=COORDINATOR)
    client = app.test_client()
    page = client.get("/en/account/new").get_data(as_text=True)
    assert 'name="phone"' not in page
    service.sign_up_rules.set_rules("KOR", "required", "required", "16", actor=COORDINATOR)
    sent = client.post("/en/account/new", data=form_data(
        library="KOR-CENTRUM", phone="", sign_up_shown=shown_for(page)))
    answer = sent.get_data(as_text=True)
    assert 'id="phone-error"' in answer and "Type the phone number." in answer
