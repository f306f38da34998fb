"""The practice band and the coordinator’s reset in a real browser: the band stays at the bottom
of the screen on patron and staff pages, in the page’s language, and the reset asks first with
"Back" in focus, so Enter changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from kiosk.registry.store import Patron
from tests.support.browser import Live
from tests.support.factories import STAFF_PASSWORDS, add_patron

pytestmark = pytest.mark.browser

from playwright.sync_api import Browser, expect  # noqa: E402


def patrons(live: Live) -> int:
    with live.app.extensions["registry_service"].store.read() as s:
        return s.scalar(select(func.count()).select_from(Patron)) or 0


def test_the_band_stays_on_screen_and_the_reset_asks_with_back_in_focus(
        browser: Browser, live_server: Callable[..., Live]) -> None:
    live = live_server()
    add_patron(live.app.extensions["registry_service"])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(f"{live.base}/nl/")
        band = page.locator(".practice-band")
        expect(band).to_have_text("Oefenversie — geen echte gegevens")
        box = band.bounding_box()
        assert box is not None and box["y"] + box["height"] == 900  # the screen's bottom edge

        page.goto(f"{live.base}/fr/staff/login")
        page.locator("#username").fill("coordinator")
        page.locator("#password").fill(STAFF_PASSWORDS["coordinator"])
        page.locator("main form button[type=submit]").click()
        page.wait_for_url("**/fr/staff/")
        page.locator(".practice-band a").click()  # "Recommencer l’exercice"
        page.wait_for_url("**/fr/staff/practice/reset")
        back = page.get_by_role("link", name="Retour, ne rien changer")
        expect(back).to_be_focused()
        page.keyboard.press("Enter")
        page.wait_for_url("**/fr/staff/")
        assert patrons(live) == 1  # Enter on the page as it opens changes nothing

        page.goto(f"{live.base}/fr/staff/practice/reset")
        page.get_by_role("button", name="Recommencer").click()
        page.wait_for_url("**/fr/staff/login**")
        expect(page.locator("main")).to_contain_text("L’exercice est revenu à son point de "
                                                     "départ")
        assert patrons(live) == 0
    finally:
        page.close()
