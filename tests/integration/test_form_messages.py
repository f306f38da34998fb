"""A form sent empty says, for each field, what to type or choose there, never a generic
"fill this in"; the error summary joins a field's name and its message in the language's own
punctuation (French: a no-break space before the colon), and names the date of birth as a
whole, not by its "Day" box."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale, gettext

from tests.support.factories import build_app

LANGS = ("nl", "fr", "en")
GENERIC = "Please fill this in."  # kiosk.terminal.messages: the last resort


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return build_app(tmp_path_factory.mktemp("messages"))


def summary_lines(body: str) -> list[str]:
    summary = body[body.index('class="error-summary"'):]
    summary = summary[:summary.index("</ul>")]
    return [re.sub(r"<[^>]+>", "", item).strip()
            for item in re.findall(r"<li>(.*?)</li>", summary, re.S)]


def in_language(app: Flask, lang: str, text: str, **values: str) -> str:
    with app.test_request_context(), force_locale(lang):
        return gettext(text, **values)


@pytest.mark.parametrize("lang", LANGS)
def test_an_empty_registration_says_what_each_field_needs(app: Flask, lang: str) -> None:
    body = app.test_client().post(f"/{lang}/account/new", data={}).get_data(as_text=True)
    lines = summary_lines(body)
    generic = in_language(app, lang, GENERIC)
    assert len(lines) >= 7 and generic not in body, lines
    birth = in_language(app, lang, "%(label)s: %(message)s",
                        label=in_language(app, lang, "Date of birth"),
                        message=in_language(app, lang, "Type the day, month and year."))
    library = in_language(app, lang, "Choose the library from the list.")
    assert birth in lines and any(line.endswith(library) for line in lines), lines
    # The consent's label is a sentence ending in a full stop: its message stands alone.
    consent = in_language(app, lang, "Please confirm that you have read the privacy statement.")
    assert consent in lines, lines


def test_french_puts_a_no_break_space_before_the_summarys_colon(app: Flask) -> None:
    body = app.test_client().post("/fr/account/new", data={}).get_data(as_text=True)
    assert "Prénom\u00a0: Tapez le prénom." in summary_lines(body)
    english = app.test_client().post("/en/account/new", data={}).get_data(as_text=True)
    assert "First name: Type the first name." in summary_lines(english)


@pytest.mark.parametrize("path, fields", [
    ("/{lang}/login", {"identifier": "", "password": ""}),
    ("/{lang}/staff/login", {"username": "", "password": ""}),
])
@pytest.mark.parametrize("lang", LANGS)
def test_empty_log_ins_say_what_to_type(app: Flask, lang: str, path: str,
                                        fields: dict[str, str]) -> None:
    client: FlaskClient = app.test_client()
    body = client.post(path.format(lang=lang), data=fields).get_data(as_text=True)
    generic = in_language(app, lang, GENERIC)
    assert generic not in body
    assert in_language(app, lang, "Type the password.") in body
