"""The second step of a change that cannot be undone, in a real browser with the keyboard
only, in nl, fr and en: the patron's "No thanks" to a seat held for them and the desk's
withdraw open a page where the safe choice has the focus, so Enter keeps things as they are;
Tab reaches the change only after it; axe finds no violation on the page.

(The staff confirmation pages are also in the axe walk of every staff page,
tests/browser/test_staff_browser.py, and the HTML validator's, through the URL map.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from kiosk.registry.domain import Standing
from kiosk.registry.services import RegistryService
from tests.support.browser import AXE_OPTIONS, LANGS, VIEWPORT, Console, Live, require_browser, t
from tests.support.factories import STAFF_PASSWORDS, add_patron, patron_data

require_browser()

from axe_playwright_python.base import AxeResults  # noqa: E402
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.browser

PASSWORD = "correct horse"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.add_init_script(Axe().axe_script)
    tab = context.new_page()
    tab.console = Console(tab)  # type: ignore[attr-defined]
    yield tab
    context.close()


def no_axe_violation(page: Page) -> None:
    results = AxeResults(page.evaluate("options => axe.run(options)", AXE_OPTIONS))
    assert not results.violations_count, results.generate_report()


def offered(service: RegistryService) -> tuple[str, str]:
    """Offer and hold, one seat, someone else waiting: the seat is held for the patron whose
    card number and session token this answers."""
    service.set_cap(1, actor="test")
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    _, holder = add_patron(service)
    card = service.register(patron_data())
    token = service.login(card, PASSWORD)[0]
    service.claim(holder, "excel-basics")
    service.claim(token, "excel-basics")
    service.claim(add_patron(service)[1], "word-basics")
    service.give_up_seat(holder)
    return card, token


@pytest.mark.parametrize("lang", LANGS)
def test_enter_on_no_thanks_keeps_the_seat(page: Page, live_server, lang: str) -> None:  # type: ignore[no-untyped-def]
    live: Live = live_server()
    card, token = offered(live.service)
    page.goto(live.url(f"/{lang}/login"))
    page.locator("#identifier").fill(card)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password").press("Enter")
    page.wait_for_url(f"**/{lang}/my/offer")

    page.get_by_role("link", name=t(lang, "No thanks")).click()
    page.wait_for_url(f"**/{lang}/my/offer/decline")
    expect(page.locator("h1")).to_have_text(t(lang, "Say no thanks to this seat?"))
    expect(page.locator("main")).to_contain_text(t(
        lang, "The seat is kept for the next person on the waiting list, who gets a few days "
        "to take it."))
    keep = page.get_by_role("link", name=t(lang, "Keep my seat"))
    expect(keep).to_be_focused()
    no_axe_violation(page)
    # Tab goes on to the change: the safe choice comes first.
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=t(lang, "Yes, give this seat away"))).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(keep).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/{lang}/my/offer")
    assert live.service.status(token).standing is Standing.OFFERED

    # Asked for, the change is made: the seat goes to the next in line.
    page.get_by_role("link", name=t(lang, "No thanks")).click()
    page.wait_for_url(f"**/{lang}/my/offer/decline")
    # The page's own focus first (else Tab may start from the top: the skip link).
    expect(page.get_by_role("link", name=t(lang, "Keep my seat"))).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/{lang}/my\?done=offer-decline$"))
    assert live.service.status(token).standing is Standing.NONE
    page.console.assert_clean()  # type: ignore[attr-defined]


@pytest.mark.parametrize("lang", LANGS)
def test_enter_on_the_desks_withdraw_keeps_the_course(page: Page, live_server, lang: str) -> None:  # type: ignore[no-untyped-def]
    live: Live = live_server()
    card, token = add_patron(live.service, first_name="Mira", last_name="Keuze")
    live.service.claim(token, "excel-basics")
    page.goto(live.url(f"/{lang}/staff/login"))
    page.locator("#username").fill("an.peeters")
    page.locator("#password").fill(STAFF_PASSWORDS["an.peeters"])
    page.locator("#password").press("Enter")
    page.wait_for_url(f"**/{lang}/staff/")
    page.goto(live.url(f"/{lang}/staff/desk"))
    page.locator("#query").fill(card)
    page.locator("#query").press("Enter")
    page.locator("main").get_by_role("link", name=re.compile("Mira")).first.click()
    page.wait_for_url(re.compile(r"/staff/desk/patrons/\d+$"))
    patron_page = page.url

    title = live.service.course("excel-basics", lang).title
    page.get_by_role("link", name=t(lang, "Withdraw from %(title)s", title=title)).click()
    page.wait_for_url(re.compile(r"/withdraw/excel-basics$"))
    expect(page.locator("main")).to_contain_text(t(
        lang, "It is their only course: %(name)s also loses their seat.", name="Mira Keuze"))
    cancel = page.get_by_role("link", name=t(lang, "Cancel"))
    expect(cancel).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(patron_page)
    assert [e.course_slug for e in live.service.status(token).enrolments] == ["excel-basics"]
    page.console.assert_clean()  # type: ignore[attr-defined]
