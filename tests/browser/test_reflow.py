"""Reflow (WCAG 1.4.10) and the largest text size, in a real browser (Chromium through
Playwright), served by waitress with CSRF on.

a. Every patron page, in nl, fr and en, at 320 CSS px wide, at the normal and at the largest
   text size ("A++", chosen with the switch in the top bar): the page does not scroll sideways
   and nothing visible ends past its right edge or runs out of its box (a word too long for
   its line breaks; a long library name is not cut in the list).
b. At the largest text size the top bar stays compact: each page's own content starts in the
   top third of the kiosk's screen (1280 × 1024), and at 320 × 640 with room on the first
   screen for its first lines.
c. Every staff page, in nl, fr and en, at 320 CSS px wide: no sideways scroll, nothing past
   the edge or out of its box (a table too wide for the screen scrolls in its own box).
d. The same pages on a desk's 1280 px screen: nothing past the right edge (the dashboard's
   tables), the header on one line (log-out beside the name), and the course list folded by
   category, a search opening the categories it finds courses in.

Each page is loaded once per language; the other sizes are the same page re-laid out (the
text-size switch sets only a class on <html>; the window is resized).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from flask import url_for

from kiosk.registry.domain import matches_all_words
from kiosk.registry.roles import GRANTS, Role
from tests.support.browser import LANGS, VIEWPORT, Live, Servers, require_browser, t
from tests.support.factories import STAFF_PASSWORDS
from tests.support.reflow import (
    LARGEST_TEXT,
    NARROW,
    bar_lines,
    content_top,
    overflow,
    page_height,
    past_the_edge,
    set_text_size,
)
from tests.support.role_matrix import OPEN_TO_STAFF, permission_of, populate, staff_rules

require_browser()

from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = pytest.mark.browser

PASSWORD = "longenough"
SLUG = "spanish-beginners"
LONGEST_LIBRARY = "DIL-GROOT-BIJGAARDEN"  # "Bibliotheek Groot-Bijgaarden"


@dataclass
class Seen:
    lang: str
    pages: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)  # page and size → what
    content_tops: dict[str, tuple[float, float]] = field(default_factory=dict)  # kiosk, 320 px
    desk_screen: dict[str, list[str]] = field(default_factory=dict)  # page at 1280 px → what
    heights: dict[str, int] = field(default_factory=dict)  # page at 1280 px → CSS px


class PatronWalk:
    """One browser context at 320 px with the largest text size chosen, every patron page."""

    def __init__(self, page: Page, live: Live, lang: str) -> None:
        self.page, self.live, self.lang = page, live, lang
        self.seen = Seen(lang)

    def go(self, path: str, name: str) -> None:
        self.page.goto(self.live.url(f"/{self.lang}{path}"))
        self.look(name)

    def look(self, name: str) -> None:
        page = self.page
        page.wait_for_load_state()
        html = page.locator("html")
        expect(html).to_have_attribute("lang", self.lang)
        expect(html).to_have_class(f"text-{LARGEST_TEXT}")  # the visit's choice holds
        self.seen.pages.append(name)
        self.note(f"{name}, 320 px, largest text", overflow(page))
        narrow_top = content_top(page)
        set_text_size(page, "normal")
        self.note(f"{name}, 320 px", overflow(page))
        set_text_size(page, LARGEST_TEXT)
        page.set_viewport_size(VIEWPORT)  # the kiosk's own screen
        self.note(f"{name}, kiosk screen, largest text", overflow(page))
        self.seen.content_tops[name] = (content_top(page), narrow_top)
        page.set_viewport_size(NARROW)

    def note(self, where: str, problems: list[str]) -> None:
        if problems:
            self.seen.problems[where] = problems

    def walk(self) -> Seen:
        page, lang = self.page, self.lang
        page.goto(self.live.url(f"/{lang}/"))
        page.locator(f'form.text-size button[formaction$="/text-size/{LARGEST_TEXT}"]').click()
        self.look("start")
        self.go("/privacy", "privacy")
        self.go("/no-such-page", "page not found")
        self.go("/courses/", "catalogue")
        self.go(f"/courses/{SLUG}", "course")
        self.go("/login", "log in")
        self.go("/account/new", "register")
        # Sent with only the longest library name chosen: every field's error, the name
        # shown in its box.
        page.locator("#library").select_option(LONGEST_LIBRARY)
        page.locator("#register-form button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        self.look("register with errors")
        for box, value in (("#first_name", "Maximiliaan"), ("#last_name", "Vandenbroucke"),
                           ("#email", f"maximiliaan.{lang}@example.be"), ("#birth_day", "27"),
                           ("#birth_year", "1958"), ("#postcode", "1702"),
                           ("#password", PASSWORD)):
            page.locator(box).fill(value)
        page.locator("#birth_month").select_option("3")
        page.locator("#consent").check()
        page.locator("#register-form button[type=submit]").click()
        page.wait_for_url(f"**/{lang}/account/created")
        self.look("account created")
        self.go(f"/courses/{SLUG}/enrol", "confirm")
        page.get_by_role("button", name=t(lang, "Yes, enrol me")).click()
        page.wait_for_url(f"**/courses/{SLUG}/done")
        self.look("receipt")
        self.go(f"/my/withdraw/{SLUG}", "stop a course?")
        self.go("/my/give-up", "give up the seat?")
        self.go("/my/data", "my data")
        self.go("/my/erase", "erase my account?")
        self.go("/assist/", "a librarian's log-in")
        # "Are you still there?": the browser's clock run past the warning.
        self.go("/my", "my courses")
        page.clock.install()
        page.reload()
        page.clock.fast_forward((self.live.app.config["IDLE_WARNING_SECONDS"] + 2) * 1000)
        expect(page.locator("dialog#idle-dialog")).to_be_visible()
        self.look("are you still there?")
        return self.seen


@pytest.fixture(scope="module", params=LANGS)
def patron_walk(request, browser: Browser, tmp_path_factory) -> Iterator[Seen]:
    lang = request.param
    servers = Servers()
    live = servers.start(tmp_path_factory.mktemp(f"reflow-{lang}"))
    context = browser.new_context(viewport=NARROW)
    context.set_default_timeout(10_000)
    try:
        yield PatronWalk(context.new_page(), live, lang).walk()
    finally:
        context.close()
        servers.close()


def report(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{where}:\n  " + "\n  ".join(items) for where, items in problems.items())


def test_a_patron_pages_reflow_at_320_px_at_every_text_size(patron_walk: Seen) -> None:
    assert len(patron_walk.pages) == 18, patron_walk.pages
    assert not patron_walk.problems, (
        f"in {patron_walk.lang}, past the right edge or out of its box:\n"
        f"{report(patron_walk.problems)}")


def test_b_at_the_largest_text_size_the_content_starts_on_the_first_screen(
        patron_walk: Seen) -> None:
    """Below the top bar and the progress, the page's own content starts in the top third of
    the kiosk's screen, and at 320 px with room left on the first screen for its first lines."""
    kiosk_screen, narrow = VIEWPORT["height"], NARROW["height"]
    late = {name: f"at {kiosk:.0f} px on the kiosk's screen, {small:.0f} px at 320 px"
            for name, (kiosk, small) in patron_walk.content_tops.items()
            if kiosk > kiosk_screen / 3 or small > narrow - 90}
    assert not late, (f"in {patron_walk.lang}, at the largest text size the page's content "
                      f"starts too low: {late}")


# --- c. The staff pages -----------------------------------------------------------------------

WHO = (("coordinator", Role.COORDINATOR), ("it.support", Role.IT_ADMIN))


def staff_log_in(page: Page, base: str, lang: str, username: str) -> None:
    page.goto(f"{base}/{lang}/staff/login")
    page.locator("#username").fill(username)
    page.locator("#password").fill(STAFF_PASSWORDS[username])
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"**/{lang}/staff/")


@pytest.fixture(scope="module")
def staff_walk(browser: Browser, tmp_path_factory) -> Iterator[Seen]:
    """Every staff page a coordinator may open, then the IT admin's others, in nl, fr and en,
    at 320 px; and the log-in page with its errors."""
    servers = Servers()
    live = servers.start(tmp_path_factory.mktemp("reflow-staff"))
    world = populate(live.app)
    seen = Seen("nl, fr, en")
    context = browser.new_context(viewport=NARROW)
    context.set_default_timeout(10_000)
    page = context.new_page()

    def look(name: str) -> None:
        page.wait_for_load_state()
        seen.pages.append(name)
        if problems := overflow(page):
            seen.problems[name] = problems
        page.set_viewport_size(VIEWPORT)  # a desk's screen: the same page re-laid out
        wide = past_the_edge(page)
        if (lines := bar_lines(page)) != 1:
            wide.append(f"the header takes {lines} lines")
        if wide:
            seen.desk_screen[name] = wide
        seen.heights[name] = page_height(page)
        page.set_viewport_size(NARROW)

    try:
        for lang in LANGS:
            page.goto(f"{live.base}/{lang}/staff/login")
            page.locator("main form button[type=submit]").click()  # empty: its errors
            expect(page.locator(".error-summary")).to_be_visible()
            look(f"/{lang}/staff/login with errors")
        done: set[str] = set()
        for username, role in WHO:
            staff_log_in(page, live.base, "nl", username)
            rules = [rule for rule in staff_rules(live.app)
                     if "GET" in rule.methods and rule.endpoint not in done
                     and not rule.endpoint.endswith("logout") and not rule.rule.endswith(".csv")
                     and (rule.endpoint in OPEN_TO_STAFF
                          or permission_of(live.app, rule) in GRANTS[role])]
            for lang in LANGS:
                for rule in rules:
                    with live.app.test_request_context():
                        path = url_for(rule.endpoint, **(world.args(rule) | {"lang": lang}))
                    response = page.goto(live.base + path)
                    assert response is not None and response.ok, f"{path}: {response}"
                    look(path)
            done |= {rule.endpoint for rule in rules}
            if username == "coordinator":
                for lang in LANGS:  # a search: the categories it finds courses in, open
                    page.goto(f"{live.base}/{lang}/staff/courses?q=excel")
                    look(f"/{lang}/staff/courses?q=excel")
                    expect(page.locator("details.category")).to_have_count(1)
                    expect(page.locator("details.category[open] tbody tr")).to_have_count(
                        sum(matches_all_words("excel", f"{r.title} {r.slug}")
                            for r in live.service.courses_admin.courses(lang)))
            page.locator("form.logout button").click()
            page.wait_for_load_state()
        yield seen
    finally:
        context.close()
        servers.close()


def test_c_staff_pages_reflow_at_320_px(staff_walk: Seen) -> None:
    assert len(staff_walk.pages) >= 3 * 20, staff_walk.pages
    assert not staff_walk.problems, (
        f"staff pages past the right edge or out of their box:\n{report(staff_walk.problems)}")


def test_d_staff_pages_fit_a_desk_screen_at_1280_px(staff_walk: Seen) -> None:
    assert len(staff_walk.heights) >= 3 * 20, staff_walk.heights
    assert not staff_walk.desk_screen, (
        f"staff pages at 1280 px, past the right edge or the header on two lines:\n"
        f"{report(staff_walk.desk_screen)}")
    # The course list folded by category: about a screen, not 30 courses one under another.
    for lang in LANGS:
        height = staff_walk.heights[f"/{lang}/staff/courses"]
        assert height <= 1.5 * VIEWPORT["height"], (lang, height)
