"""A form sent empty says, for each field, what to type or choose there, never a generic
"fill this in"; the error summary joins a field's name and its message in the language's own
punctuation (French: a no-break space before the colon), and names the date of birth as a
whole, not by its "Day" box. Every required field of every patron and staff form has its
own message: a validator without one, or a staff form sent empty that answers the generic
one, fails."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from flask_babel import force_locale, gettext
from flask_wtf import FlaskForm
from werkzeug.routing import Rule
from wtforms.validators import DataRequired, InputRequired

from kiosk.registry.roles import GRANTS, Role
from tests.support.factories import build_app, log_in_staff
from tests.support.role_matrix import World, permission_of, populate, staff_rules

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


# --- Every required field, on every form --------------------------------------------------

KIOSK = Path(__file__).resolve().parents[2] / "kiosk"
# Its values come back only from a page the kiosk itself filled in (the cap's preview); a
# tampered post starts again at step 1 with a flash, never shows a field's message.
NEVER_SHOWN = {"CapConfirmForm"}
WTFORMS_DEFAULT = "This field is required."


def forms_of_the_pages() -> list[type[FlaskForm]]:
    """Every form class of the patron and staff pages."""
    for package in ("kiosk.terminal", "kiosk.staff"):
        for info in pkgutil.iter_modules([str(KIOSK / package.split(".")[1])]):
            importlib.import_module(f"{package}.{info.name}")
    seen: list[type[FlaskForm]] = []
    todo = list(FlaskForm.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith(("kiosk.terminal", "kiosk.staff")) and cls not in seen:
            seen.append(cls)
    return seen


def test_every_required_validator_says_what_its_field_needs(app: Flask) -> None:
    forms = forms_of_the_pages()
    assert {"RegisterForm", "LoginForm", "ReasonForm", "DeskSearchForm",
            "MergeForm"} <= {f.__name__ for f in forms}
    generic: list[str] = []
    with app.test_request_context():
        for cls in forms:
            if cls.__name__ in NEVER_SHOWN:
                continue
            for field in cls(meta={"csrf": False}):
                for validator in field.validators:
                    if isinstance(validator, (DataRequired, InputRequired)) and (
                            validator.message is None or str(validator.message) == GENERIC):
                        generic.append(f"{cls.__module__}.{cls.__name__}.{field.name}")
    assert generic == []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return populate(build_app(tmp_path_factory.mktemp("empty-forms")))


def who_may(app: Flask, rule: Rule) -> str:
    """A demo staff member whose role may use the page (the coordinator where they may)."""
    permission = permission_of(app, rule)
    for role, username in ((Role.COORDINATOR, "coordinator"), (Role.LIBRARIAN, "an.peeters"),
                           (Role.IT_ADMIN, "it.support")):
        if permission is None or permission in GRANTS[role]:
            return username
    raise AssertionError(f"no demo staff member may use {rule.endpoint}")


def test_every_staff_form_sent_empty_says_what_each_field_needs(world: World) -> None:
    app = world.app
    clients: dict[str, FlaskClient] = {}
    generic: list[str] = []
    refused = 0
    for rule in staff_rules(app):
        if "POST" not in (rule.methods or set()) or rule.endpoint in ("staff.login",
                                                                      "staff.logout"):
            continue
        username = who_may(app, rule)
        client = clients.setdefault(username, app.test_client())
        if client.get("/en/staff/").status_code != 200:  # a new client, or a POST logged out
            log_in_staff(client, username)
        with app.test_request_context():
            url = url_for(rule.endpoint, **world.args(rule))
        response = client.post(url, data={})
        body = response.get_data(as_text=True)
        refused += response.status_code == 422
        if GENERIC in body or WTFORMS_DEFAULT in body:
            generic.append(f"{url} ({rule.endpoint})")
    assert refused >= 10  # the empty forms came back with their messages
    assert generic == []


def test_the_coordinators_forms_name_each_missing_field(world: World) -> None:
    client = world.app.test_client()
    log_in_staff(client, "coordinator")
    course = client.post("/en/staff/courses/new", data={}).get_data(as_text=True)
    assert "Type the title in French." in course and "Type the summary in Dutch." in course
    assert "Choose a category from the list." in course
    library = client.post("/en/staff/libraries/institutions/ANT/new-library",
                          data={"library_code": "ANT-NEW"}).get_data(as_text=True)
    assert "Type the library&#39;s name." in library or "Type the library's name." in library
