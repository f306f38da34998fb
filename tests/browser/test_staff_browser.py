"""Every staff page in a real browser, in every language: axe-core finds no WCAG 2.2 AA
violation, and no page breaks the Content-Security-Policy or throws a script error. Each page
as opened by the first of the coordinator, the IT admin and a librarian whose role allows it;
the pages whose content depends on the role (the start page with that role's navigation, and
those in BY_ROLE) as each of them sees them. Also the states only a POST reaches: every
data-entry form sent empty (its errors) and the cap's preview.

The pages are read from the app's URL map (like tests/integration/test_role_matrix.py), so a
new staff page is checked the day it is added; each is opened by a staff member whose role
allows it, and the report must show every page each role may open checked by someone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask, url_for
from werkzeug.routing import Rule

from kiosk.registry.roles import GRANTS, Role
from tests.support.browser import AXE_OPTIONS, LANGS, VIEWPORT, Console, Servers
from tests.support.factories import STAFF_PASSWORDS
from tests.support.role_matrix import OPEN_TO_STAFF, permission_of, populate, staff_rules

pytestmark = pytest.mark.browser

from axe_playwright_python.base import AxeResults  # noqa: E402
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

WHO = (("coordinator", Role.COORDINATOR), ("it.support", Role.IT_ADMIN),
       ("an.peeters", Role.LIBRARIAN))
# Every page shows the role in its header and that role's navigation: each role's start page
# (staff.home) checks those. These pages also differ in their content (templates/staff/**):
# the waiting list (a librarian's count of their own patrons; a coordinator's filter and Move
# buttons) and the patron search (a librarian's "your own institution"). Each is checked as
# every role that may open it sees it; any other page once, as the first role in WHO may.
BY_ROLE = frozenset({"staff.home", "staff.seats.waiting_list", "staff.desk.search"})
# What a person types into, to be emptied: the error state of every data-entry form.
TYPED = ("input:not([type=hidden]):not([type=checkbox]):not([type=radio]):not([type=submit])"
         ":not([type=button]), textarea")
# Empties a form's editable typed fields in one call (not one browser round trip per field).
EMPTY = """(form, typed) => {
  for (const field of form.querySelectorAll(typed)) {
    if (field.matches(":disabled") || field.readOnly) continue;
    field.value = "";
    field.dispatchEvent(new Event("input", {bubbles: true}));
    field.dispatchEvent(new Event("change", {bubbles: true}));
  }
}"""


def staff_log_in(page: Page, base: str, lang: str, username: str) -> None:
    page.goto(f"{base}/{lang}/staff/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(STAFF_PASSWORDS[username])
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"**/{lang}/staff/")


def pages_open_to(app: Flask, role: Role) -> list[Rule]:
    """The staff pages the role may open, in staff_rules' order; not the CSV downloads."""
    rules = []
    for rule in staff_rules(app):
        if ("GET" not in rule.methods or rule.endpoint.endswith("logout")
                or rule.rule.endswith(".csv")):
            continue
        permission = permission_of(app, rule)
        if rule.endpoint in OPEN_TO_STAFF or (
                permission is not None and permission in GRANTS[role]):
            rules.append(rule)
    return rules


@pytest.fixture(scope="module", params=LANGS)
def report(request, browser: Browser, tmp_path_factory) -> Iterator[dict]:
    """One language: every staff page opened, axe run on each; answers what was found."""
    lang = request.param
    servers = Servers()
    live = servers.start(tmp_path_factory.mktemp(f"staff-{lang}"))
    world = populate(live.app)
    open_to = {username: pages_open_to(live.app, role) for username, role in WHO}
    # may_open: what each role may open; checked: the endpoints axe ran on, as whom.
    found: dict = {"axe": {}, "console": [], "pages": [],
                   "may_open": {u: {r.endpoint for r in rules} for u, rules in open_to.items()},
                   "checked": {username: set() for username, _ in WHO}}
    typed_forms: list[tuple[str, str, int]] = []
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.add_init_script(Axe().axe_script)
    page = context.new_page()
    console = Console(page)
    try:
        page.goto(f"{live.base}/{lang}/staff/login")
        page.locator("main form button[type=submit]").click()  # empty: the error state
        expect(page.locator(".error-summary")).to_be_visible()
        check(page, "log-in with errors", found)
        for username, _role in WHO:
            staff_log_in(page, live.base, lang, username)
            for rule in open_to[username]:
                if rule.endpoint not in BY_ROLE and any(
                        rule.endpoint in done for done in found["checked"].values()):
                    continue  # the same page as an earlier role in WHO saw it
                args = world.args(rule) | {"lang": lang}
                with live.app.test_request_context():
                    path = url_for(rule.endpoint, **args)
                console.where = f"{username} {path}"
                response = page.goto(live.base + path)
                assert response is not None
                if response.status >= 400:
                    found["axe"][path] = f"HTTP {response.status}"
                    continue
                check(page, f"{username} {path}", found)
                found["checked"][username].add(rule.endpoint)
                has_typed = page.locator("main form").evaluate_all(
                    "(forms, typed) => forms.map(f => f.querySelector(typed) !== null)", TYPED)
                typed_forms += [(username, path, i) for i, yes in enumerate(has_typed) if yes]
            if username == "coordinator":
                # The cap's preview: shown only after a POST.
                page.goto(f"{live.base}/{lang}/staff/seats")
                page.locator("#cap").fill("5")
                page.locator("#reason").fill("Tweede schijf licenties")
                page.locator("#cap").locator("xpath=ancestor::form").locator(
                    "button[type=submit]").click()
                page.wait_for_load_state()
                check(page, "coordinator cap preview", found)
            # Every data-entry form sent empty: its error state (summary and fields).
            for who, path, index in [f for f in typed_forms if f[0] == username]:
                page.goto(live.base + path)
                form = page.locator("main form").nth(index)
                form.evaluate(EMPTY, TYPED)
                console.where = f"{who} {path} form {index} sent empty"
                form.locator("button[type=submit], input[type=submit]").first.click()
                page.wait_for_load_state()
                if (page.url.split("?")[0].endswith(path)
                        or page.locator(".error-summary").count()):
                    check(page, f"{who} {path} form {index} sent empty", found)
            page.locator("form.logout button").click()
        found["console"] = console.take()
        yield found
    finally:
        context.close()
        servers.close()


def check(page: Page, name: str, found: dict) -> None:
    page.wait_for_load_state()
    found["pages"].append(name)
    results = AxeResults(page.evaluate(f"axe.run({json.dumps(AXE_OPTIONS)})"))
    if results.violations_count:
        found["axe"][name] = f"{page.url}\n{results.generate_report()}"


def test_axe_finds_no_violation_on_any_staff_page(report: dict) -> None:
    assert len(report["pages"]) >= 6, report["pages"]
    # Not only pages as opened: the states a POST leads to (a form's errors, the preview).
    sent_empty = [name for name in report["pages"] if name.endswith("sent empty")]
    assert len(sent_empty) >= 15, "\n".join(sent_empty)
    assert "coordinator cap preview" in report["pages"]
    assert any(name.startswith("an.peeters ") for name in report["pages"])
    # Each page once (BY_ROLE ones as each role sees them): none of a role's pages left out.
    checked_by_anyone = set().union(*report["checked"].values())
    for username, may_open in report["may_open"].items():
        assert may_open <= checked_by_anyone, (username, sorted(may_open - checked_by_anyone))
        assert may_open & BY_ROLE <= report["checked"][username], username
    text = "\n\n".join(f"== {name} ==\n{detail}" for name, detail in report["axe"].items())
    assert not report["axe"], text


def test_no_csp_violation_or_script_error_on_staff_pages(report: dict) -> None:
    assert not report["console"], "\n".join(report["console"])

