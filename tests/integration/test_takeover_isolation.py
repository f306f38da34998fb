"""A take-over on a kiosk and the staff pages mounted on the same app keep apart: the take-over's
staff token never opens the staff pages (assisted, or handed back to the patron), and a
staff-page log-in in the same browser never becomes a take-over."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from kiosk.registry.services import RegistryService
from tests.support.factories import STAFF_PASSWORDS, add_patron, log_in_staff
from tests.support.takeover import LABEL, log_in_patron, take_over, text

STAFF_PAGES = ("/en/staff/", "/en/staff/desk", "/en/staff/pending", "/en/staff/duplicates")


def sent_to_staff_login(response: Any) -> bool:
    return response.status_code == 302 and "/en/staff/login" in response.location


def test_the_staff_pages_need_a_staff_log_in_while_assisted_and_after_the_hand_back(
        client: FlaskClient, service: RegistryService) -> None:
    card, _ = add_patron(service)
    log_in_patron(client, card)
    take_over(client)
    assert LABEL in text(client.get("/en/courses/"))
    for path in STAFF_PAGES:
        assert sent_to_staff_login(client.get(path)), path
    search = client.post("/en/staff/desk", data={"query": "Janssens", "birth_date": ""})
    assert sent_to_staff_login(search)

    assert client.post("/en/assist/hand-back?next=/en/courses/").status_code == 302
    assert "Librarian: take over again" in text(client.get("/en/courses/"))
    for path in STAFF_PAGES:
        assert sent_to_staff_login(client.get(path)), path
    assert sent_to_staff_login(client.post("/en/staff/desk", data={"query": "Janssens"}))


def test_a_staff_page_log_in_is_no_take_over(client: FlaskClient,
                                             service: RegistryService) -> None:
    log_in_staff(client, "an.peeters")
    assert client.get("/en/staff/desk").status_code == 200
    home = text(client.get("/en/"))
    assert "Assisted by" not in home and ">Librarian<" in home
    # Taking over "again" or handing back needs a take-over first, with the password.
    again = client.get("/en/assist/take-over?next=/en/courses/")
    assert again.status_code == 302 and again.location.endswith("/en/courses/")
    client.post("/en/assist/hand-back?next=/en/")
    assert "Assisted by" not in text(client.get("/en/courses/"))


def test_a_staff_page_log_in_and_log_out_leave_the_take_over_alone(
        client: FlaskClient, service: RegistryService) -> None:
    take_over(client)
    response = client.post("/en/staff/login", data={"username": "els.maes",
                                                    "password": STAFF_PASSWORDS["els.maes"]})
    assert response.status_code == 302
    assert "Els Maes" in text(client.get("/en/staff/"))
    assert LABEL in text(client.get("/en/courses/"))  # still An Peeters who assists
    client.post("/en/staff/logout")
    assert sent_to_staff_login(client.get("/en/staff/desk"))
    assert LABEL in text(client.get("/en/courses/"))
