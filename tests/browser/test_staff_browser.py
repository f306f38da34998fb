"""Every staff page in a real browser, in every language: axe-core finds no WCAG 2.2 AA
violation, and no page breaks the Content-Security-Policy or throws a script error. Pages as
opened by the coordinator, the IT admin and a librarian, and the states only a POST reaches:
every data-entry form sent empty (its errors) and the cap's preview.

The pages are read from the app's URL map (like tests/integration/test_role_matrix.py), so a
new staff page is checked the day it is added; each is opened by a staff member whose role
allows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import url_for

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
# What a person types into, to be emptied: the error state of every data-entry form.
TYPED = ("input:not([type=hidden]):not([type=checkbox]):not([type=radio]):not([type=submit])"
         ":not([type=button]), textarea")


def staff_log_in(page: Page, base: str, lang: str, username: str) -> None:
    page.goto(f"{base}/{lang}/staff/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(STAFF_PASSWORDS[username])
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"**/{lang}/staff/")


@pytest.fixture(scope="module", params=LANGS)
def report(request, browser: Browser, tmp_path_factory) -> Iterator[dict]:
    """One language: every staff page opened, axe run on each; answers what was found."""
    lang = request.param
    servers = Servers()
    live = servers.start(tmp_path_factory.mktemp(f"staff-{lang}"))
    world = populate(live.app)
    found: dict = {"axe": {}, "console": [], "pages": []}
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
        for username, role in WHO:
            staff_log_in(page, live.base, lang, username)
            for rule in staff_rules(live.app):
                if "GET" not in rule.methods or rule.endpoint.endswith("logout"):
                    continue
                permission = permission_of(live.app, rule)
                if rule.endpoint not in OPEN_TO_STAFF and (
                        permission is None or permission not in GRANTS[role]):
                    continue
                args = world.args(rule) | {"lang": lang}
                with live.app.test_request_context():
                    path = url_for(rule.endpoint, **args)
                console.where = f"{username} {path}"
                kind = page.request.get(live.base + path).headers.get("content-type", "")
                if not kind.startswith("text/html"):
                    continue  # a download (the CSV exports), not a page
                response = page.goto(live.base + path)
                assert response is not None
                if response.status >= 400:
                    found["axe"][path] = f"HTTP {response.status}"
                    continue
                check(page, f"{username} {path}", found)
                forms = page.locator("main form")
                for index in range(forms.count()):
                    if forms.nth(index).locator(TYPED).count():
                        typed_forms.append((username, path, index))
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
                fields = form.locator(TYPED)
                for n in range(fields.count()):
                    if fields.nth(n).is_editable():
                        fields.nth(n).fill("")
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
    text = "\n\n".join(f"== {name} ==\n{detail}" for name, detail in report["axe"].items())
    assert not report["axe"], text


def test_no_csp_violation_or_script_error_on_staff_pages(report: dict) -> None:
    assert not report["console"], "\n".join(report["console"])

