"""Take-over in a real browser (Chromium through Playwright), served by waitress with CSRF on:
a librarian unlocks assisted mode from the kiosk's footer, fills in a sign-up with the patron,
ticks "identity document checked", hands back so the patron types the password privately,
takes over again with the librarian's password, enrols the patron in a course and ends
assisted mode. The audit log then holds the tagged entries.

Needs Debian's Chromium (/usr/bin/chromium); never `playwright install`. Skipped when it is
missing, except in CI (CI=true), where a missing browser is an error. The fixtures follow
tests/browser/test_browser.py (live_server: tests/browser/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect  # noqa: E402
from sqlalchemy import select  # noqa: E402

from kiosk.registry.store import AuditEntry, Patron  # noqa: E402
from tests.support.browser import Live
from tests.support.factories import STAFF_PASSWORDS

pytestmark = pytest.mark.browser

LABEL = "An Peeters (Bibliotheek Permeke)"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1024})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on("console", lambda msg: problems.append(msg.text)
           if "Content Security Policy" in msg.text else None)
    tab.problems = problems  # type: ignore[attr-defined]
    yield tab
    context.close()


def test_an_assisted_sign_up_and_enrolment_with_hand_back_and_take_over(
        live_server: Callable[..., Live], page: Page) -> None:
    live = live_server()
    banner = page.locator("section.assisted")

    # The librarian unlocks assisted mode from the discreet footer link.
    page.goto(live.url("/en/account/new"))
    expect(banner).to_have_count(0)
    expect(page.get_by_label("Identity document checked")).to_have_count(0)
    page.locator("footer").get_by_role("link", name="Librarian").click()
    page.get_by_label("Staff user name").fill("an.peeters")
    page.get_by_label("Password", exact=True).fill(STAFF_PASSWORDS["an.peeters"])
    page.get_by_role("button", name="Start assisted mode").click()
    page.wait_for_url("**/en/account/new")
    expect(banner).to_contain_text(f"Assisted by {LABEL}")

    # Together they fill in the sign-up; the librarian has seen an identity document.
    page.get_by_label("First name", exact=True).fill("Rosalie")
    page.get_by_label("Last name", exact=True).fill("Peeters")
    page.get_by_label("E-mail address", exact=True).fill("rosalie@example.be")
    page.get_by_label("Day", exact=True).fill("27")
    page.get_by_label("Month", exact=True).select_option("3")
    page.get_by_label("Year", exact=True).fill("1958")
    page.get_by_label("Postcode", exact=True).fill("2000")
    page.get_by_label("Your library", exact=True).select_option("ANT-PERMEKE")
    page.get_by_label("I have read the privacy statement and I agree.", exact=True).check()
    page.get_by_label("Identity document checked").check()

    # Hand back: the patron types the password privately; nothing typed is lost.
    banner.get_by_role("button", name="Hand back to the patron").click()
    expect(banner).to_contain_text("A librarian is nearby")
    expect(banner.get_by_role("button", name="End assisted mode")).to_have_count(0)
    expect(page.get_by_label("Identity document checked")).to_have_count(0)
    expect(page.get_by_label("First name", exact=True)).to_have_value("Rosalie")
    expect(page.get_by_label("E-mail address", exact=True)).to_have_value("rosalie@example.be")
    page.get_by_label("Choose a password", exact=True).fill("my own secret")
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url("**/en/account/created")
    expect(banner).to_contain_text(LABEL)

    # Taking over again needs the librarian's password, not just a click.
    banner.get_by_role("link", name="Librarian: take over again").click()
    page.get_by_label("Librarian's password").fill("not the password")
    page.get_by_role("button", name="Take over again").click()
    expect(page.locator(".error-summary")).to_contain_text("This password is not right.")
    page.get_by_label("Librarian's password").fill(STAFF_PASSWORDS["an.peeters"])
    page.get_by_role("button", name="Take over again").click()
    page.wait_for_url("**/en/account/created")
    expect(banner.get_by_role("button", name="Hand back to the patron")).to_be_visible()

    # The librarian enrols the patron in a course, then ends assisted mode.
    page.goto(live.url("/en/courses/excel-basics/enrol"))
    page.get_by_role("button", name="Yes, enrol me").click()
    page.wait_for_url("**/en/courses/excel-basics/done")
    banner.get_by_role("button", name="End assisted mode").click()
    expect(page.locator(".notice")).to_contain_text("Assisted mode has ended.")
    expect(banner).to_have_count(0)
    expect(page.locator(".who")).to_contain_text("Rosalie")  # the patron's visit goes on
    assert page.problems == []  # type: ignore[attr-defined]

    with live.service.store.read() as s:
        patron = s.scalar(select(Patron).where(Patron.email == "rosalie@example.be"))
        assert patron is not None and patron.identity_checked_by == "staff:an.peeters"
        entries = {e.action: (e.actor, e.subject, e.institution, dict(e.detail))
                   for e in s.scalars(select(AuditEntry))}
        subject = f"patron#{patron.id}"
    assert entries["patron_registered"] == (
        "staff:an.peeters", subject, "ANT", {"assisted_by": LABEL, "identity_checked": True})
    actor, who, institution, detail = entries["patron_enrolled"]
    assert (actor, who, institution) == ("staff:an.peeters", subject, "ANT")
    assert detail == {"assisted_by": LABEL, "course": "excel-basics", "standing": "seated"}
