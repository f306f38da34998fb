"""Error pages speak the language of their address: an address no route matches and a wrong
method (404, 405) are answered in the language of the address's first segment, patron and
staff, on the kiosk and on the registry server; an address without one in the branch's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale, gettext

from tests.support.factories import build_app

LANGS = ("nl", "fr", "en")


def heading(client: FlaskClient, path: str, method: str = "GET") -> tuple[int, str, str]:
    """The status, the `<html lang>` and the page's `<h1>` of an answer."""
    response = client.open(path, method=method)
    body = response.get_data(as_text=True)
    lang = re.search(r'<html lang="([a-z]+)"', body)
    title = re.search(r"<h1[^>]*>(.*?)</h1>", body, re.S)
    assert lang and title, body[:500]
    return response.status_code, lang.group(1), title.group(1).strip()


def translated(app: Flask, lang: str, text: str) -> str:
    """`text` as the catalogue of `lang` has it (the pages' own words, so rewording one
    keeps the test true)."""
    with app.test_request_context("/"), force_locale(lang):
        return gettext(text)


def test_the_error_headings_differ_in_each_language(app: Flask) -> None:
    """Otherwise the tests below could not tell one language from another."""
    for text in ("Page not found", "Something went wrong", "Not found", "This did not work"):
        assert len({translated(app, lang, text) for lang in LANGS}) == 3, text


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("path", ["/{}/no-such-page", "/{}/account/xyz", "/{}/courses/a/b"])
def test_an_address_no_route_matches_is_a_404_in_its_language(app: Flask, client: FlaskClient,
                                                              path: str, lang: str) -> None:
    assert heading(client, path.format(lang)) == (
        404, lang, translated(app, lang, "Page not found"))


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("method", "path"), [("GET", "/{}/logout"), ("POST", "/{}/")])
def test_a_wrong_method_is_a_405_in_its_language(app: Flask, client: FlaskClient, method: str,
                                                 path: str, lang: str) -> None:
    assert heading(client, path.format(lang), method) == (
        405, lang, translated(app, lang, "Something went wrong"))


@pytest.mark.parametrize("registry", [False, True], ids=["kiosk", "registry server"])
@pytest.mark.parametrize("lang", LANGS)
def test_staff_addresses_answer_with_a_staff_page_in_their_language(tmp_path: Path, lang: str,
                                                                    registry: bool) -> None:
    app = build_app(tmp_path, registry=registry)
    client = app.test_client()
    missing = client.get(f"/{lang}/staff/no-such-page")
    assert heading(client, f"/{lang}/staff/no-such-page") == (
        404, lang, translated(app, lang, "Not found"))
    assert f'href="/{lang}/staff/"' in missing.get_data(as_text=True)  # back to the staff start
    assert heading(client, f"/{lang}/staff/logout") == (
        405, lang, translated(app, lang, "This did not work"))


def test_an_address_without_a_language_is_a_404_in_the_branchs_language(tmp_path: Path) -> None:
    app = build_app(tmp_path, DEFAULT_LANGUAGE="fr")
    client = app.test_client()
    page_not_found = translated(app, "fr", "Page not found")
    assert heading(client, "/no-such-page") == (404, "fr", page_not_found)
    assert heading(client, "/de/courses/") == (404, "fr", page_not_found)
    assert 'href="/fr/"' in client.get("/no-such-page").get_data(as_text=True)  # "Start over"
    start = client.get("/")
    assert start.status_code == 302 and start.location.endswith("/fr/")
