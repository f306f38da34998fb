"""The academy link on the pages: "My courses" says whether the seat is ready at the academy,
the coordinator's dashboard shows the link's state and sends given-up changes again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import update

from kiosk.academy_demo import ScimTestServer
from kiosk.registry.academy_sender import send_due
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AcademyChange
from tests.support.factories import add_patron, build_app, log_in_staff, patron_data
from tests.support.scim_server import scim_config, start_platform, token_file


@pytest.fixture
def platform() -> Iterator[ScimTestServer]:
    server = start_platform()
    yield server
    server.stop()


@pytest.fixture
def academy_app(tmp_path: Path, platform: ScimTestServer) -> Flask:
    return build_app(tmp_path / "kiosk", ACADEMY_SCIM_URL=platform.url,
                     ACADEMY_SCIM_TOKEN_FILE=token_file(tmp_path))


def test_my_courses_says_being_set_up_then_ready_at_the_academy(
        academy_app: Flask, platform: ScimTestServer) -> None:
    service: RegistryService = academy_app.extensions["registry_service"]
    card, token = add_patron(service)
    service.claim(token, "excel-basics")
    client = academy_app.test_client()
    assert client.post("/nl/login", data={"identifier": card,
                                          "password": patron_data().password}).status_code == 302
    assert "De academie zet je toegang klaar" in client.get("/nl/my").get_data(as_text=True)
    send_due(service.store, scim_config(platform), service.clock())
    page = client.get("/fr/my").get_data(as_text=True)
    assert "Votre accès à l’académie est ouvert" in page


def test_my_courses_says_nothing_of_an_academy_when_there_is_none(client, registered) -> None:  # type: ignore[no-untyped-def]
    client.post("/en/courses/excel-basics/enrol", data={})
    page = client.get("/en/my").get_data(as_text=True)
    assert "You have a seat" in page
    assert "at the academy" not in page


def test_the_dashboard_shows_the_link_and_a_coordinator_sends_given_up_changes_again(
        academy_app: Flask) -> None:
    service: RegistryService = academy_app.extensions["registry_service"]
    _card, token = add_patron(service)
    service.claim(token, "excel-basics")
    with service.store.write() as s:
        s.execute(update(AcademyChange).values(attempts=8, last_error="Refused 409"))
    coordinator = academy_app.test_client()
    log_in_staff(coordinator, "coordinator", "en")
    page = coordinator.get("/en/staff/dashboard").get_data(as_text=True)
    assert "The academy&#39;s course platform" in page or "The academy's course platform" in page
    assert "Refused 409" in page and "Send the 1 given-up change again" in page

    librarian = academy_app.test_client()
    log_in_staff(librarian, "an.peeters", "en")
    assert librarian.post("/en/staff/dashboard/academy/send-again").status_code == 403
    assert service.academy.state().given_up == 1

    response = coordinator.post("/en/staff/dashboard/academy/send-again")
    assert response.status_code == 302
    assert service.academy.state().given_up == 0 and service.academy.state().backlog == 1
