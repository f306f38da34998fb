"""Correcting a patron's details: at the desk, as sign-up checks them, within one's own
institution, audited with a reason; by the patron under "My data" (e-mail address, language of
their e-mails). A new e-mail address is told at the old and the new address."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select, update

from kiosk.registry.domain import PatronDetails, RegistryError
from kiosk.registry.roles import Role, StaffView
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, DuplicateFlag, Institution, Notice, Patron
from tests.support.factories import add_patron

COORDINATOR = StaffView(1, "coordinator", "Coordinator", Role.COORDINATOR, None, None)
AN = StaffView(2, "an.peeters", "An Peeters", Role.LIBRARIAN, "ANT", "ANT-PERMEKE",
               "Permeke")
ELS = StaffView(3, "els.maes", "Els Maes", Role.LIBRARIAN, "KOR", "KOR-CENTRUM",
                "Centrum Kortrijk")


def refusal(call) -> RegistryError:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryError) as info:
        call()
    return info.value


def a_patron(service: RegistryService, **overrides: object) -> tuple[int, str]:
    """(patron id, session token) of a new patron of Antwerpen."""
    card, token = add_patron(service, **overrides)
    with service.store.read() as s:
        found = s.scalar(select(Patron.id).where(Patron.card_number == card))
    assert found is not None
    return found, token


def details_of(service: RegistryService, patron_id: int) -> PatronDetails:
    """The patron's details as the desk's form shows them before a correction."""
    found = service.desk.patron(COORDINATOR, patron_id, "en")
    return PatronDetails(
        first_name=found.first_name, last_name=found.last_name, email=found.email or "",
        birth_date=found.birth_date.isoformat() if found.birth_date else "",
        postcode=found.postcode, library_code=found.library_code, phone=found.phone,
        language=found.language)


def row(service: RegistryService, patron_id: int) -> Patron:
    with service.store.read() as s:
        found = s.get(Patron, patron_id)
        assert found is not None
        s.expunge(found)
        return found


def corrections(service: RegistryService) -> list[AuditEntry]:
    with service.store.read() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "patron_corrected")
                              .order_by(AuditEntry.id)).all())
        s.expunge_all()
        return rows


def outbox(service: RegistryService) -> list[tuple[str, str, str]]:
    """(kind, address, language) of every queued notice about a changed e-mail address."""
    with service.store.read() as s:
        return [tuple(r) for r in s.execute(  # type: ignore[misc]
            select(Notice.to_address, Notice.language, Notice.subject)
            .where(Notice.kind == "email_changed").order_by(Notice.id)).all()]


def test_a_librarian_corrects_every_field_and_the_audit_names_the_fields(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    pid, _ = a_patron(service, first_name="Mia", last_name="Janssens", email="mia@example.be")
    corrected = PatronDetails(
        first_name=" Mía ", last_name="Janssen", email="Mia.J@Example.BE",
        birth_date="1959-4-2", postcode="2018", library_code="ANT-HOBOKEN",
        phone="0470 12 34 56", language="fr")
    done = service.desk.correct(AN, pid, corrected, "the patron showed her identity card",
                                where="desk 1")
    assert done.changed == ("first_name", "last_name", "email", "birth_date", "postcode",
                            "library", "phone", "language")
    after = row(service, pid)
    assert (after.first_name, after.last_name, after.email) == ("Mía", "Janssen",
                                                                "mia.j@example.be")
    assert (after.birth_date, after.postcode, after.phone, after.language) == (
        date(1959, 4, 2), "2018", "+32470123456", "fr")
    assert service.desk.patron(AN, pid, "en").library_code == "ANT-HOBOKEN"
    assert service.desk.find(AN, "mia janssen", date(1959, 4, 2))[0].id == pid
    (entry,) = corrections(service)
    assert entry.actor == "staff:an.peeters" and entry.terminal == "desk 1"
    assert entry.detail["changed"] == list(done.changed)
    assert entry.detail["reason"] == "the patron showed her identity card"
    assert entry.detail["assisted_by"] == AN.assisted_label
    # Fields, never their values: no personal data in the audit log.
    assert "Janssen" not in str(entry.detail) and "2018" not in str(entry.detail)


def test_nothing_changed_writes_nothing(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    pid, _ = a_patron(service)
    assert service.desk.correct(AN, pid, details_of(service, pid), "checked").changed == ()
    assert corrections(service) == []


def test_the_values_are_checked_as_at_sign_up_all_at_once(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    pid, _ = a_patron(service)
    bad = PatronDetails(first_name="", last_name="x" * 61, email="not an address",
                        birth_date="2020-2-30", postcode="123", library_code="NOWHERE",
                        phone="12", language="de")
    error = refusal(lambda: service.desk.correct(AN, pid, bad, "typo"))
    assert error.fields == {
        "first_name": "required", "last_name": "too_long", "email": "email_invalid",
        "birth_date": "birth_date_invalid", "postcode": "postcode_invalid",
        "library_code": "library_unknown", "phone": "phone_invalid",
        "language": "language_unknown"}
    young = replace(details_of(service, pid), birth_date=f"{date.today().year - 10}-1-1")
    assert refusal(lambda: service.desk.correct(AN, pid, young, "typo")).fields == {
        "birth_date": "too_young"}
    assert refusal(lambda: service.desk.correct(AN, pid, details_of(service, pid), "  ")
                   ).fields == {"reason": "required"}
    # With the values' problems: all at once.
    assert refusal(lambda: service.desk.correct(AN, pid, young, "")).fields == {
        "birth_date": "too_young", "reason": "required"}
    assert corrections(service) == []


def test_another_accounts_e_mail_address_is_refused(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    a_patron(service, email="taken@example.be")
    pid, _ = a_patron(service)
    taken = replace(details_of(service, pid), email="TAKEN@example.be")
    assert refusal(lambda: service.desk.correct(AN, pid, taken, "typo")).fields == {
        "email": "email_taken"}


def test_a_lookalike_is_refused_unless_confirmed_then_queued(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    other, _ = a_patron(service, first_name="Jan", last_name="Peeters",
                        birth_date="1950-01-01")
    pid, _ = a_patron(service, first_name="Jan", last_name="Peters", birth_date="1950-01-01")
    alike = replace(details_of(service, pid), last_name="Peeters")
    error = refusal(lambda: service.desk.correct(AN, pid, alike, "typo in the name"))
    assert error.fields == {"lookalike": "lookalike_account"}
    assert row(service, pid).last_name == "Peters"
    done = service.desk.correct(AN, pid, alike, "typo in the name", lookalike_ok=True)
    assert done.possible_duplicate and done.changed == ("last_name",)
    with service.store.read() as s:
        flags = s.execute(select(DuplicateFlag.patron_id, DuplicateFlag.other_id)).all()
    assert [tuple(f) for f in flags] == [(pid, other)]
    assert corrections(service)[-1].detail["possible_duplicate"] is True


def test_only_patrons_and_libraries_of_ones_own_institution(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    pid, _ = a_patron(service)
    details = details_of(service, pid)
    assert refusal(lambda: service.desk.correct(ELS, pid, details, "x")).code == "not_found"
    moved = replace(details, library_code="KOR-CENTRUM")
    assert refusal(lambda: service.desk.correct(AN, pid, moved, "moved")).fields == {
        "library_code": "library_out_of_reach"}
    # A coordinator serves every institution.
    assert service.desk.correct(COORDINATOR, pid, moved, "moved").changed == ("library",)
    assert service.desk.patron(COORDINATOR, pid, "en").institution_code == "KOR"
    assert refusal(lambda: service.desk.patron(AN, pid, "en")).code == "not_found"


def test_a_new_e_mail_address_is_told_at_both_addresses_in_the_patrons_language(
        make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    service.notices.enabled = True
    pid, _ = a_patron(service, email="old@example.be", language="fr")
    service.desk.correct(AN, pid, replace(details_of(service, pid), email="new@example.be"),
                         "new address")
    sent = outbox(service)
    assert [(to, lang) for to, lang, _ in sent] == [("old@example.be", "fr"),
                                                   ("new@example.be", "fr")]
    assert {subject for _, _, subject in sent} == {"Votre adresse e-mail a changé"}
    with service.store.read() as s:
        bodies = s.scalars(select(Notice.body).where(Notice.kind == "email_changed")).all()
    assert "new@example.be" not in bodies[0]  # the old address is not told the new one


def test_a_members_library_keeps_their_name_e_mail_and_birth_date(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    pid, _ = a_patron(service, email="member@example.be")
    with service.store.write() as s:
        ant = s.scalar(select(Institution.id).where(Institution.code == "ANT"))
        s.execute(update(Patron).where(Patron.id == pid).values(
            member_barcode="A123456", member_institution_id=ant, birth_date=None,
            postcode=""))
    typed = PatronDetails(first_name="", last_name="", email="", birth_date="",
                          postcode="", library_code="ANT-HOBOKEN", phone="0470123456",
                          language="en")
    done = service.desk.correct(COORDINATOR, pid, typed, "phone number given")
    assert done.changed == ("library", "phone", "language")
    after = row(service, pid)
    assert (after.first_name, after.email, after.birth_date, after.postcode) == (
        "Mia", "member@example.be", None, "")
    # Not to another institution: their card is their own institution's.
    away = replace(typed, library_code="KOR-CENTRUM")
    assert refusal(lambda: service.desk.correct(COORDINATOR, pid, away, "x")).fields == {
        "library_code": "library_out_of_reach"}


def test_the_patron_changes_their_own_language_and_e_mail_address(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    service.notices.enabled = True
    a_patron(service, email="taken@example.be")
    pid, token = a_patron(service, email="mine@example.be", language="nl")
    assert service.change_my_details(token, "mine@example.be", "fr") == ("language",)
    assert outbox(service) == []  # a language alone needs no password and tells no one
    wrong = refusal(lambda: service.change_my_details(token, "new@example.be", "fr", "nope"))
    assert wrong.fields == {"password": "current_password_wrong"}
    taken = refusal(lambda: service.change_my_details(token, "taken@example.be", "fr",
                                                      "correct horse"))
    assert taken.fields == {"email": "email_taken"}
    invalid = refusal(lambda: service.change_my_details(token, "no address", "de"))
    assert invalid.fields == {"email": "email_invalid", "language": "language_unknown"}
    assert service.change_my_details(token, " New@Example.be ", "fr", "correct horse") == (
        "email",)
    assert row(service, pid).email == "new@example.be"
    assert [(to, lang) for to, lang, _ in outbox(service)] == [("mine@example.be", "fr"),
                                                               ("new@example.be", "fr")]
    assert [e.detail["changed"] for e in corrections(service)] == [["language"], ["email"]]
    assert service.login("new@example.be", "correct horse")[1].language == "fr"


def test_passwords_typed_again_count_as_log_ins_and_the_last_one_logs_out_everywhere(
        make_service) -> None:  # type: ignore[no-untyped-def]
    """A kiosk left logged in is no place to try passwords: to change the e-mail address,
    the password or to erase the account, a wrong one counts as a wrong log-in does."""
    service = make_service()
    pid, token = a_patron(service, email="mine@example.be")
    other_kiosk, _ = service.login("mine@example.be", "correct horse")
    for _ in range(3):
        wrong = refusal(lambda: service.change_my_details(token, "new@example.be", "nl", "no"))
        assert wrong.fields == {"password": "current_password_wrong"}
    assert refusal(lambda: service.erase_account(token, "nope")).fields == {
        "password": "password_wrong"}
    locked = refusal(lambda: service.change_password(token, "guess", "another horse"))
    assert locked.code == "account_locked" and locked.detail["until"] is not None
    for ended in (token, other_kiosk):  # every session of the patron ended
        assert refusal(lambda t=ended: service.whoami(t)).code == "session_invalid"
    assert refusal(lambda: service.login("mine@example.be", "correct horse")).code == \
        "account_locked"
    assert row(service, pid).email == "mine@example.be"  # nothing changed


def test_the_right_password_typed_again_puts_the_count_back(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    pid, token = a_patron(service, email="mine@example.be")
    for _ in range(4):
        refusal(lambda: service.change_my_details(token, "new@example.be", "nl", "no"))
    assert service.change_my_details(token, "new@example.be", "nl", "correct horse") == (
        "email",)
    for _ in range(4):  # four wrong ones again: still short of the lock
        assert refusal(lambda: service.erase_account(token, "nope")).code == "invalid"
    assert row(service, pid).email == "new@example.be"


def test_a_member_changes_only_the_language_of_their_e_mails(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    pid, token = a_patron(service, email="member2@example.be", language="nl")
    with service.store.write() as s:
        ant = s.scalar(select(Institution.id).where(Institution.code == "ANT"))
        s.execute(update(Patron).where(Patron.id == pid).values(
            member_barcode="A222222", member_institution_id=ant, birth_date=None))
    refused = refusal(lambda: service.change_my_details(token, "other@example.be", "nl",
                                                        "correct horse"))
    assert refused.fields == {"email": "email_from_library"}
    assert service.change_my_details(token, "", "en") == ("language",)
    assert (row(service, pid).email, row(service, pid).language) == ("member2@example.be", "en")
