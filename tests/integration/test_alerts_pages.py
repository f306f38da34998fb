"""The pages of the new-course e-mails: "New courses by e-mail" in My courses (choose subjects
with their own consent, change, stop all), the stop link of the e-mails (a button on GET, the
change only on POST, the RFC 8058 one-click POST without a form token, a calm 400 for a forged
link, each in the e-mail's language) and the coordinator's numbers on the course list."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from kiosk.registry.services import RegistryService
from tests.support.factories import add_patron, build_app, form_data, log_in_staff

MAIL = {"SMTP_HOST": "127.0.0.1", "MAIL_FROM": "noreply@bib.example.be",
        "PUBLIC_URL": "https://kiosk-registry.example.be"}


def signed_up(app: Flask) -> FlaskClient:
    """A test client of a patron who just made an account (and so is logged in)."""
    client = app.test_client()
    response = client.post("/en/account/new", data=form_data())
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def chosen(app: Flask) -> list[str]:
    service: RegistryService = app.extensions["registry_service"]
    return [name for name, n in service.alerts.counts("en") if n]


def test_a_patron_chooses_subjects_with_their_own_consent_changes_them_and_stops_all(
        tmp_path: Path) -> None:
    app = build_app(tmp_path, **MAIL)
    client = signed_up(app)
    assert "/en/my/new-courses" in page(client, "/en/account/created")  # offered, optional
    assert "/en/my/new-courses" in page(client, "/en/my")
    form = page(client, "/en/my/new-courses")
    assert 'value="office"' in form and 'value="languages"' in form
    assert "checked" not in form  # neither a subject nor the consent ticked in advance

    refused = client.post("/en/my/new-courses",
                          data={"categories": ["office", "languages"], "action": "save"})
    assert refused.status_code == 422
    assert "Tick the box to say you want these e-mails." in refused.get_data(as_text=True)
    assert chosen(app) == []

    saved = client.post("/en/my/new-courses", data={"categories": ["office", "languages"],
                                                    "consent": "y", "action": "save"})
    assert saved.status_code == 302 and saved.location.endswith("?done=saved")
    assert chosen(app) == ["Office software", "Languages"]
    again = page(client, "/en/my/new-courses?done=saved")
    assert again.count('checked') == 2 and "Stop all these e-mails" in again

    client.post("/en/my/new-courses", data={"categories": ["languages"], "action": "save"})
    assert chosen(app) == ["Languages"]  # dropping one needs no new consent
    stopped = client.post("/en/my/new-courses", data={"categories": ["languages"],
                                                      "action": "stop"})
    assert stopped.location.endswith("?done=stopped") and chosen(app) == []


def test_an_unknown_subject_is_refused_in_the_patrons_language(tmp_path: Path) -> None:
    app = build_app(tmp_path, **MAIL)
    client = signed_up(app)
    refused = client.post("/fr/my/new-courses", data={"categories": ["astrology"],
                                                      "consent": "y", "action": "save"})
    assert refused.status_code == 422
    assert "Choisissez une catégorie dans la liste." in refused.get_data(as_text=True)


def test_without_mail_the_page_says_so_and_offers_no_form(tmp_path: Path) -> None:
    app = build_app(tmp_path)  # no SMTP_HOST, no PUBLIC_URL
    text = page(signed_up(app), "/en/my/new-courses")
    assert "E-mails about new courses are not available here yet." in text
    assert 'name="consent"' not in text


def test_the_stop_link_asks_on_get_stops_on_post_and_takes_the_one_click_post(
        tmp_path: Path) -> None:
    # CSRF on, as in production: the one-click POST of a mail program carries no form token.
    app = build_app(tmp_path, registry=True, WTF_CSRF_ENABLED=True, **MAIL)
    service: RegistryService = app.extensions["registry_service"]
    _card, token = add_patron(service)
    service.alerts.choose(token, ["office"], consent=True)
    with service.store.read() as s:
        patron_id = service.patron_sessions.session(s, token).patron_id
    link = service.alerts.stop_url(patron_id, "nl").removeprefix(MAIL["PUBLIC_URL"])
    assert link.startswith("/nl/new-courses/stop/")
    client = app.test_client()

    asked = page(client, link)
    assert "Stop deze e-mails" in asked and 'lang="nl"' in asked
    assert chosen(app) == ["Office software"]  # a mail scanner's GET changes nothing

    one_click = client.post(link, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert "je krijgt geen e-mails meer" in one_click.get_data(as_text=True)
    assert chosen(app) == []
    assert client.post(link).status_code == 200  # again: nothing left to stop, all is well


def test_a_forged_stop_link_gets_a_calm_400_in_its_language(tmp_path: Path) -> None:
    app = build_app(tmp_path, registry=True, **MAIL)
    client = app.test_client()
    for method in (client.get, client.post):
        refused = method("/fr/new-courses/stop/eyJwYXRyb24iOjF9.forged")
        assert refused.status_code == 400
        assert "Ce lien ne fonctionne pas." in refused.get_data(as_text=True)


def test_the_coordinator_sees_numbers_per_category_and_no_names(tmp_path: Path) -> None:
    app = build_app(tmp_path, registry=True, **MAIL)
    service: RegistryService = app.extensions["registry_service"]
    _card, token = add_patron(service, first_name="Zoë", last_name="Vermeulen")
    service.alerts.choose(token, ["languages"], consent=True)
    client = app.test_client()
    log_in_staff(client, "coordinator", lang="nl")
    text = page(client, "/nl/staff/courses")
    assert "E-mails over nieuwe cursussen" in text
    assert "<tr><td>Talen</td><td>1</td></tr>" in text
    assert "<tr><td>Bureautica</td><td>0</td></tr>" in text
    assert "Vermeulen" not in text
