"""The desk's correction page in a real browser: a librarian corrects a name into one another
account has, is asked to tick "someone else" (a state the axe walk of every staff page,
tests/browser/test_staff_browser.py, does not reach), and saves; axe finds no violation on
the page with that question."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.browser import AXE_OPTIONS, VIEWPORT, Console, Live, require_browser, t
from tests.support.factories import STAFF_PASSWORDS, add_patron

require_browser()

from axe_playwright_python.base import AxeResults  # noqa: E402
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.add_init_script(Axe().axe_script)
    tab = context.new_page()
    tab.console = Console(tab)  # type: ignore[attr-defined]
    yield tab
    context.close()


def test_a_lookalike_correction_is_asked_then_saved(page: Page, live_server) -> None:  # type: ignore[no-untyped-def]
    live: Live = live_server()
    add_patron(live.service, first_name="Jan", last_name="Peeters", birth_date="1950-01-01")
    card, _ = add_patron(live.service, first_name="Jan", last_name="Peters",
                         birth_date="1950-01-01")
    page.goto(live.url("/fr/staff/login"))
    page.locator("#username").fill("an.peeters")
    page.locator("#password").fill(STAFF_PASSWORDS["an.peeters"])
    page.locator("#password").press("Enter")
    page.wait_for_url("**/fr/staff/")
    page.goto(live.url("/fr/staff/desk"))
    page.locator("#query").fill(card)
    page.locator("#query").press("Enter")
    page.locator("main").get_by_role("link", name=re.compile("Peters")).first.click()
    page.wait_for_url(re.compile(r"/staff/desk/patrons/\d+$"))
    patron_page = page.url
    page.get_by_role("link", name=t("fr", "Correct the details")).click()

    page.locator("#last_name").fill("Peeters")
    page.locator("#reason").fill("faute de frappe dans le nom")
    page.get_by_role("button", name=t("fr", "Save the corrections")).click()
    expect(page.locator("main")).to_contain_text(t(
        "fr", "Another account has the same name and date of birth. If this is someone else, "
        "tick the box to save anyway: the two accounts go to the duplicates queue."))
    results = AxeResults(page.evaluate("options => axe.run(options)", AXE_OPTIONS))
    assert not results.violations_count, results.generate_report()

    page.get_by_label(t("fr", "This is someone else with the same name and date of birth: "
                              "save anyway")).check()
    page.get_by_role("button", name=t("fr", "Save the corrections")).click()
    page.wait_for_url(patron_page)
    expect(page.locator("main")).to_contain_text(t("fr", "The patron's details are corrected."))
    page.console.assert_clean()  # type: ignore[attr-defined]
