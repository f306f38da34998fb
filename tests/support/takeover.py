"""A librarian's take-over on a kiosk, through the Flask test client: shared by the take-over
tests and the take-over/staff-pages isolation tests."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from .factories import STAFF_PASSWORDS

LABEL = "An Peeters (Bibliotheek Permeke)"


def take_over(client: FlaskClient, username: str = "an.peeters", next_: str = "/en/",
              password: str | None = None) -> Any:
    return client.post(f"/en/assist/?next={next_}", data={
        "username": username, "password": password or STAFF_PASSWORDS[username]})


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def log_in_patron(client: FlaskClient, card: str) -> None:
    response = client.post("/en/login", data={"identifier": card, "password": "correct horse"})
    assert response.status_code == 302, text(response)
