"""A member with the library card they already have, in a real browser: the card scanned like
a barcode scanner types it, the PIN, a course, the receipt that says to log in at the academy
with that card; a blocked card gets the desk message. axe-core on each of these pages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.registry.demo_member_system import DEMO_CARDS, DEMO_LOGIN, DemoMemberSystem
from kiosk.registry.member_system import MemberSystemConfig
from tests.support.browser import AXE_OPTIONS, VIEWPORT, require_browser, t

require_browser()

from axe_playwright_python.base import AxeResults  # noqa: E402
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.browser
RECEIPT = ("Log in there with your library card number and the PIN or password you use at the "
           "library.")

@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.add_init_script(Axe().axe_script)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def live(live_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    secret = tmp_path / "sip.secret"
    secret.write_text(DEMO_LOGIN[1], encoding="utf-8")
    with DemoMemberSystem(DEMO_CARDS, login=DEMO_LOGIN) as system:
        served = live_server(LIBRARY_CODE="ANT-PERMEKE")
        served.service.members.configure("ANT", MemberSystemConfig(
            host="127.0.0.1", port=system.port, login_user=DEMO_LOGIN[0],
            password_file=str(secret)), actor="test")
        yield served


def no_axe_violations(page: Page) -> None:
    results = AxeResults(page.evaluate(f"axe.run({json.dumps(AXE_OPTIONS)})"))
    assert results.violations_count == 0, results.generate_report()


def sign_in(page: Page, live, lang: str, card: str, pin: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(live.url(f"/{lang}/login"))
    page.locator("#identifier").press_sequentially(card)  # as a barcode scanner types
    page.get_by_label(t(lang, "PIN or password"), exact=True).fill(pin)
    page.get_by_role("button", name=t(lang, "Log in"), exact=True).click()


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_a_member_enrols_with_their_library_card(page: Page, live, lang: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(live.url(f"/{lang}/login"))
    no_axe_violations(page)
    sign_in(page, live, lang, "2100 0123 456", "1234")
    page.wait_for_url(f"**/{lang}/courses/")
    page.goto(live.url(f"/{lang}/courses/spanish-beginners/enrol"))
    page.get_by_role("button", name=t(lang, "Yes, enrol me")).click()
    page.wait_for_url(f"**/{lang}/courses/spanish-beginners/done")
    expect(page.locator("main")).to_contain_text("21000123456")
    expect(page.locator("main")).to_contain_text(t(lang, RECEIPT))
    no_axe_violations(page)
    page.goto(live.url(f"/{lang}/my/data"))
    expect(page.locator("main")).to_contain_text("21000123456")
    no_axe_violations(page)


def test_a_blocked_card_is_sent_to_the_desk_calmly(page: Page, live) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, live, "nl", "21000999999", "9999")
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text(t("nl", "Your library card needs attention at the desk. "
                                          "A librarian can help you with it, then you can log "
                                          "in here."))
    expect(page.locator("#identifier")).to_have_value("21000999999")
    no_axe_violations(page)
