"""The librarian's desk: find, see and act for a patron, within one's own institution."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from kiosk.registry.desk import (
    ONE_TIME_ALPHABET,
    mask_card_number,
    one_time_password,
    read_query,
)
from kiosk.registry.domain import (
    RegistryError,
    Standing,
    format_card_number,
    make_card_number,
)
from kiosk.registry.roles import Role, StaffView
from kiosk.registry.services import RegistryService, pseudonym, utcnow
from kiosk.registry.store import AuditEntry, Patron
from tests.support.factories import add_patron, patron_data

COORDINATOR = StaffView(1, "coordinator", "Coordinator", Role.COORDINATOR, None, None)
AN = StaffView(2, "an.peeters", "An Peeters", Role.LIBRARIAN, "ANT", "ANT-PERMEKE",
               "Permeke")
ELS = StaffView(3, "els.maes", "Els Maes", Role.LIBRARIAN, "KOR", "KOR-CENTRUM",
                "Centrum Kortrijk")


def refusal(call) -> RegistryError:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryError) as info:
        call()
    return info.value


def patron_id(service: RegistryService, card: str) -> int:
    with service.store.read() as s:
        found = s.scalar(select(Patron.id).where(Patron.card_number == card))
        assert found is not None
        return found


def entries(service: RegistryService, action: str) -> list[AuditEntry]:
    with service.store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                         .order_by(AuditEntry.id)).all()
        s.expunge_all()
        return list(rows)


# --- Rules without a database ------------------------------------------------------------


def test_reading_a_query() -> None:
    card = make_card_number("2101", 12345678)
    spaced = f"{card[:4]} {card[4:8]}-{card[8:]}"
    assert read_query(spaced, None).value == card
    assert read_query(" Mia@Example.BE ", None).value == "mia@example.be"
    named = read_query("ÉLISE  Dubois", date(1950, 4, 3))
    assert (named.kind, named.value) == ("name", "elise dubois")
    assert refusal(lambda: read_query("Élise", None)).fields == {
        "birth_date": "birth_date_needed"}
    assert refusal(lambda: read_query(card[:-1] + str((int(card[-1]) + 1) % 10), None)
                   ).fields == {"query": "card_invalid"}
    assert refusal(lambda: read_query("   ", None)).fields == {"query": "required"}


def test_masking_and_one_time_passwords() -> None:
    assert mask_card_number("2101123456789") == "2101 •••• ••789"
    made = {one_time_password() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", secret)
        assert not set(secret.replace("-", "")) - set(ONE_TIME_ALPHABET)
        assert not set(secret) & set("0o1liI")


# --- The service, on SQLite and PostgreSQL -------------------------------------------------


def test_search_is_accent_and_case_insensitive_and_scoped(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    card, _ = add_patron(service, first_name="Élise", last_name="Dubois",
                         birth_date="1950-04-03", email="elise@example.be")
    add_patron(service, first_name="Elise", last_name="Dubois", birth_date="1961-01-01")
    kor_card, _ = add_patron(service, first_name="Élise", last_name="Dubois",
                             birth_date="1950-04-03", library_code="KOR-CENTRUM")
    hits = service.desk.find(AN, "elise dubois", date(1950, 4, 3))
    assert [(h.first_name, h.masked_card) for h in hits] == [("Élise", mask_card_number(card))]
    assert card not in repr(hits)  # result lists show masked numbers only
    assert [h.institution_code for h in service.desk.find(COORDINATOR, "ELISE DUBOIS",
                                                          date(1950, 4, 3))] == ["ANT", "KOR"]
    assert [h.id for h in service.desk.find(AN, "dubois", date(1950, 4, 3))] == [
        patron_id(service, card)]
    # Each word on its own, in any order; all of them must match.
    for query in ("Dubois Élise", "DUBOIS  elise", "dub eli"):
        assert [h.id for h in service.desk.find(AN, query, date(1950, 4, 3))] == [
            patron_id(service, card)], query
    assert service.desk.find(AN, "Élise Martin", date(1950, 4, 3)) == []
    assert len(service.desk.find(AN, f"{card[:4]} {card[4:8]} {card[8:]}")) == 1
    assert len(service.desk.find(AN, "ELISE@example.be")) == 1
    # A librarian of KOR finds nobody of ANT, by any key; nor the other way round.
    assert service.desk.find(ELS, card) == []
    assert service.desk.find(ELS, "elise@example.be") == []
    assert [h.masked_card for h in service.desk.find(ELS, "élise dubois", date(1950, 4, 3))
            ] == [mask_card_number(kor_card)]
    with pytest.raises(RegistryError) as info:
        service.desk.patron(ELS, patron_id(service, card), "en")
    assert info.value.code == "not_found"


def test_every_action_is_audited_with_assisted_by(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service(cap=1)
    card, token = add_patron(service)
    _, other = add_patron(service)
    pid = patron_id(service, card)
    label = AN.assisted_label

    record = service.desk.patron(AN, pid, "en", where="desk 1")
    assert record.card_number == card and record.status.standing is Standing.NONE
    service.desk.patron(AN, pid, "en", where="desk 1")  # a second look soon after: one entry
    assert len(entries(service, "patron_viewed")) == 1

    assert service.desk.enrol(AN, pid, "excel-basics", where="desk 1").newly_granted
    service.desk.enrol(AN, pid, "instagram", where="desk 1")
    assert service.claim(other, "word-basics").standing is Standing.WAITING
    status = service.desk.withdraw(AN, pid, "instagram", where="desk 1")
    assert [e.course_slug for e in status.enrolments] == ["excel-basics"]
    receipt = service.desk.receipt(AN, pid, where="desk 1")
    assert receipt.language == "nl" and receipt.status.standing is Standing.SEATED
    service.desk.give_up_seat(AN, pid, where="desk 1")
    assert service.status(other).standing is Standing.SEATED  # the next in line moved up
    service.desk.enrol(AN, pid, "excel-basics", where="desk 1")
    service.desk.leave_waiting_list(AN, pid, where="desk 1")
    assert refusal(lambda: service.desk.give_up_seat(AN, pid)).code == "not_seated"

    for action in ("patron_viewed", "patron_enrolled", "patron_withdrawn", "receipt_printed",
                   "seat_given_up", "waiting_list_left"):
        found = entries(service, action)
        assert found, action
        for entry in found:
            assert (entry.actor, entry.subject, entry.institution, entry.terminal) == (
                "staff:an.peeters", pseudonym(pid), "ANT", "desk 1"), action
            if action != "patron_viewed":
                assert entry.detail["assisted_by"] == label
            assert card not in str(entry.detail)

    # Nothing of this for a librarian of another institution, and nothing is written.
    before = len(entries(service, "patron_enrolled"))
    for call in (lambda: service.desk.enrol(ELS, pid, "excel-basics"),
                 lambda: service.desk.give_up_seat(ELS, pid),
                 lambda: service.desk.set_password(ELS, pid, None),
                 lambda: service.desk.erase(ELS, pid, "asked"),
                 lambda: service.desk.receipt(ELS, pid)):
        assert refusal(call).code == "not_found"
    assert len(entries(service, "patron_enrolled")) == before

    assert refusal(lambda: service.desk.erase(AN, pid, "  ")).fields == {"reason": "required"}
    service.desk.erase(AN, pid, "the patron asked for it", where="desk 1")
    erased = entries(service, "patron_erased")[-1]
    assert erased.detail["assisted_by"] == label
    assert erased.detail["reason"] == "the patron asked for it"
    assert erased.terminal == "desk 1" and erased.subject == pseudonym(pid)
    assert refusal(lambda: service.desk.patron(AN, pid, "en")).code == "not_found"


def test_an_account_made_at_the_desk(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    made, pid = service.desk.register(AN, patron_data(language="fr"), identity_checked=True,
                                      where="desk 2")
    record = service.desk.patron(AN, pid, "en")
    assert record.card_number == made.card_number and record.language == "fr"
    assert record.identity_checked_at is not None and record.identity_checked_by == AN.actor
    entry = entries(service, "patron_registered")[-1]
    assert (entry.actor, entry.subject, entry.terminal, entry.institution) == (
        AN.actor, pseudonym(pid), "desk 2", "ANT")
    assert entry.detail == {"assisted_by": AN.assisted_label, "identity_checked": True}

    _, unchecked = service.desk.register(COORDINATOR, patron_data(), identity_checked=False)
    assert service.desk.patron(COORDINATOR, unchecked, "en").identity_checked_at is None
    # A librarian creates accounts only at their own institution's libraries.
    error = refusal(lambda: service.desk.register(ELS, patron_data(), identity_checked=True))
    assert error.fields == {"library_code": "library_not_served"}


def test_a_one_time_password_must_be_changed_at_the_next_log_in(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    card, token = add_patron(service)
    pid = patron_id(service, card)
    for _ in range(5):  # locked out
        refusal(lambda: service.login(card, "wrong password"))
    assert service.desk.patron(AN, pid, "en").locked_until is not None

    secret = service.desk.set_password(AN, pid, None, where="desk 1")
    assert secret is not None
    assert refusal(lambda: service.whoami(token)).code == "session_invalid"  # logged out
    assert refusal(lambda: service.login(card, "correct horse")).code == "login_failed"
    # As printed, or as an elderly patron may type it: capitals, spaces for the dashes.
    service.login(card, secret.upper().replace("-", " "))
    new_token, view = service.login(card, secret)  # unlocked
    assert view.must_change_password and service.whoami(new_token).must_change_password
    entry = entries(service, "password_set")[-1]
    assert entry.detail == {"assisted_by": AN.assisted_label, "how": "one_time",
                            "unlocked": True}
    assert secret not in str(entry.detail)

    assert refusal(lambda: service.change_password(new_token, "nope nope", "mine at last")
                   ).fields == {"old_password": "current_password_wrong"}
    assert refusal(lambda: service.change_password(new_token, secret, secret)
                   ).fields == {"new_password": "password_unchanged"}
    assert refusal(lambda: service.change_password(new_token, secret, "short")
                   ).fields == {"new_password": "password_too_short"}
    # Until then the session reads who it is and sets the password, nothing else: whoever
    # saw the printout cannot enrol, read or erase in the patron's name.
    for call in (lambda: service.status(new_token),
                 lambda: service.claim(new_token, "excel-basics"),
                 lambda: service.withdraw(new_token, "excel-basics"),
                 lambda: service.give_up_seat(new_token),
                 lambda: service.leave_waiting_list(new_token),
                 lambda: service.my_data(new_token, "en"),
                 lambda: service.erase_account(new_token, secret),
                 lambda: service.accept_offer(new_token),
                 lambda: service.decline_offer(new_token)):
        assert refusal(call).code == "password_change_required"
    assert service.desk.patron(AN, pid, "en").status.enrolments == []  # nothing was done
    service.change_password(new_token, secret, "mine at last")
    assert not service.whoami(new_token).must_change_password
    assert service.claim(new_token, "excel-basics").standing is Standing.SEATED
    assert service.login(card, "mine at last")[1].must_change_password is False

    # Typed by the patron at the desk: theirs already, nothing to change.
    assert service.desk.set_password(AN, pid, "typed by me") is None
    assert not service.login(card, "typed by me")[1].must_change_password
    assert refusal(lambda: service.desk.set_password(AN, pid, "short")).fields == {
        "password": "password_too_short"}


# --- The pages ------------------------------------------------------------------------------


def test_pages_search_view_and_scope(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    card, _ = add_patron(service, first_name="Élise", last_name="Dubois",
                         birth_date="1950-04-03")
    pid = patron_id(service, card)
    an = staff_client("an.peeters")
    page = an.post("/en/staff/desk", data={"query": "elise dubois",
                                           "birth_date": "1950-04-03"})
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and f"/desk/patrons/{pid}" in text
    assert mask_card_number(card) in text and card not in text
    assert an.post("/en/staff/desk", data={"query": "elise dubois"}).status_code == 422

    record = an.get(f"/en/staff/desk/patrons/{pid}")
    assert record.status_code == 200 and "Dubois" in record.get_data(as_text=True)
    els = staff_client("els.maes")
    assert els.get(f"/en/staff/desk/patrons/{pid}").status_code == 404
    assert els.post(f"/en/staff/desk/patrons/{pid}/enrol",
                    data={"course": "excel-basics"}).status_code == 404
    nothing = els.post("/en/staff/desk", data={"query": "elise dubois",
                                               "birth_date": "1950-04-03"})
    assert "No patron found" in nothing.get_data(as_text=True)
    assert f"/desk/patrons/{pid}" not in nothing.get_data(as_text=True)
    assert staff_client("it.support").get("/en/staff/desk").status_code == 403

    done = an.post(f"/en/staff/desk/patrons/{pid}/enrol", data={"course": "excel-basics"})
    assert done.status_code == 302
    assert service.desk.patron(AN, pid, "en").status.standing is Standing.SEATED
    printed = an.post(f"/en/staff/desk/patrons/{pid}/receipt")
    assert printed.status_code == 200 and 'lang="nl"' in printed.get_data(as_text=True)
    assert printed.headers["Cache-Control"] == "no-store"


def test_pages_one_time_password_then_the_kiosk_asks_for_a_new_one(  # type: ignore[no-untyped-def]
        staff_client, service, client) -> None:
    card, _ = add_patron(service, language="en")
    pid = patron_id(service, card)
    an = staff_client("an.peeters")
    page = an.post(f"/en/staff/desk/patrons/{pid}/one-time-password")
    found = re.search(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", page.get_data(as_text=True))
    assert page.status_code == 200 and found
    secret = found.group(0)

    login = client.post("/en/login", data={"identifier": card, "password": secret})
    assert login.status_code == 302 and login.headers["Location"].endswith("/en/account/password")
    # Anything else sends the patron back to choose their password first.
    assert client.get("/en/my").headers["Location"].endswith("/en/account/password")
    wrong = client.post("/en/account/password",
                        data={"old_password": secret, "new_password": "short"})
    assert wrong.status_code == 422
    done = client.post("/en/account/password",
                       data={"old_password": secret, "new_password": "my own words"})
    assert done.status_code == 302
    assert client.get("/en/my").status_code == 200
    # Then the journey goes on as usual: the registry no longer refuses this session.
    assert client.post("/en/courses/excel-basics/enrol").status_code == 302
    assert client.get("/en/courses/excel-basics/done").status_code == 200
    assert service.login(card, "my own words")[1].must_change_password is False


def test_pages_register_at_the_desk(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    an = staff_client("an.peeters")
    assert an.get("/en/staff/desk/new").status_code == 200
    form = {"first_name": "Jan", "last_name": "Peeters", "email": "jan@example.be",
            "birth_day": "1", "birth_month": "2", "birth_year": "1960", "postcode": "2000",
            "library": "ANT-PERMEKE", "password": "chosen by jan", "language": "fr",
            "consent": "y", "identity_checked": "y"}
    bad = an.post("/en/staff/desk/new", data={**form, "postcode": "12", "consent": ""})
    assert bad.status_code == 422
    made = an.post("/en/staff/desk/new", data=form)
    assert made.status_code == 302
    pid = int(made.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    record = service.desk.patron(AN, pid, "en")
    assert record.language == "fr" and record.identity_checked_at is not None
    assert staff_client("els.maes").post(
        "/en/staff/desk/new", data={**form, "email": "x@example.be"}).status_code == 422


def test_the_record_names_the_librarian_and_says_never_logged_in(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    _, pid = service.desk.register(AN, patron_data(), identity_checked=True)
    page = staff_client("an.peeters").get(f"/en/staff/desk/patrons/{pid}").get_data(
        as_text=True)
    assert "by An Peeters" in page and "an.peeters" not in page
    assert re.search(r"Last log-in</th><td>never</td>", page)
    assert service.desk.patron(AN, pid, "en").identity_checked_by_name == "An Peeters"
    nl = staff_client("an.peeters", "nl").get(f"/nl/staff/desk/patrons/{pid}")
    assert re.search(r"</th><td>nooit</td>", nl.get_data(as_text=True))
    card, _ = add_patron(service)  # made at the kiosk, then logged in: a real last log-in
    kiosk_made = service.desk.patron(AN, patron_id(service, card), "en")
    assert kiosk_made.last_active_at is not None


def test_the_search_speaks_to_the_librarian_and_reads_belgian_days(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    card, _ = add_patron(service, first_name="Élise", last_name="Dubois",
                         birth_date="1950-04-03")
    an = staff_client("an.peeters")
    page = an.get("/en/staff/desk").get_data(as_text=True)
    example = re.search(r"For example ([\d ]+),", page)
    assert example and example[1] == format_card_number(example[1].replace(" ", ""))
    assert 'type="date"' not in page and "Day/month/year, for example 03/04/1950" in page
    for typed in ("03/04/1950", "3-4-1950", "1950-04-03"):
        found = an.post("/en/staff/desk", data={"query": "elise dubois", "birth_date": typed})
        assert f"/desk/patrons/{patron_id(service, card)}" in found.get_data(as_text=True)
    wrong = an.post("/en/staff/desk", data={"query": "elise dubois", "birth_date": "31/02/1950"})
    text = wrong.get_data(as_text=True)
    assert wrong.status_code == 422 and "your date of birth" not in text
    assert "Type the date as day/month/year, for example 03/04/1950." in text
    assert 'value="31/02/1950"' in text  # kept as typed, to correct it
    french = staff_client("an.peeters", "fr").post(
        "/fr/staff/desk", data={"query": "elise dubois", "birth_date": "1950"})
    assert "Tapez la date sous la forme jour/mois/année" in french.get_data(as_text=True)


def test_view_audit_is_recorded_again_after_a_while(make_service) -> None:  # type: ignore[no-untyped-def]
    start = utcnow()
    now = [start]
    service = make_service(clock=lambda: now[0])
    card, _ = add_patron(service)
    pid = patron_id(service, card)
    service.desk.patron(AN, pid, "en")
    now[0] = start + timedelta(minutes=20)
    service.desk.patron(AN, pid, "en")
    assert len(entries(service, "patron_viewed")) == 2


def test_e_mailing_the_receipt_goes_through_the_outbox(make_service) -> None:  # type: ignore[no-untyped-def]
    from kiosk.registry import notices
    from kiosk.registry.store import Notice

    service = make_service()
    card, _ = add_patron(service, language="fr")
    pid = patron_id(service, card)
    assert refusal(lambda: service.desk.email_receipt(AN, pid)).code == "mail_not_set_up"
    notices.enable(service.store)
    service.desk.enrol(AN, pid, "excel-basics")
    service.desk.email_receipt(AN, pid, where="desk 1")
    with service.store.read() as s:
        kinds = s.execute(select(Notice.kind, Notice.language)
                          .where(Notice.patron_id == pid)).all()
    assert ("receipt", "fr") in [tuple(k) for k in kinds]
    entry = entries(service, "receipt_emailed")[-1]
    assert entry.detail == {"assisted_by": AN.assisted_label}
    assert entry.subject == pseudonym(pid)
