"""Changes that cannot be undone are asked once more, by the server, without any script: the
patron's "No thanks" to a seat held for them and "Stop this course", the desk's withdraw, give
up the seat and leave the waiting list, retiring a course, revoking a terminal. The first
step (a GET, or the POST of an older one-tap page) changes nothing and says what will happen,
by the programme's seat rules; only the confirmation page's button (confirm=yes, with its
CSRF token) does it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from kiosk.registry.domain import Standing
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Patron
from kiosk.staff.courses import KIOSK_DELAY
from tests.support.browser import LANGS, t
from tests.support.contract import Registry
from tests.support.factories import CONFIRMED, add_patron, build_app, log_in_staff, patron_data

PASSWORD = "correct horse"


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def offered(service: RegistryService, *, someone_else_waits: bool) -> tuple[str, str]:
    """Offer and hold, one seat: it is offered to the one who waited; answers their card
    number and session token (password PASSWORD)."""
    service.set_cap(1, actor="test")
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    _, holder = add_patron(service)
    card = service.register(patron_data())
    token = service.login(card, PASSWORD)[0]
    service.claim(holder, "excel-basics")
    service.claim(token, "excel-basics")
    if someone_else_waits:
        service.claim(add_patron(service)[1], "word-basics")
    service.give_up_seat(holder)
    assert service.status(token).standing is Standing.OFFERED
    return card, token


def patron_id(service: RegistryService, card: str) -> int:
    with service.store.read() as s:
        found = s.scalar(select(Patron.id).where(Patron.card_number == card))
    assert found is not None
    return found


# --- The patron --------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_no_thanks_is_asked_once_more_in_the_page_language_and_says_where_the_seat_goes(
        client: FlaskClient, service: RegistryService, lang: str) -> None:
    card, token = offered(service, someone_else_waits=True)
    client.post(f"/{lang}/login", data={"identifier": card, "password": PASSWORD})
    offer = text(client.get(f"/{lang}/my/offer"))
    assert f'href="/{lang}/my/offer/decline"' in offer  # a link to the question, no form
    asked = client.get(f"/{lang}/my/offer/decline")
    page = text(asked)
    assert asked.status_code == 200 and f'<html lang="{lang}"' in page
    assert t(lang, "Say no thanks to this seat?") in page
    # Offer and hold, someone waiting: the seat is kept for them, not given "at once".
    assert t(lang, "The seat is kept for the next person on the waiting list, who gets a few "
                   "days to take it.") in page
    assert t(lang, "If you change your mind, you can enrol again. If the programme is full "
                   "then, you join the back of the waiting list.") in page
    # The safe choice first, focused, described by what would happen; then the change.
    keep = page.index(t(lang, "Keep my seat"))
    assert keep < page.index(t(lang, "Yes, give this seat away"))
    assert re.search(r'<a class="button primary" href="/\w\w/my/offer" autofocus '
                     r'aria-describedby="consequences">', page)
    assert 'name="confirm" value="yes"' in page
    assert service.status(token).standing is Standing.OFFERED


def test_no_thanks_without_the_confirmation_does_nothing(client: FlaskClient,
                                                         service: RegistryService) -> None:
    card, token = offered(service, someone_else_waits=False)
    client.post("/en/login", data={"identifier": card, "password": PASSWORD})
    # Nobody else waits: the seat stays free, and the page says so.
    for sent in ({}, {"confirm": "no"}, {"confirm": "YES "}):
        answer = client.post("/en/my/offer/decline", data=sent)
        assert answer.status_code == 200
        assert "Nobody is waiting now: the seat stays free for the next person who enrols." \
            in text(answer)
        assert service.status(token).standing is Standing.OFFERED
    done = client.post("/en/my/offer/decline", data=CONFIRMED)
    assert done.status_code == 302 and "done=offer-decline" in done.headers["Location"]
    assert service.status(token).standing is Standing.NONE


def test_under_grant_stopping_the_last_course_says_the_seat_goes_at_once(
        client: FlaskClient, service: RegistryService, registered: dict[str, str]) -> None:
    service.set_cap(1, actor="test")
    assert client.post("/en/courses/excel-basics/enrol").status_code == 302
    service.claim(add_patron(service)[1], "word-basics")  # waits
    page = text(client.get("/en/my/withdraw/excel-basics"))
    assert "It is your only course, so you also give up your seat." in page
    assert "The seat goes at once to the next person on the waiting list." in page
    assert page.index("Keep this course") < page.index("Yes, stop this course")
    assert client.post("/en/my/withdraw/excel-basics").status_code == 200  # asked again
    assert "excel-basics" in text(client.get("/en/my"))
    assert client.post("/en/courses/word-basics/enrol").status_code == 302
    # Another course left: only this one stops.
    assert "You keep your other courses and your place in the programme." in text(
        client.get("/en/my/withdraw/excel-basics"))


def test_the_patrons_confirmation_needs_its_csrf_token(tmp_path: Path) -> None:
    app = build_app(tmp_path, WTF_CSRF_ENABLED=True)
    service: RegistryService = app.extensions["registry_service"]
    card, token = offered(service, someone_else_waits=True)
    client = app.test_client()
    login = text(client.get("/en/login"))
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login)
    assert csrf
    client.post("/en/login", data={"identifier": card, "password": PASSWORD,
                                   "csrf_token": csrf.group(1)})
    page = text(client.get("/en/my/offer/decline"))
    assert 'name="csrf_token"' in page
    refused = client.post("/en/my/offer/decline", data=CONFIRMED)
    assert refused.status_code == 400
    assert service.status(token).standing is Standing.OFFERED
    sent = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert sent
    done = client.post("/en/my/offer/decline", data={**CONFIRMED, "csrf_token": sent.group(1)})
    assert done.status_code == 302
    assert service.status(token).standing is Standing.NONE


def test_the_kiosk_learns_the_seat_policy_over_both_clients(registry: Registry) -> None:
    assert registry.client.programme_status().promotion == "grant"
    registry.service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    assert registry.client.programme_status().promotion == "offer"
    assert registry.client.programme_status() == registry.service.programme_status()


# --- The desk ----------------------------------------------------------------------------------


@pytest.fixture
def desk(app: Flask) -> FlaskClient:
    client = app.test_client()
    log_in_staff(client, "an.peeters")
    return client


def test_the_desk_asks_before_a_patron_leaves_the_waiting_list(
        desk: FlaskClient, service: RegistryService) -> None:
    service.set_cap(1, actor="test")
    service.claim(add_patron(service)[1], "word-basics")
    card, token = add_patron(service, first_name="Wout", last_name="Wachter")
    service.claim(token, "excel-basics")
    page_url = f"/en/staff/desk/patrons/{patron_id(service, card)}"
    patron_page = text(desk.get(page_url))
    assert f'href="{page_url}/leave-waiting-list"' in patron_page
    asked = text(desk.get(f"{page_url}/leave-waiting-list"))
    assert "Take Wout Wachter off the waiting list?" in asked
    assert "Wout Wachter loses place 1 in line and their chosen courses." in asked
    assert asked.index(">Cancel<") < asked.index("Yes, leave the waiting list")
    for sent in ({}, {"confirm": "no"}):
        assert desk.post(f"{page_url}/leave-waiting-list", data=sent).status_code == 200
        assert service.status(token).standing is Standing.WAITING
    assert desk.post(f"{page_url}/leave-waiting-list", data=CONFIRMED).status_code == 302
    assert service.status(token).standing is Standing.NONE
    # Nothing left to confirm: the patron's page says why.
    gone = desk.get(f"{page_url}/leave-waiting-list", follow_redirects=True)
    assert "You are not on the waiting list." in text(gone)


def test_the_desk_says_what_withdrawing_the_last_course_does_under_offer_and_hold(
        desk: FlaskClient, service: RegistryService) -> None:
    service.set_cap(1, actor="test")
    service.policies.set_seat_policy("offer", 4, False, {}, actor="test")
    card, token = add_patron(service, first_name="Sien", last_name="Zetel")
    service.claim(token, "excel-basics")
    service.claim(add_patron(service)[1], "word-basics")  # waits
    page_url = f"/en/staff/desk/patrons/{patron_id(service, card)}"
    asked = text(desk.get(f"{page_url}/withdraw/excel-basics"))
    assert "Withdraw Sien Zetel from “Excel basics”?" in asked
    assert "It is their only course: Sien Zetel also loses their seat." in asked
    assert "The seat is offered to the next in line, who has 4 opening days to take it." in asked
    give_up = text(desk.get(f"{page_url}/give-up-seat"))
    assert "Sien Zetel loses their seat and every course." in give_up
    assert desk.post(f"{page_url}/withdraw/excel-basics").status_code == 200
    assert desk.post(f"{page_url}/give-up-seat").status_code == 200
    assert service.status(token).standing is Standing.SEATED
    assert desk.post(f"{page_url}/give-up-seat", data=CONFIRMED).status_code == 302
    assert service.status(token).standing is Standing.NONE


def test_a_librarian_of_another_institution_does_not_see_the_question(
        app: Flask, service: RegistryService) -> None:
    card, token = add_patron(service)  # of Antwerpen
    service.claim(token, "excel-basics")
    other = app.test_client()
    log_in_staff(other, "els.maes")  # Kortrijk
    page_url = f"/en/staff/desk/patrons/{patron_id(service, card)}"
    assert other.get(f"{page_url}/give-up-seat").status_code == 404
    assert other.post(f"{page_url}/give-up-seat", data=CONFIRMED).status_code == 404
    assert service.status(token).standing is Standing.SEATED


# --- The coordinator's catalogue and branch IT -----------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_retiring_a_course_is_asked_once_more(staff_client, service: RegistryService,
                                              lang: str) -> None:  # type: ignore[no-untyped-def]
    service.claim(add_patron(service)[1], "excel-basics")
    coordinator = staff_client("coordinator", lang)
    asked = coordinator.get(f"/{lang}/staff/courses/excel-basics/retire")
    page = text(asked)
    assert asked.status_code == 200 and f'<html lang="{lang}"' in page
    title = service.course("excel-basics", lang).title
    assert t(lang, "Retire “%(title)s”?", title=title) in page
    assert t(lang, "Kiosks stop offering it within %(seconds)s seconds.",
             seconds=KIOSK_DELAY) in page
    assert page.index(t(lang, "Cancel")) < page.index(t(lang, "Yes, retire the course"))
    assert coordinator.post(f"/{lang}/staff/courses/excel-basics/retire").status_code == 200
    assert service.course("excel-basics", lang)  # still offered
    done = coordinator.post(f"/{lang}/staff/courses/excel-basics/retire", data=CONFIRMED)
    assert done.status_code == 302
    assert "excel-basics" not in {c.slug for c in service.catalogue(lang).courses}
    # Retired already: nothing to ask, back to the list.
    assert coordinator.get(f"/{lang}/staff/courses/excel-basics/retire").status_code == 302
    assert coordinator.get(f"/{lang}/staff/courses/no-such-course/retire").status_code == 404


def test_revoking_a_terminal_is_asked_once_more(staff_client, service: RegistryService) -> None:  # type: ignore[no-untyped-def]
    _token, terminal = service.add_terminal("ANT-PERMEKE", "Permeke kiosk 2", actor="cli")
    it = staff_client("it.support", "fr")
    listing = text(it.get("/fr/staff/terminals"))
    assert f'href="/fr/staff/terminals/{terminal.id}/revoke"' in listing
    page = text(it.get(f"/fr/staff/terminals/{terminal.id}/revoke"))
    assert t("fr", "Revoke the token of terminal %(name)s?", name="Permeke kiosk 2") in page
    assert "Permeke" in page and "kiosk registry add-terminal" in page
    assert it.post(f"/fr/staff/terminals/{terminal.id}/revoke").status_code == 200
    assert not service.terminals()[0].revoked
    assert it.post(f"/fr/staff/terminals/{terminal.id}/revoke",
                   data=CONFIRMED).status_code == 302
    assert service.terminals()[0].revoked
    assert it.get(f"/fr/staff/terminals/{terminal.id}/revoke").status_code == 302
    assert it.get("/fr/staff/terminals/999/revoke").status_code == 404
