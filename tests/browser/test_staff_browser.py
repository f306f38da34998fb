"""Every staff page in a real browser, in every language: axe-core finds no WCAG 2.2 AA
violation, and no page breaks the Content-Security-Policy or throws a script error. Each page
once, as opened by the first of the coordinator, the IT admin and a librarian whose role
allows it; the pages whose content depends on the role (BY_ROLE: the start page with that
role's navigation, the waiting list, the patron search) as each of them sees them. Also the
states only a POST reaches: every data-entry form sent empty (its errors) and the cap's preview.

The pages are read from the app's URL map (like tests/integration/test_role_matrix.py), so a
new staff page is checked the day it is added; each is opened by a staff member whose role
allows it, and the report must show every staff page, and every page each role may open,
checked by someone.
"""

from __future__ import annotations

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
# Pages whose content depends on who opens them (templates/staff/**), checked as every role
# that may open them sees them: the start page (that role's tiles, and the header and
# navigation every page of theirs repeats), the waiting list (a librarian's count of their own
# patrons; a coordinator's filter and Move buttons), the patron search (a librarian's "your own
# institution"). Elsewhere the coordinator sees a superset (the institution on the pending
# list, the patron export, every institution's libraries): any other page is checked once, as
# the first role in WHO that may open it sees it.
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
# axe on the page and, in the same call, which of its forms have fields to type in. Only the
# violations come back: the rest (passes, inapplicable rules: some 40 kB) is not read.
AXE_AND_FORMS = """async ([options, typed]) => [
  {violations: (await axe.run(options)).violations},
  [...document.querySelectorAll("main form")].flatMap(
    (form, index) => form.querySelector(typed) ? [index] : []),
]"""


def staff_log_in(page: Page, base: str, lang: str, username: str) -> None:
    page.goto(f"{base}/{lang}/staff/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(STAFF_PASSWORDS[username])
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"**/{lang}/staff/")


def pages_open_to(app: Flask, role: Role | None) -> list[Rule]:
    """The staff pages the role (None: any role) may open, in staff_rules' order; not the
    CSV downloads."""
    rules = []
    for rule in staff_rules(app):
        if ("GET" not in rule.methods or rule.endpoint.endswith("logout")
                or rule.rule.endswith(".csv")):
            continue
        permission = permission_of(app, rule)
        if rule.endpoint in OPEN_TO_STAFF or (permission is not None and (
                role is None or permission in GRANTS[role])):
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
    # staff_pages: every staff page (the log-in page is checked logged out, with its errors);
    # may_open: what each role may open; checked: the endpoints axe ran on, as whom.
    found: dict = {"axe": {}, "console": [], "pages": [],
                   "staff_pages": {r.endpoint for r in pages_open_to(live.app, None)},
                   "may_open": {u: {r.endpoint for r in rules} for u, rules in open_to.items()},
                   "checked": {username: set() for username, _ in WHO}}
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
                typed = check(page, f"{username} {path}", found)
                found["checked"][username].add(rule.endpoint)
                # Its data-entry forms sent empty: their error state (summary and fields).
                # The first from the page just checked (axe only reads it), the others from
                # the page opened again. Sent empty, each is refused (only the audit log's
                # filter, a GET, and the closed days, which save "none", go through): nothing
                # the later pages act on changes.
                for n, index in enumerate(typed):
                    if n:
                        page.goto(live.base + path)
                    name = f"{username} {path} form {index} sent empty"
                    console.where = name
                    form = page.locator("main form").nth(index)
                    form.evaluate(EMPTY, TYPED)
                    form.locator("button[type=submit], input[type=submit]").first.click()
                    page.wait_for_load_state()
                    if (page.url.split("?")[0].endswith(path)
                            or page.locator(".error-summary").count()):
                        check(page, name, found)
            if username == "coordinator":
                # The cap's preview: shown only after a POST.
                page.goto(f"{live.base}/{lang}/staff/seats")
                page.locator("#cap").fill("5")
                page.locator("#reason").fill("Tweede schijf licenties")
                page.locator("#cap").locator("xpath=ancestor::form").locator(
                    "button[type=submit]").click()
                page.wait_for_load_state()
                check(page, "coordinator cap preview", found)
            page.locator("form.logout button").click()
        found["console"] = console.take()
        yield found
    finally:
        context.close()
        servers.close()


def check(page: Page, name: str, found: dict) -> list[int]:
    """axe on the page as it is; answers which of its main forms have fields to type in
    (in the same call: one browser round trip fewer per page)."""
    page.wait_for_load_state()
    found["pages"].append(name)
    raw, typed = page.evaluate(AXE_AND_FORMS, [AXE_OPTIONS, TYPED])
    results = AxeResults(raw)
    if results.violations_count:
        found["axe"][name] = f"{page.url}\n{results.generate_report()}"
    return typed


def test_axe_finds_no_violation_on_any_staff_page(report: dict) -> None:
    assert len(report["pages"]) >= 6, report["pages"]
    # Not only pages as opened: the states a POST leads to (a form's errors, the preview).
    sent_empty = [name for name in report["pages"] if name.endswith("sent empty")]
    assert len(sent_empty) >= 15, "\n".join(sent_empty)
    assert "coordinator cap preview" in report["pages"]
    assert any(name.startswith("an.peeters ") for name in report["pages"])
    # Each page once (BY_ROLE ones as each role sees them): none of a role's pages left out.
    checked_by_anyone = set().union(*report["checked"].values())
    assert report["staff_pages"] == checked_by_anyone, (
        sorted(report["staff_pages"] ^ checked_by_anyone))
    for username, may_open in report["may_open"].items():
        assert may_open <= checked_by_anyone, (username, sorted(may_open - checked_by_anyone))
        assert may_open & BY_ROLE <= report["checked"][username], username
    text = "\n\n".join(f"== {name} ==\n{detail}" for name, detail in report["axe"].items())
    assert not report["axe"], text


def test_no_csp_violation_or_script_error_on_staff_pages(report: dict) -> None:
    assert not report["console"], "\n".join(report["console"])

