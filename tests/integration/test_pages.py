"""Every page through the test client: languages, bad input, log-in limits, safety headers."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from kiosk import security
from kiosk.registry.domain import pending_until
from kiosk.registry.store import Patron
from tests.support.factories import CONFIRMED, build_app, form_data

LANGS = ("nl", "fr", "en")
PUBLIC_PAGES = ("/{}/", "/{}/account/new", "/{}/login", "/{}/courses/",
                "/{}/courses/?category=languages", "/{}/courses/?q=spaans",
                "/{}/courses/spanish-beginners", "/{}/privacy")


def errors(response) -> list[str]:  # type: ignore[no-untyped-def]
    return re.findall(r'<p class="error" id="[^"]+">([^<]*)</p>', response.get_data(as_text=True))


def test_root_goes_to_the_branch_default_language(tmp_path) -> None:
    app = build_app(tmp_path, DEFAULT_LANGUAGE="fr")
    response = app.test_client().get("/")
    assert response.status_code == 302 and response.location.endswith("/fr/")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", PUBLIC_PAGES)
def test_every_public_page_renders_in_every_language(client, page: str, lang: str) -> None:
    response = client.get(page.format(lang))
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'<html lang="{lang}"' in body
    for code, name in (("nl", "Nederlands"), ("fr", "Français"), ("en", "English")):
        assert f'lang="{code}" hreflang="{code}"' in body and name in body
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_pages_speak_the_chosen_language(client) -> None:
    texts = {lang: client.get(f"/{lang}/login").get_data(as_text=True) for lang in LANGS}
    assert "Aanmelden" in texts["nl"]
    assert "Se connecter" in texts["fr"]
    assert "Log in" in texts["en"]


def test_unknown_language_or_page_is_a_404_in_the_patrons_language(client) -> None:
    assert client.get("/de/").status_code == 404
    response = client.get("/fr/nowhere")
    assert response.status_code == 404
    assert '<html lang="fr"' in response.get_data(as_text=True)
    assert 'href="/fr/"' in response.get_data(as_text=True)  # "Start over"


def test_unknown_course_is_a_friendly_page(client) -> None:
    response = client.get("/nl/courses/no-such-course")
    assert response.status_code == 404
    assert 'href="/nl/"' in response.get_data(as_text=True)


def test_registration_shows_the_card_number_and_logs_in(client) -> None:
    response = client.post("/nl/account/new", data=form_data())
    assert response.location.endswith("/nl/account/created")
    page = client.get("/nl/account/created").get_data(as_text=True)
    card = re.search(r'class="card-number"[^>]*>([\d ]+)<', page).group(1).replace(" ", "")
    assert card.startswith("2109") and len(card) == 13  # Muntpunt's prefix
    assert client.get("/nl/my").status_code == 200


def test_bad_input_is_explained_beside_each_field_and_what_was_typed_is_kept(client) -> None:
    data = form_data(email="not-an-email", postcode="99", birth_day="31", birth_month="2",
                     phone="12", password="short", consent="", first_name="Zoë")
    response = client.post("/fr/account/new", data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert len(errors(response)) == 6
    assert 'value="Zoë"' in body and 'value="not-an-email"' in body
    assert body.count('aria-invalid="true"') >= 6
    assert 'aria-describedby="email-hint email-error"' in body
    assert 'class="error-summary"' in body and 'href="#postcode"' in body
    assert "4 chiffres" in body  # the postcode message, in French


def test_the_same_email_again_kindly_offers_to_log_in(client) -> None:
    data = form_data()
    client.post("/en/account/new", data=data)
    client.post("/en/logout")
    response = client.post("/en/account/new", data=form_data(email=data["email"].upper()))
    body = response.get_data(as_text=True)
    assert "You already have an account with this e-mail address." in body
    assert 'href="/en/login"' in body


def test_too_young_uses_the_configured_minimum_age(tmp_path) -> None:
    app = build_app(tmp_path, MIN_AGE=18)
    response = app.test_client().post("/en/account/new", data=form_data(birth_year="2010"))
    assert "at least 18 years old" in response.get_data(as_text=True)


@pytest.mark.parametrize("identifier_kind", ["card", "email"])
def test_log_in_with_card_number_or_email(client, registered, identifier_kind) -> None:
    page = client.get("/en/account/created").get_data(as_text=True)
    card = re.search(r'class="card-number"[^>]*>([\d ]+)<', page).group(1)
    client.post("/en/logout")
    identifier = card if identifier_kind == "card" else registered["email"]
    response = client.post("/en/login", data={"identifier": identifier,
                                              "password": registered["password"]})
    assert response.status_code == 302
    assert client.get("/en/my").status_code == 200


def test_log_in_page_autofocuses_the_card_field(client) -> None:
    body = client.get("/nl/login").get_data(as_text=True)
    assert re.search(r'<input[^>]*autofocus[^>]*id="identifier"|<input[^>]*id="identifier"'
                     r'[^>]*autofocus', body)


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(client, registered) -> None:
    client.post("/nl/logout")
    bad = {"identifier": registered["email"], "password": "wrong-password"}
    for _ in range(4):
        body = client.post("/nl/login", data=bad).get_data(as_text=True)
        assert "is niet juist" in body or "klopt niet" in body or "niet correct" in body
    body = client.post("/nl/login", data=bad).get_data(as_text=True)
    assert "geblokkeerd" in body
    good = {"identifier": registered["email"], "password": registered["password"]}
    response = client.post("/nl/login", data=good)
    assert response.status_code == 422 and "geblokkeerd" in response.get_data(as_text=True)


def test_an_empty_password_is_asked_for_and_never_counts_as_a_wrong_one(client,
                                                                       registered) -> None:
    client.post("/en/logout")
    for _ in range(6):
        body = client.post("/en/login", data={"identifier": registered["email"],
                                              "password": ""}).get_data(as_text=True)
        assert "Type the password." in body and 'aria-invalid="true"' in body
    good = {"identifier": registered["email"], "password": registered["password"]}
    assert client.post("/en/login", data=good).status_code == 302


def test_the_lock_is_per_account_not_per_library(client, registered) -> None:
    client.post("/en/logout")
    other = form_data()
    client.post("/en/account/new", data=other)
    client.post("/en/logout")
    for _ in range(5):
        client.post("/en/login", data={"identifier": registered["email"], "password": "nope-nope"})
    response = client.post("/en/login", data={"identifier": other["email"],
                                              "password": other["password"]})
    assert response.status_code == 302


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "/\\evil.example", "https://evil.example", "https:evil.example",
     "javascript:alert(1)", "/%2F%2Fevil.example", "\\\\evil.example", "/\tevil"],
)
def test_next_after_login_stays_on_this_site(client, registered, target) -> None:
    client.post("/en/logout")
    response = client.post("/en/login", query_string={"next": target},
                           data={"identifier": registered["email"],
                                 "password": registered["password"]})
    location = response.location
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "evil" not in location.split("?")[0] or location.startswith("/%2F")


def test_login_required_pages_come_back_after_login(client, registered) -> None:
    client.post("/en/logout")
    response = client.get("/en/courses/instagram/enrol")
    assert response.location.startswith("/en/login?next=")
    response = client.post(response.location, data={"identifier": registered["email"],
                                                     "password": registered["password"]})
    assert response.location == "/en/courses/instagram/enrol"


def test_enrol_receipt_and_my_courses(client, registered) -> None:
    confirm = client.get("/fr/courses/italian-beginners/enrol")
    assert "Étape 3 sur 4" in confirm.get_data(as_text=True)
    response = client.post("/fr/courses/italian-beginners/enrol")
    assert response.location == "/fr/courses/italian-beginners/done"
    receipt = client.get(response.location).get_data(as_text=True)
    assert "<svg" in receipt and "academieportal.nl" in receipt and "data-print" in receipt
    assert "Étape 4 sur 4" in receipt
    my = client.get("/fr/my").get_data(as_text=True)
    assert "/fr/my/withdraw/italian-beginners" in my


def steps_done(page: str) -> list[str]:
    return re.findall(r'<li class="done"\s*>([^<]+)</li>', page)


def test_browsing_without_an_account_leaves_step_one_undone(client) -> None:
    browsing = client.get("/en/courses/").get_data(as_text=True)
    assert "Step 2 of 4" in browsing and steps_done(browsing) == []
    client.post("/en/account/new", data=form_data())
    chosen = client.get("/en/courses/").get_data(as_text=True)
    assert steps_done(chosen) == ["Your library account"]


def test_withdraw_leave_and_give_up_ask_first(client, registered) -> None:
    client.post("/en/courses/instagram/enrol")
    assert client.get("/en/my/give-up").status_code == 200
    assert "Keep my seat" in client.post("/en/my/give-up").get_data(as_text=True)  # asked
    assert client.post("/en/my/give-up", data=CONFIRMED).location.startswith("/en/my")
    assert "You have not chosen a course yet." in client.get("/en/my").get_data(as_text=True)
    assert client.get("/en/my/withdraw").status_code == 404
    assert client.get("/en/my/explode").status_code == 404


def test_full_programme_puts_the_patron_on_the_waiting_list(app, client, registered) -> None:
    app.extensions["registry_service"].set_cap(0, actor="test")
    listing = client.get("/nl/courses/").get_data(as_text=True)
    assert "wachtlijst" in listing
    client.post("/nl/courses/instagram/enrol")
    receipt = client.get("/nl/courses/instagram/done").get_data(as_text=True)
    assert "wachtlijst" in receipt and "1" in receipt


def test_a_pending_patrons_courses_say_by_when_to_show_a_document(service, client) -> None:
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5, 6], "verify", 14)},
                                              actor="test")
    data = form_data(library="KOR-CENTRUM")
    assert client.post("/en/account/new", data=data).status_code == 302
    client.post("/en/courses/instagram/enrol")
    with service.store.read() as s:
        since = s.scalar(select(Patron.pending_since).where(Patron.email == data["email"]))
    day = pending_until(since, 14)
    english = client.get("/en/my").get_data(as_text=True)
    assert (f"Show an identity document at the desk of your library by "
            f"{day.day} {day:%B} {day.year}.") in english
    french = client.get("/fr/my").get_data(as_text=True)
    assert "Présentez une pièce d’identité" in french and f"{day.day} " in french


def test_logout_revokes_the_session_so_a_copied_cookie_no_longer_works(client, registered):
    cookie = client.get_cookie("kiosk_session").value
    client.post("/en/logout")
    thief = client.application.test_client()
    thief.set_cookie("kiosk_session", cookie)
    assert thief.get("/en/my").status_code == 302


def test_logout_clears_everything(client, registered) -> None:
    response = client.post("/en/logout")
    assert response.location == "/en/"
    assert client.get("/en/my").status_code == 302
    with client.session_transaction() as session:
        assert "token" not in session and "_user_id" not in session


def test_idle_visit_is_refused_server_side_even_without_javascript(client, registered,
                                                                   monkeypatch) -> None:
    real = security.now()
    monkeypatch.setattr(security, "now", lambda: real + 60 + 30 + 11)
    response = client.get("/fr/my")
    assert response.location == "/nl/"  # the branch default language
    monkeypatch.setattr(security, "now", lambda: real + 60 + 30 + 12)
    assert client.get("/fr/my").status_code == 302
    body = client.get("/nl/").get_data(as_text=True)
    assert '<html lang="nl"' in body and 'class="notice"' in body


def test_active_visit_survives_but_not_past_the_absolute_limit(client, registered,
                                                               monkeypatch) -> None:
    real = security.now()
    for minute in range(1, 30):
        monkeypatch.setattr(security, "now", lambda m=minute: real + m * 60)
        assert client.get("/en/my").status_code == 200
    monkeypatch.setattr(security, "now", lambda: real + 30 * 60 + 1)
    assert client.get("/en/my").status_code == 302


def test_idle_reset_wipes_the_visit_and_returns_to_the_default_language(client, registered):
    response = client.post("/visit/reset")
    assert response.location == "/nl/"
    assert client.get("/en/my").status_code == 302


def test_text_size_choice_is_kept_for_the_visit_only(client) -> None:
    client.post("/en/text-size/larger", data={"next": "/en/courses/"})
    assert 'class="text-larger"' in client.get("/en/").get_data(as_text=True)
    client.post("/visit/reset")
    assert 'class="text-normal"' in client.get("/en/").get_data(as_text=True)


@pytest.fixture
def csrf_client(tmp_path) -> FlaskClient:
    app = build_app(tmp_path, WTF_CSRF_ENABLED=True)
    return app.test_client()


def test_forms_without_csrf_token_are_refused_in_the_patrons_language(csrf_client) -> None:
    response = csrf_client.post("/fr/account/new", data=form_data())
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert '<html lang="fr"' in body and "Recommencer" in body


def test_forms_carry_a_csrf_token(csrf_client) -> None:
    body = csrf_client.get("/nl/account/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
    response = csrf_client.post("/nl/account/new", data={**form_data(), "csrf_token": token})
    assert response.status_code == 302


def test_a_crash_shows_a_calm_page_without_traceback(tmp_path) -> None:
    app: Flask = build_app(tmp_path)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/<lang:lang>/boom")
    def boom(lang: str) -> str:
        raise RuntimeError("secret internals")

    response = app.test_client().get("/nl/boom")
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "secret internals" not in body and "Traceback" not in body
    assert '<html lang="nl"' in body


def test_oversized_form_is_refused_kindly(client) -> None:
    response = client.post("/en/account/new", data={"first_name": "x" * 100_000})
    assert response.status_code == 413
    assert "Start over" in response.get_data(as_text=True)


def test_my_data_shows_everything_held_in_the_patrons_language(client, registered) -> None:
    client.post("/fr/courses/excel-basics/enrol")
    body = client.get("/fr/my/data").get_data(as_text=True)
    assert "Vos données" in body
    for held in (registered["email"], "Élise", "Dubois", "1000", "0470 12 34 56", "Muntpunt",
                 "1950"):
        assert held in body, held
    assert 'href="/fr/my/erase"' in body


def test_wrong_passwords_under_my_data_lock_the_account_and_end_the_visit(
        client, registered) -> None:  # type: ignore[no-untyped-def]
    change = {"email": "other@example.be", "language": "nl", "password": "a guess"}
    for _ in range(4):
        wrong = client.post("/nl/my/data", data=change)
        assert wrong.status_code == 422
        assert "Dit is niet je huidige wachtwoord." in wrong.get_data(as_text=True)
    locked = client.post("/nl/my/data", data=change)
    assert locked.status_code == 302 and "/nl/login" in locked.headers["Location"]
    page = client.get(locked.headers["Location"]).get_data(as_text=True)
    assert "geblokkeerd" in page
    assert client.get("/nl/my/data").status_code == 302  # the visit has ended


def test_my_data_and_erasure_need_a_logged_in_patron(client) -> None:
    for page in ("/nl/my/data", "/nl/my/erase"):
        response = client.get(page)
        assert response.status_code == 302 and "/nl/login" in response.headers["Location"]


def test_erasing_the_account_asks_the_password_then_wipes_everything(client,
                                                                     registered) -> None:
    wrong = client.post("/nl/my/erase", data={"password": "not-my-password"})
    assert wrong.status_code == 422
    assert "Dit wachtwoord klopt niet. Er is niets gewist." in wrong.get_data(as_text=True)
    assert client.get("/nl/my/data").status_code == 200  # still there, still logged in

    erased = client.post("/nl/my/erase", data={"password": registered["password"]})
    assert erased.status_code == 302
    assert erased.headers["Clear-Site-Data"] == '"cache", "storage"'
    home = client.get(erased.headers["Location"]).get_data(as_text=True)
    assert "Je account is gewist" in home
    assert client.get("/nl/my/data").status_code == 302  # the visit has ended
    again = client.post("/nl/login", data={"identifier": registered["email"],
                                           "password": registered["password"]})
    assert "klopt niet" in again.get_data(as_text=True)


def test_a_locked_account_says_until_when_in_belgian_24_hour_time(client, registered) -> None:  # type: ignore[no-untyped-def]
    """English kiosks write times as Belgium does (14:05), never "2:05 PM"."""
    client.post("/en/logout", data={})
    for _ in range(6):
        page = client.post("/en/login", data={"identifier": registered["email"],
                                               "password": "not the right one"})
    text = page.get_data(as_text=True)
    assert re.search(r"this account is locked until \d{2}:\d{2}\.", text), text
