"""The kiosk's sign-up follows the chosen library, in a real browser: Kortrijk asks for a
phone number and no postcode and takes part from 18, Antwerpen (the kiosk's own) asks as the
programme does. Another library chosen, the form comes back for it with what was typed.
axe-core on both forms."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.browser import AXE_OPTIONS, VIEWPORT, require_browser, t

require_browser()

from axe_playwright_python.base import AxeResults  # noqa: E402
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.browser
LANG = "fr"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.add_init_script(Axe().axe_script)
    tab = context.new_page()
    yield tab
    context.close()


def no_axe_violations(page: Page) -> None:
    results = AxeResults(page.evaluate(f"axe.run({json.dumps(AXE_OPTIONS)})"))
    assert results.violations_count == 0, results.generate_report()


def test_the_form_asks_what_the_chosen_librarys_institution_asks(page: Page,  # type: ignore[no-untyped-def]
                                                                  live_server) -> None:
    live = live_server(LIBRARY_CODE="ANT-PERMEKE")
    live.service.sign_up_rules.set_rules("KOR", "required", "not_asked", "18", actor="test")
    page.goto(live.url(f"/{LANG}/account/new"))
    form = page.locator("#register-form")
    expect(form.locator("#postcode")).to_have_count(1)
    expect(form).to_contain_text(t(LANG, "You can take part from the age of %(age)s.", age=16))
    no_axe_violations(page)

    page.locator("#library").select_option("KOR-CENTRUM")
    page.locator("#first_name").fill("Noor")
    page.get_by_role("button", name=t(LANG, "Create my account")).click()
    expect(page.locator(".notice[role=status]")).to_contain_text(t(LANG, (
        "You chose another library. The form now asks what that library needs. Check the "
        "boxes, type your password again and send the form.")))
    expect(form.locator("#postcode")).to_have_count(0)
    expect(page.get_by_label(t(LANG, "Phone number"), exact=True)).to_be_visible()
    expect(form).to_contain_text(t(LANG, "You can take part from the age of %(age)s.", age=18))
    expect(page.locator("#first_name")).to_have_value("Noor")
    expect(page.locator("#library")).to_have_value("KOR-CENTRUM")
    expect(page.locator(".error-summary")).to_have_count(0)
    no_axe_violations(page)
