"""The Nu Html Checker (vnu.jar, the W3C's validator, from the npm package vnu-jar) finds no
error on any page state the browser tests visit, patron and staff, in nl, fr and en.

The pages are rendered through the Flask test client with CSRF on, as in production (so each
form's hidden token is there), written to a temporary folder and checked by ONE run of the
validator (one JVM start). The states only a POST reaches are sent as a person would: the
registration and log-in with errors, an erasure without a password, every staff data-entry
form sent empty, the cap's preview.

Needs Java (Debian: default-jre-headless) and `npm ci` (node_modules/vnu-jar). Skipped, saying
why, where either is missing, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from kiosk.registry.roles import GRANTS, Role
from tests.support.factories import IN_CI, STAFF_PASSWORDS, add_patron, build_app, form_data
from tests.support.role_matrix import LAST, OPEN_TO_STAFF, permission_of, populate, staff_rules

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VNU_JAR = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
LANGS = ("nl", "fr", "en")
SLUG = "spanish-beginners"
PASSWORD = "longenough"
WHO = (("coordinator", Role.COORDINATOR), ("it.support", Role.IT_ADMIN),
       ("an.peeters", Role.LIBRARIAN))


def validator_missing() -> str | None:
    if shutil.which("java") is None:
        return "java is not installed (apt-get install default-jre-headless)"
    if not VNU_JAR.is_file():
        return f"{VNU_JAR.relative_to(ROOT)} is missing (run `npm ci` at the repository root)"
    return None


# --- Forms as a browser reads them ------------------------------------------------------------

@dataclass
class Form:
    action: str
    method: str
    in_main: bool
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, name, value)

    @property
    def typed(self) -> bool:
        """Has a field a person types into (what the staff browser test empties)."""
        return any(kind in ("text", "textarea") for kind, _, _ in self.fields)

    def sent(self, overrides: dict[str, str] | None = None, *, empty: bool = False) -> dict:
        """What the browser would send: hidden values as they are, typed ones emptied when
        `empty`, a select's chosen option, ticked boxes; `overrides` last."""
        data: dict[str, list[str]] = {}
        for kind, name, value in self.fields:
            if kind == "text" and empty:
                value = ""
            data.setdefault(name, []).append(value)
        for name, value in (overrides or {}).items():
            data[name] = [value]
        return data


TYPED_INPUTS = {"text", "email", "tel", "password", "number", "search", "date",
                "datetime-local", "url", ""}


class FormReader(HTMLParser):
    """Every <form> of a page with what it would send."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.main_depth = 0
        self.form: Form | None = None
        self.select: str | None = None
        self.first_option: str | None = None
        self.chose = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "main":
            self.main_depth += 1
        elif tag == "form":
            self.form = Form(a.get("action", ""), a.get("method", "get").lower(),
                             self.main_depth > 0)
            self.forms.append(self.form)
        elif self.form is None or "disabled" in a:
            return
        elif tag == "input" and "name" in a:
            kind = a.get("type", "").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.form.fields.append(("choice", a["name"], a.get("value", "on")))
            elif kind in TYPED_INPUTS and "readonly" not in a:
                self.form.fields.append(("text", a["name"], a.get("value", "")))
            elif kind not in ("submit", "button"):
                self.form.fields.append(("hidden", a["name"], a.get("value", "")))
        elif tag == "textarea" and "name" in a:
            self.form.fields.append(("textarea", a["name"], ""))
        elif tag == "select" and "name" in a:
            self.select, self.first_option, self.chose = a["name"], None, False
        elif tag == "option" and self.select is not None:
            value = a.get("value", "")
            if self.first_option is None:
                self.first_option = value
            if "selected" in a:
                self.form.fields.append(("choice", self.select, value))
                self.chose = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "main":
            self.main_depth -= 1
        elif tag == "form":
            self.form = None
        elif tag == "select" and self.select is not None and self.form is not None:
            if not self.chose and self.first_option is not None:
                self.form.fields.append(("choice", self.select, self.first_option))
            self.select = None


def forms_of(html: str) -> list[Form]:
    reader = FormReader()
    reader.feed(html)
    return reader.forms


# --- A visit that keeps every page it sees -------------------------------------------------

@dataclass
class Visit:
    client: FlaskClient
    folder: Path
    lang: str
    seen: dict[str, str]  # file name → "lang: page state (url)"
    html: str = ""
    path: str = ""

    def keep(self, response: TestResponse, name: str) -> None:
        assert response.mimetype == "text/html", (name, response.status)
        assert response.status_code < 500, (name, response.status)
        self.html = response.get_data(as_text=True)
        file = f"{len(self.seen):04d}-{self.lang}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}.html"
        (self.folder / file).write_text(self.html, encoding="utf-8")
        self.seen[file] = f"{self.lang}: {name} ({response.request.path})"

    def go(self, path: str, name: str) -> None:
        self.path = path
        self.keep(self.client.get(path, follow_redirects=True), name)

    def send(self, form: Form, name: str, overrides: dict[str, str] | None = None, *,
             empty: bool = False) -> None:
        action = form.action or self.path
        response = self.client.open(action, method=form.method.upper(),
                                    data=form.sent(overrides, empty=empty),
                                    follow_redirects=True)
        self.keep(response, name)

    def main_forms(self) -> list[Form]:
        return [f for f in forms_of(self.html) if f.in_main and f.method == "post"]


# --- The page states ------------------------------------------------------------------------

def patron_pages(app: Flask, visit: Visit) -> None:
    """The states tests/browser/test_browser.py walks (its Walker), one language."""
    lang, service = visit.lang, app.extensions["registry_service"]
    visit.go(f"/{lang}/", "start")
    visit.go(f"/{lang}/privacy", "privacy")
    visit.go(f"/{lang}/no-such-page", "404")
    visit.go(f"/{lang}/account/new", "register")
    register = visit.main_forms()[0]
    visit.send(register, "register with errors", empty=True)
    visit.send(register, "register, some fields wrong",
               {"postcode": "12", "email": "nope", "birth_day": "31", "birth_month": "2",
                "birth_year": "2001"})
    visit.go(f"/{lang}/login", "log in")
    login = visit.main_forms()[0]
    visit.send(login, "log in with errors", empty=True)
    visit.send(login, "log in failed",
               {"identifier": "nobody@example.be", "password": "not the password"})
    visit.go(f"/{lang}/courses/", "catalogue")
    visit.go(f"/{lang}/courses/?category=languages", "catalogue filtered")
    visit.go(f"/{lang}/courses/?q=xyzzy", "catalogue, search without result")
    visit.go(f"/{lang}/courses/{SLUG}", "course")

    # A patron with a seat.
    visit.go(f"/{lang}/account/new", "register again")
    visit.send(visit.main_forms()[0], "account created",
               form_data(email=f"wanda.{lang}@example.be", library="ANT-PERMEKE"))
    visit.go(f"/{lang}/courses/{SLUG}/enrol", "confirm")
    visit.send(visit.main_forms()[0], "receipt, seated")
    visit.go(f"/{lang}/my", "my courses, seated")
    # E-mails about new courses: offered with mail on and a public address (these pages only).
    service.notices.enabled, service.alerts.link_base = True, "https://registry.example.be"
    visit.go(f"/{lang}/my/new-courses", "new courses by e-mail")
    alerts = visit.main_forms()[0]
    visit.send(alerts, "new courses by e-mail, no consent", {"categories": "office"})
    visit.send(alerts, "new courses by e-mail, saved", {"categories": "office", "consent": "y"})
    visit.go(service.alerts.stop_url(1, lang).removeprefix("https://registry.example.be"),
             "stop the e-mails about new courses?")
    visit.send(visit.main_forms()[0], "e-mails about new courses stopped")
    visit.go(f"/{lang}/new-courses/stop/forged", "a forged stop link")
    service.notices.enabled, service.alerts.link_base = False, ""
    visit.go(f"/{lang}/my/withdraw/{SLUG}", "stop a course?")
    visit.go(f"/{lang}/my/give-up", "give up the seat?")
    visit.go(f"/{lang}/my/data", "my data")
    visit.go(f"/{lang}/my/erase", "erase my account?")
    visit.send(visit.main_forms()[0], "erase without password", empty=True)

    # The programme is full: the next patron waits.
    service.set_cap(1, actor="test")
    logout = [f for f in forms_of(visit.html) if f.action.endswith("/logout")]
    visit.client.post(logout[0].action, data=logout[0].sent())
    visit.go(f"/{lang}/", "logged out")
    add_patron(service, first_name="Walter", email=f"walter.{lang}@example.be",
               password=PASSWORD, language=lang)
    visit.go(f"/{lang}/login", "log in again")
    visit.send(visit.main_forms()[0], "logged in",
               {"identifier": f"walter.{lang}@example.be", "password": PASSWORD})
    visit.go(f"/{lang}/courses/{SLUG}", "course, programme full")
    visit.go(f"/{lang}/courses/{SLUG}/enrol", "confirm, waiting list")
    visit.send(visit.main_forms()[0], "receipt, waiting list")
    visit.go(f"/{lang}/my", "my courses, waiting")
    visit.go(f"/{lang}/my/leave", "leave the waiting list?")
    # Offer and hold: a seat more is held for the one who waits, who may say no thanks.
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    service.set_cap(2, actor="test")
    visit.go(f"/{lang}/my/offer", "a seat held for the patron")
    assert f"/{lang}/my/offer/decline" in visit.html, "no seat was held for the patron"
    visit.go(f"/{lang}/my/offer/decline", "no thanks to the seat?")
    service.policies.set_seat_policy("grant", 3, False, {}, actor="test")
    service.set_cap(2000, actor="test")


def assisted_pages(visit: Visit) -> None:
    """The take-over on a kiosk (tests/browser/test_browser_assisted.py): its log-in, with
    errors, the registration form in assisted mode, handed back, taken over again, ended."""
    lang = visit.lang
    visit.go(f"/{lang}/assist/", "assisted mode: log-in")
    form = visit.main_forms()[0]
    visit.send(form, "assisted mode: log-in with errors", empty=True)
    visit.send(form, "assisted mode: logged in",
               {"username": "an.peeters", "password": STAFF_PASSWORDS["an.peeters"]})
    visit.go(f"/{lang}/account/new", "assisted mode: register")
    register = visit.main_forms()[0]
    visit.send(register, "assisted mode: register with errors", empty=True)
    visit.send(register, "assisted mode: handed back", {"hand_back": "1"}, empty=True)
    visit.go(f"/{lang}/assist/take-over?next=/{lang}/account/new", "assisted mode: take over")
    take_over = visit.main_forms()[0]
    visit.send(take_over, "assisted mode: take over with errors", empty=True)
    visit.send(take_over, "assisted mode: taken over again",
               {"password": STAFF_PASSWORDS["an.peeters"]})
    ends = [f for f in forms_of(visit.html) if "/assist/end" in f.action]
    assert ends, "no way to end assisted mode once taken over again"
    visit.send(ends[0], "assisted mode ended")


def pages_open_to(app: Flask, role: Role) -> list:
    """The staff pages a role may open (as tests/browser/test_staff_browser.py reads them)."""
    rules = []
    for rule in staff_rules(app):
        if ("GET" not in rule.methods or rule.endpoint.endswith("logout")
                or rule.rule.endswith(".csv")):
            continue
        permission = permission_of(app, rule)
        if rule.endpoint in OPEN_TO_STAFF or (permission is not None
                                              and permission in GRANTS[role]):
            rules.append(rule)
    return sorted(rules, key=lambda r: r.endpoint in LAST)


def staff_pages(app: Flask, visit: Visit) -> None:
    """Every staff page, as the first role that may open it sees it (those that depend on
    the role as each sees them), and each data-entry form on it sent empty."""
    lang, world = visit.lang, populate(app)
    by_role = {"staff.home", "staff.seats.waiting_list", "staff.desk.search"}
    visit.go(f"/{lang}/staff/login", "staff log-in")
    visit.send(visit.main_forms()[0], "staff log-in with errors", empty=True)
    done: set[str] = set()
    for username, role in WHO:
        visit.go(f"/{lang}/staff/login", f"staff log-in for {username}")
        visit.send(visit.main_forms()[0], f"{username} logged in",
                   {"username": username, "password": STAFF_PASSWORDS[username]})
        for rule in pages_open_to(app, role):
            if rule.endpoint in done and rule.endpoint not in by_role:
                continue
            done.add(rule.endpoint)
            with app.test_request_context():
                path = url_for(rule.endpoint, **(world.args(rule) | {"lang": lang}))
            visit.go(path, f"{username} {rule.endpoint}")
            for index, form in enumerate(visit.main_forms()):
                if form.typed:
                    visit.path = path
                    visit.send(form, f"{username} {rule.endpoint} form {index} sent empty",
                               empty=True)
        if username == "coordinator":
            visit.go(f"/{lang}/staff/seats", "coordinator seats")
            cap = [f for f in visit.main_forms() if any(n == "cap" for _, n, _ in f.fields)]
            visit.send(cap[0], "coordinator cap preview", {"cap": "5", "reason": "Licenties"})
        logout = [f for f in forms_of(visit.html) if f.action.endswith("/staff/logout")]
        visit.client.post(logout[0].action, data=logout[0].sent())


@dataclass
class Report:
    folder: Path  # the pages, one file each
    seen: dict[str, str]  # file name → "lang: page state (url)"
    messages: dict[str, list[dict]]  # file name → the validator's errors on it


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Every page state in every language, checked by one run of the validator."""
    missing = validator_missing()
    if missing is not None:
        if IN_CI:
            pytest.fail(f"CI=true but the HTML validator cannot run: {missing}", pytrace=False)
        pytest.skip(missing)
    pages = tmp_path_factory.mktemp("html")
    seen: dict[str, str] = {}
    for lang in LANGS:
        app = build_app(tmp_path_factory.mktemp(f"app-{lang}"), WTF_CSRF_ENABLED=True)
        patron_pages(app, Visit(app.test_client(), pages, lang, seen))
        assisted_pages(Visit(app.test_client(), pages, lang, seen))
        staff_pages(app, Visit(app.test_client(), pages, lang, seen))
    run = subprocess.run(
        ["java", "-Xss8m", "-jar", str(VNU_JAR), "--errors-only", "--format", "json",
         "--exit-zero-always", *sorted(str(p) for p in pages.glob("*.html"))],
        capture_output=True, text=True, timeout=300, check=True)
    messages: dict[str, list[dict]] = {}
    for found in json.loads(run.stderr or run.stdout)["messages"]:
        messages.setdefault(Path(found.get("url", "?")).name, []).append(found)
    return Report(pages, seen, messages)


def test_every_page_state_is_checked_in_every_language(report: Report) -> None:
    seen = report.seen
    names = " | ".join(seen.values())
    for lang in LANGS:
        states = [name for name in seen.values() if name.startswith(f"{lang}:")]
        assert len(states) >= 70, (lang, len(states))
        for state in ("register with errors", "receipt, waiting list", "staff log-in with errors",
                      "coordinator cap preview", "sent empty", "an.peeters staff.desk.search",
                      "assisted mode: register with errors"):
            assert f"{lang}: {state}" in names or f" {state}" in names, (lang, state)


def test_no_attribute_says_none(report: Report) -> None:
    """Python's None rendered as a value (aria-describedby="None" points at nothing): valid
    HTML to the validator, wrong to a screen reader."""
    found = [name for file, name in report.seen.items()
             if '="None"' in (report.folder / file).read_text(encoding="utf-8")]
    assert not found, found


def test_the_validator_finds_no_error(report: Report) -> None:
    seen, messages = report.seen, report.messages
    lines = [f"{seen.get(file, file)} line {m.get('lastLine', '?')}: {m.get('message')}\n"
             f"    {m.get('extract', '').strip()}"
             for file, found in sorted(messages.items()) for m in found]
    assert not lines, f"{len(lines)} errors:\n" + "\n".join(lines)
