"""Correcting a patron's details on the pages: the desk's form (pre-filled, checked as at
sign-up, a reason, a lookalike confirmed) and "My data" at the kiosk (the e-mail address with
the password, the language of our e-mails), in the page's language, with CSRF."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select, update

from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, Institution, Patron
from tests.support.factories import add_patron, build_app


def patron_id(service: RegistryService, card: str) -> int:
    with service.store.read() as s:
        found = s.scalar(select(Patron.id).where(Patron.card_number == card))
    assert found is not None
    return found


def desk_form(service: RegistryService, pid: int, **changes: str) -> dict[str, str]:
    """The desk's form as the patron's record fills it, with `changes`."""
    with service.store.read() as s:
        p = s.get(Patron, pid)
        assert p is not None and p.birth_date is not None
        form = {"first_name": p.first_name, "last_name": p.last_name, "email": p.email or "",
                "birth_day": str(p.birth_date.day), "birth_month": str(p.birth_date.month),
                "birth_year": str(p.birth_date.year), "postcode": p.postcode,
                "library": p.library.code, "phone": p.phone, "language": p.language}
    return {**form, **changes}


def test_the_desk_form_shows_the_details_and_saves_a_correction(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    card, _ = add_patron(service, email="mia.correct@example.be", postcode="2000")
    pid = patron_id(service, card)
    desk = staff_client("an.peeters")
    record = desk.get(f"/en/staff/desk/patrons/{pid}").get_data(as_text=True)
    assert f'href="/en/staff/desk/patrons/{pid}/correct"' in record
    page = desk.get(f"/en/staff/desk/patrons/{pid}/correct")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'value="mia.correct@example.be"' in body and 'value="2000"' in body
    saved = desk.post(f"/en/staff/desk/patrons/{pid}/correct",
                      data=desk_form(service, pid, postcode="2018", reason="moved house"))
    assert saved.status_code == 302 and saved.location.endswith(f"/staff/desk/patrons/{pid}")
    shown = desk.get(saved.location).get_data(as_text=True)
    assert "The patron&#39;s details are corrected." in shown and "2018" in shown
    with service.store.read() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "patron_corrected")
                          ).one()
        assert entry.detail["changed"] == ["postcode"]
    log = staff_client("coordinator").get("/en/staff/audit?action=patron_corrected").get_data(
        as_text=True)
    assert "details corrected" in log and "Postcode" in log, log


def test_mistakes_are_shown_in_the_librarians_language(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    card, _ = add_patron(service)
    pid = patron_id(service, card)
    desk = staff_client("an.peeters", "fr")
    wrong = desk.post(f"/fr/staff/desk/patrons/{pid}/correct",
                      data=desk_form(service, pid, postcode="99", email="pas une adresse"))
    assert wrong.status_code == 422
    body = wrong.get_data(as_text=True)
    # Every problem at once: the values, and the reason not given.
    assert "Un code postal belge a 4 chiffres" in body
    assert "adresse e-mail" in body
    assert "Tapez le motif." in body
    with service.store.read() as s:
        assert s.scalar(select(Patron.postcode).where(Patron.id == pid)) == "2000"


def test_a_lookalike_asks_for_a_tick_then_goes_to_the_duplicates_queue(service,
                                                                        staff_client) -> None:  # type: ignore[no-untyped-def]
    add_patron(service, first_name="Jan", last_name="Peeters", birth_date="1950-01-01")
    card, _ = add_patron(service, first_name="Jan", last_name="Peters",
                         birth_date="1950-01-01")
    pid = patron_id(service, card)
    desk = staff_client("an.peeters")
    form = desk_form(service, pid, last_name="Peeters", reason="typo in the name")
    first = desk.post(f"/en/staff/desk/patrons/{pid}/correct", data=form)
    assert first.status_code == 422
    body = first.get_data(as_text=True)
    assert "Another account has the same name and date of birth." in body
    assert 'name="lookalike"' in body
    confirmed = desk.post(f"/en/staff/desk/patrons/{pid}/correct",
                          data={**form, "lookalike": "y"})
    assert confirmed.status_code == 302
    assert "the pair is in the duplicates queue" in desk.get(confirmed.location).get_data(
        as_text=True)


def test_a_members_name_e_mail_and_birth_date_are_not_asked(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    card, _ = add_patron(service, first_name="Lien")
    pid = patron_id(service, card)
    with service.store.write() as s:
        ant = s.scalar(select(Institution.id).where(Institution.code == "ANT"))
        s.execute(update(Patron).where(Patron.id == pid).values(
            member_barcode="A765432", member_institution_id=ant, birth_date=None))
    page = staff_client("an.peeters").get(f"/en/staff/desk/patrons/{pid}/correct")
    body = page.get_data(as_text=True)
    assert "This patron logs in with their library card." in body
    assert 'name="first_name"' not in body and 'name="birth_day"' not in body
    assert 'name="postcode"' in body and "Lien" in body


def test_another_institutions_patron_cannot_be_corrected(service, staff_client) -> None:  # type: ignore[no-untyped-def]
    card, _ = add_patron(service)
    pid = patron_id(service, card)
    answer = staff_client("els.maes").post(f"/en/staff/desk/patrons/{pid}/correct",
                                           data=desk_form(service, pid, reason="x"))
    assert answer.status_code == 404


def test_the_patron_changes_the_language_of_our_e_mails(client, registered) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/en/my/data").get_data(as_text=True)
    assert f'value="{registered["email"]}"' in page
    saved = client.post("/en/my/data", data={"email": registered["email"], "language": "fr"})
    assert saved.status_code == 302
    assert "From now on we write to you in this language." in client.get(
        "/en/my/data").get_data(as_text=True)


def test_a_new_e_mail_address_needs_the_password(client, registered) -> None:  # type: ignore[no-untyped-def]
    without = client.post("/nl/my/data", data={"email": "nieuw@example.be", "language": "nl"})
    assert without.status_code == 422
    assert "Dit is niet je huidige wachtwoord." in without.get_data(as_text=True)
    bad = client.post("/nl/my/data", data={"email": "geen adres", "language": "nl"})
    assert bad.status_code == 422
    with_password = client.post("/nl/my/data", data={
        "email": "nieuw@example.be", "language": "nl", "password": registered["password"]})
    assert with_password.status_code == 302
    assert "nieuw@example.be" in client.get("/nl/my/data").get_data(as_text=True)


def test_both_forms_refuse_a_post_without_csrf_token(tmp_path: Path) -> None:
    client: FlaskClient = build_app(tmp_path, WTF_CSRF_ENABLED=True).test_client()
    for path in ("/fr/my/data", "/fr/staff/desk/patrons/1/correct"):
        answer = client.post(path, data={"language": "fr", "reason": "x"})
        assert answer.status_code == 400, path
        assert '<html lang="fr"' in answer.get_data(as_text=True)


def test_a_correction_follows_the_institutions_sign_up_rules_as_they_hold_for_an_account(
        service, staff_client) -> None:  # type: ignore[no-untyped-def]
    today = service.clock().date()
    seventeen = today.replace(year=today.year - 17).isoformat()
    card, _ = add_patron(service, birth_date=seventeen, phone="")
    pid = patron_id(service, card)
    # Antwerpen asks more since this patron signed up: 18 and a phone number.
    service.sign_up_rules.set_rules("ANT", "required", "required", "18",
                                    actor="staff:coordinator")
    desk = staff_client("an.peeters")
    kept = desk.post(f"/en/staff/desk/patrons/{pid}/correct",
                     data=desk_form(service, pid, postcode="2018", reason="moved house"))
    assert kept.status_code == 302  # nothing asked since is demanded, the age not re-checked
    born_later = today.replace(year=today.year - 17, day=1 if today.day > 1 else 2).isoformat()
    year, month, day = born_later.split("-")
    refused = desk.post(f"/en/staff/desk/patrons/{pid}/correct", data=desk_form(
        service, pid, birth_day=str(int(day)), birth_month=str(int(month)), birth_year=year,
        reason="typing error"))
    assert refused.status_code == 422
    # The institution's age, not the programme's 16.
    assert "at least 18 years old" in refused.get_data(as_text=True)
