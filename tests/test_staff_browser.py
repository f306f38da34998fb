"""Every staff page in a real browser, in every language: axe-core finds no WCAG 2.2 AA
violation, and no page breaks the Content-Security-Policy or throws a script error.

The pages are read from the app's URL map (like tests/test_role_matrix.py), so a new staff
page is checked the day it is added; each is opened by a staff member whose role allows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import url_for

from kiosk.registry.roles import GRANTS, Role

from .conftest import STAFF_PASSWORDS
from .test_browser import AXE_OPTIONS, LANGS, VIEWPORT, Console, _Servers
from .test_role_matrix import OPEN_TO_STAFF, permission_of, populate, staff_rules

pytestmark = pytest.mark.browser

from axe_playwright_python.base import AxeResults  # noqa: E402
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

WHO = (("coordinator", Role.COORDINATOR), ("it.support", Role.IT_ADMIN))


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
    servers = _Servers()
    live = servers.start(tmp_path_factory.mktemp(f"staff-{lang}"))
    world = populate(live.app)
    found: dict = {"axe": {}, "console": [], "pages": []}
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
    text = "\n\n".join(f"== {name} ==\n{detail}" for name, detail in report["axe"].items())
    assert not report["axe"], text


def test_no_csp_violation_or_script_error_on_staff_pages(report: dict) -> None:
    assert not report["console"], "\n".join(report["console"])

