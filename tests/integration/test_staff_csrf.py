"""CSRF on the staff pages, with protection on as in production (the other tests turn it off):
every staff form POST without the token is refused (400) and changes nothing, on the kiosk
app (the embedded default) and on the central registry server alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient

from kiosk.registry.services import RegistryService
from kiosk.registry.store import Patron
from tests.support.factories import STAFF_PASSWORDS, build_app
from tests.support.role_matrix import World, populate


@pytest.fixture(params=["kiosk", "registry"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    app = build_app(tmp_path, registry=request.param == "registry", WTF_CSRF_ENABLED=True)
    return populate(app)


def csrf_token(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get(path).get_data(as_text=True))
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def coordinator(app: Flask) -> FlaskClient:
    client = app.test_client()
    login = {"username": "coordinator", "password": STAFF_PASSWORDS["coordinator"]}
    assert client.post("/en/staff/login", data=login).status_code == 400  # no token: refused
    assert client.get("/en/staff/settings").status_code == 302
    login["csrf_token"] = csrf_token(client, "/en/staff/login")
    assert client.post("/en/staff/login", data=login).status_code == 302
    assert client.get("/en/staff/settings").status_code == 200
    return client


def test_every_staff_post_needs_the_token(world: World) -> None:
    app = world.app
    service: RegistryService = app.extensions["registry_service"]
    client = coordinator(app)
    rules = [r for r in app.url_map.iter_rules()
             if r.rule.startswith("/<lang:lang>/staff/") and "POST" in (r.methods or ())]
    assert len(rules) > 30  # the whole staff console, not a part of it
    before = service.policies.settings()
    for rule in rules:
        with app.test_request_context():
            url = url_for(rule.endpoint, **world.args(rule))
        response = client.post(url, data={"promotion": "offer", "offer_days": "5",
                                          "keep": str(world.patron_id), "reason": "csrf",
                                          "cap": "2000", "username": "csrf.probe",
                                          "confirm": "yes"})
        assert response.status_code == 400, rule.rule
    # Nothing changed: the settings, the accounts, the patrons, and the session itself.
    assert service.policies.settings() == before
    assert all(active for _, active in service.staff.accounts())
    assert "csrf.probe" not in {view.username for view, _ in service.staff.accounts()}
    assert service.programme_status().seats_taken == 1
    with service.store.read() as s:
        assert s.get(Patron, world.patron_id) is not None
        assert s.get(Patron, world.waiting_id) is not None
    assert client.get("/en/staff/settings").status_code == 200  # not logged out
    # The same form with its token goes through: the refusals above were the token's.
    token = csrf_token(client, "/en/staff/settings")
    saved = client.post("/en/staff/settings/seats", data={
        "csrf_token": token, "promotion": "offer", "offer_days": "5"})
    assert saved.status_code == 302
    assert service.policies.settings().promotion == "offer"
