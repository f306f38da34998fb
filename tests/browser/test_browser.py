"""The kiosk in a real browser (Chromium through Playwright), served by waitress with CSRF on.

a. the whole journey in nl, fr and en, with a card number typed like a barcode scanner does;
b. full programme → waiting list → someone gives up a seat → the first in line has it;
c. the idle timer: warning, "yes, I am still here", Escape, and the reset to the branch default;
d. axe-core, e. 44×44 px targets and f. no CSP violation or script error, on every page in
   every language (one browser context per language walks all pages once, d–f read its notes);
g. the back button after log-out shows no personal data.

Needs Debian's Chromium (/usr/bin/chromium); never `playwright install`. Skipped when it is
missing, except in CI (CI=true), where a missing browser is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from tests.support.browser import (
    AXE_OPTIONS,
    CHROMIUM,
    LANGS,
    LAUNCH_ARGS,
    VIEWPORT,
    Console,
    Live,
    Servers,
    require_browser,
    t,
)
from tests.support.factories import add_patron

require_browser()

from axe_playwright_python.base import AxeResults  # noqa: E402
from axe_playwright_python.sync_playwright import Axe  # noqa: E402
from playwright.sync_api import Browser, Page, expect  # noqa: E402
from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from sqlalchemy import text  # noqa: E402

from kiosk.registry.seed import load_demo_data  # noqa: E402

pytestmark = pytest.mark.browser

MIN_TARGET = 44  # CSS px, both ways
PASSWORD = "longenough"
DEMO = load_demo_data()  # what the registry is seeded with
COURSES = {c["slug"]: c for c in DEMO["courses"]}
CATEGORIES = {c["code"]: c for c in DEMO["categories"]}


def exact(text: str) -> re.Pattern[str]:
    """A whole accessible name, ignoring the "✓ " that CSS puts before the current choice."""
    return re.compile(rf"^\W*{re.escape(text)}\s*$")


def contains(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))


# --- The page -------------------------------------------------------------------------------

@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.console = Console(tab)  # type: ignore[attr-defined]
    yield tab
    context.close()


# --- Steps a person takes -------------------------------------------------------------------

def expect_lang(page: Page, lang: str) -> None:
    expect(page.locator("html")).to_have_attribute("lang", lang)
    assert f"/{lang}/" in page.url, page.url


def header_greeting(page: Page, lang: str, name: str) -> None:
    expect(page.locator(".who")).to_contain_text(t(lang, "Hello, %(name)s", name=name))


def log_out(page: Page, lang: str) -> None:
    page.locator("form.logout button").click()
    expect(page.locator("main")).to_contain_text(
        t(lang, "You are logged out. Everything you did here has been wiped. Goodbye!"))
    expect(page.locator(".who")).to_have_count(0)


def log_in(page: Page, live: Live, lang: str, identifier: str, password: str = PASSWORD,
           then: str = "/courses/") -> None:
    page.goto(live.url(f"/{lang}/login"))
    page.locator("#identifier").fill(identifier)
    page.locator("#password").fill(password)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(f"**/{lang}{then}")


def fill_registration(page: Page, lang: str, first_name: str, email: str, postcode: str = "2000",
                      *, like_a_person: bool = False) -> None:
    """The form, found by its labels in `lang`; typed key by key when like_a_person."""

    def put(label: str, value: str) -> None:
        box = page.get_by_label(t(lang, label), exact=True)
        if like_a_person:
            box.click()
            box.press_sequentially(value)
        else:
            box.fill(value)

    put("First name", first_name)
    put("Last name", "Peeters")
    put("E-mail address", email)
    put("Day", "27")
    page.get_by_label(t(lang, "Month"), exact=True).select_option("3")
    put("Year", "1958")
    put("Postcode", postcode)
    page.get_by_label(t(lang, "Your library"), exact=True).select_option("ANT-PERMEKE")
    put("Phone number (optional)", "0470 12 34 56")
    put("Choose a password", PASSWORD)
    page.get_by_label(t(lang, "I have read the privacy statement and I agree."),
                      exact=True).check()


def submit_registration(page: Page, lang: str) -> None:
    page.get_by_role("button", name=t(lang, "Create my account")).click()


def register(page: Page, live: Live, lang: str, first_name: str, email: str) -> str:
    """Create an account through the form; answers the card number (digits only)."""
    page.goto(live.url(f"/{lang}/account/new"))
    fill_registration(page, lang, first_name, email)
    submit_registration(page, lang)
    page.wait_for_url(f"**/{lang}/account/created")
    return re.sub(r"\D", "", page.locator(".card-number").inner_text())


def enrol(page: Page, live: Live, lang: str, slug: str) -> None:
    page.goto(live.url(f"/{lang}/courses/{slug}/enrol"))
    page.get_by_role("button", name=t(lang, "Yes, enrol me")).click()
    page.wait_for_url(f"**/{lang}/courses/{slug}/done")


# --- a. The whole journey -------------------------------------------------------------------

QR_SIZES_JS = """svg => {
  const style = getComputedStyle(svg);
  const inner = svg.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return [svg.querySelector('g, path').getBoundingClientRect().width, inner];
}"""


@pytest.mark.parametrize("lang", LANGS)
def test_a_whole_journey(page: Page, live_server, lang: str) -> None:
    live = live_server()
    name = {"nl": "Griet", "fr": "Élise", "en": "Rose"}[lang]
    email = f"{name.lower().replace('é', 'e')}.{lang}@example.be"
    course = COURSES["spanish-beginners"]
    title = course["title"][lang]
    category = CATEGORIES[course["category"]]["name"][lang]

    # The start screen in the branch's language; the patron picks theirs.
    page.goto(live.url("/"))
    expect_lang(page, "nl")
    page.locator(f".lang-choice a[lang={lang}]").click()
    page.wait_for_url(f"**/{lang}/")
    expect_lang(page, lang)
    expect(page.locator("h1")).to_have_text(t(lang, "Free online courses with your library"))

    # Create an account, with one mistake first.
    page.get_by_role("link", name=contains(t(lang, "I do not have a library account yet"))).click()
    page.wait_for_url(f"**/{lang}/account/new")
    expect_lang(page, lang)
    fill_registration(page, lang, name, email, postcode="12", like_a_person=True)
    submit_registration(page, lang)
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect_lang(page, lang)
    postcode_error = t(lang, "A Belgian postcode has 4 digits, for example 2000.")
    expect(summary).to_contain_text(postcode_error)
    expect(summary).to_be_focused()  # read first by a screen reader
    expect(page.locator("#postcode-error")).to_have_text(contains(postcode_error))
    expect(page.locator("#postcode")).to_have_attribute("aria-invalid", "true")
    # What was typed is kept (except the password, never sent back to the browser).
    expect(page.locator("#first_name")).to_have_value(name)
    expect(page.locator("#email")).to_have_value(email)
    expect(page.locator("#postcode")).to_have_value("12")
    expect(page.locator("#birth_day")).to_have_value("27")
    expect(page.locator("#birth_month")).to_have_value("3")
    expect(page.locator("#birth_year")).to_have_value("1958")
    expect(page.locator("#library")).to_have_value("ANT-PERMEKE")
    expect(page.locator("#consent")).to_be_checked()
    expect(page.locator("#password")).to_have_value("")
    # The summary's link takes the patron to the field.
    summary.get_by_role("link", name=contains(postcode_error)).click()
    expect(page.locator("#postcode")).to_be_focused()
    page.locator("#postcode").fill("")
    page.keyboard.type("2000")
    page.get_by_label(t(lang, "Choose a password"), exact=True).press_sequentially(PASSWORD)
    submit_registration(page, lang)

    # The card number.
    page.wait_for_url(f"**/{lang}/account/created")
    expect_lang(page, lang)
    expect(page.locator("h1")).to_have_text(t(lang, "Your library account is ready"))
    card_text = page.locator(".card-number").inner_text()
    card = re.sub(r"\D", "", card_text)
    assert re.fullmatch(r"2101\d{9}", card), card_text  # ANT-PERMEKE's prefix
    header_greeting(page, lang, name)

    # The catalogue: a category, then the search box.
    page.get_by_role("link", name=t(lang, "Next: choose a course")).click()
    page.wait_for_url(f"**/{lang}/courses/")
    expect_lang(page, lang)
    page.locator(".chips").get_by_role("link", name=exact(category)).click()
    page.wait_for_url(re.compile(r"category=languages"))
    expect_lang(page, lang)
    expect(page.locator(".chips a[aria-current=true]")).to_have_text(exact(category))
    expect(page.locator("main section h2")).to_have_text([category])
    expect(page.locator(".course-card")).to_have_count(
        sum(c["category"] == "languages" for c in DEMO["courses"]))
    word = title.split()[0].lower()
    page.get_by_label(t(lang, "Search for a course"), exact=True).fill(word)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"[?&]q="))
    expect_lang(page, lang)
    assert "category=languages" in page.url  # the filter stays on
    expect(page.locator(".course-card")).to_have_count(1)
    expect(page.locator(".course-card strong")).to_have_text(title)

    # The course, enrolment, confirmation, the receipt.
    page.locator(".course-card a").click()
    page.wait_for_url(f"**/{lang}/courses/spanish-beginners")
    expect_lang(page, lang)
    expect(page.locator("h1")).to_have_text(title)
    page.get_by_role("link", name=t(lang, "Enrol in this course")).click()
    page.wait_for_url(f"**/{lang}/courses/spanish-beginners/enrol")
    expect_lang(page, lang)
    expect(page.locator("h1")).to_have_text(t(lang, "Confirm your choice"))
    expect(page.locator("main")).to_contain_text(t(
        lang, "There is a free seat for you. With one seat you can follow as many courses "
        "as you like."))
    page.get_by_role("button", name=t(lang, "Yes, enrol me")).click()
    page.wait_for_url(f"**/{lang}/courses/spanish-beginners/done")
    expect_lang(page, lang)
    expect(page.locator("h1")).to_have_text(t(lang, "You are enrolled"))
    expect(page.locator(".receipt")).to_contain_text(title)
    expect(page.locator(".qr > svg")).to_be_visible()  # inline, no image request
    assert page.locator(".qr img").count() == 0
    # The code scales with its box (checked at the end, so the rest of the journey runs).
    qr_drawn, qr_box = page.locator(".qr > svg").evaluate(QR_SIZES_JS)
    expect(page.locator(".steps-now")).to_have_text(
        t(lang, "Step %(step)s of %(total)s", step=4, total=4))
    expect(page.locator(".steps li").nth(3)).to_have_attribute("aria-current", "step")

    # My courses, log out.
    page.locator(".who").get_by_role("link", name=t(lang, "My courses")).click()
    page.wait_for_url(f"**/{lang}/my")
    expect_lang(page, lang)
    expect(page.locator("h1")).to_have_text(t(lang, "My courses"))
    expect(page.locator(".status-box.seated h2")).to_have_text(
        t(lang, "You have a seat in the programme"))
    expect(page.locator("main .course-list")).to_contain_text(title)
    log_out(page, lang)
    page.wait_for_url(f"**/{lang}/")
    expect_lang(page, lang)

    # Back in with the card, the way a barcode scanner types it: digits, then Enter.
    page.get_by_role("link", name=contains(t(lang, "I already have a library account"))).click()
    page.wait_for_url(f"**/{lang}/login")
    expect_lang(page, lang)
    expect(page.locator("#identifier")).to_be_focused()
    page.keyboard.type(card)
    page.keyboard.press("Enter")
    # The scan's Enter must lead to the password box, not count as a wrong password.
    expect(page.locator("#password"), "after a card scan (digits + Enter) the password box "
           "should have focus, with no 'not right' error").to_be_focused()
    expect(page.locator("main")).not_to_contain_text(t(
        lang, "The card number, e-mail address or password is not right."))
    expect(page.locator("#identifier")).to_have_value(re.compile(r"^[\d ]+$"))
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/{lang}/courses/")
    expect_lang(page, lang)
    header_greeting(page, lang, name)
    page.console.assert_clean()  # type: ignore[attr-defined]
    assert abs(qr_drawn - qr_box) <= 2, (
        f"the QR code is drawn {qr_drawn:.0f} px wide in a {qr_box:.0f} px box: the inline "
        "<svg> needs a viewBox to scale (segno svg_inline(..., omitsize=True))")


# --- b. Waiting list ------------------------------------------------------------------------

def test_b_waiting_list_gets_the_seat_someone_gives_up(page: Page, live_server) -> None:
    live = live_server()
    service = live.service
    service.set_cap(1, actor="test")
    _, a_token = add_patron(service, first_name="Anna", email="anna@example.be",
                            password=PASSWORD, language="nl")
    service.claim(a_token, "word-basics")
    service.logout(a_token)

    # B (in French) registers, enrols, and lands on the waiting list, first in line.
    card_b = register(page, live, "fr", "Bruno", "bruno@example.be")
    page.goto(live.url("/fr/courses/spanish-beginners"))
    expect(page.locator(".seats.full")).to_have_text(
        t("fr", "Full at the moment – you can join the waiting list."))
    page.get_by_role("link", name=t("fr", "Enrol in this course")).click()
    main = page.locator("main")
    expect(main).to_contain_text(t(
        "fr", "You will join the waiting list, at number %(position)s, and keep this course.",
        position=1))
    expect(main).to_contain_text(t("fr", "All seats are taken at the moment."))
    expect(main).to_contain_text(t(
        "fr", "When a seat is free, it goes to the first person in line straight away."))
    page.get_by_role("button", name=t("fr", "Yes, enrol me")).click()
    page.wait_for_url("**/fr/courses/spanish-beginners/done")
    expect(page.locator("h1")).to_have_text(t("fr", "You are on the waiting list"))
    expect(page.locator(".receipt .position")).to_have_text(
        t("fr", "Your place in line: %(position)s", position=1))
    log_out(page, "fr")

    # A (in Dutch) gives up the seat.
    log_in(page, live, "nl", "anna@example.be")
    header_greeting(page, "nl", "Anna")
    page.locator(".who").get_by_role("link", name=t("nl", "My courses")).click()
    expect(page.locator(".status-box.seated h2")).to_have_text(
        t("nl", "You have a seat in the programme"))
    page.get_by_role("link", name=t("nl", "Give up my seat")).click()
    page.wait_for_url("**/nl/my/give-up")
    expect(page.locator("h1")).to_have_text(t("nl", "Give up your seat?"))
    page.get_by_role("button", name=t("nl", "Yes, give up my seat")).click()
    page.wait_for_url(re.compile(r"/nl/my\?done=give-up$"))
    expect(page.locator(".notice")).to_contain_text(t(
        "nl", "You have given up your seat. Thank you: someone else can now take part."))
    expect(page.locator(".status-box")).to_have_count(0)
    log_out(page, "nl")

    # B logs in again: the seat is theirs.
    log_in(page, live, "fr", card_b)
    page.locator(".who").get_by_role("link", name=t("fr", "My courses")).click()
    page.wait_for_url("**/fr/my")
    expect(page.locator(".status-box.seated h2")).to_have_text(
        t("fr", "You have a seat in the programme"))
    expect(page.locator("main .course-list")).to_contain_text(
        COURSES["spanish-beginners"]["title"]["fr"])
    page.console.assert_clean()  # type: ignore[attr-defined]


# --- c. Idle timer --------------------------------------------------------------------------

def test_c_idle_warning_continue_escape_and_reset(page: Page, live_server) -> None:
    live = live_server(IDLE_WARNING_SECONDS=2, IDLE_COUNTDOWN_SECONDS=3, DEFAULT_LANGUAGE="nl")
    add_patron(live.service, first_name="Camille", email="camille@example.be",
               password=PASSWORD, language="fr")
    # Log in in French. With a 2 s timer the log-in page itself (no visit yet) resets after
    # 2 s without input, and a slow password check can outlast that: post the form from the
    # context (same cookies, real CSRF token) instead of racing the timer.
    form = page.request.get(live.url("/fr/login")).text()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    assert token, "no CSRF token on the log-in page"
    answer = page.request.post(live.url("/fr/login"), form={
        "csrf_token": token.group(1), "identifier": "camille@example.be", "password": PASSWORD})
    assert answer.ok and answer.url.endswith("/fr/courses/"), answer.url
    page.goto(live.url("/fr/courses/"))
    header_greeting(page, "fr", "Camille")

    dialog = page.locator("dialog#idle-dialog")
    number = dialog.locator("[data-countdown]")
    expect(dialog).to_be_visible(timeout=6_000)
    expect(dialog.locator("#idle-title")).to_have_text(t("fr", "Are you still there?"))
    expect(dialog.locator("#idle-text")).to_have_text(t(
        "fr", "For your privacy, this visit will close soon and everything you did here will "
        "be wiped."))
    continue_button = dialog.get_by_role("button", name=t("fr", "Yes, I am still here"))
    expect(continue_button).to_be_focused()
    shown = number.inner_text()
    assert shown in ("3", "2"), shown
    expect(number).not_to_have_text(shown, timeout=2_500)  # it counts down

    continue_button.click()
    expect(dialog).to_be_hidden()
    page.locator(".who").get_by_role("link", name=t("fr", "My courses")).click()
    page.wait_for_url("**/fr/my")
    expect(page.locator("h1")).to_have_text(t("fr", "My courses"))

    # Escape means "still here" too.
    expect(dialog).to_be_visible(timeout=6_000)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.url.endswith("/fr/my")
    header_greeting(page, "fr", "Camille")

    # No answer: back to the branch's language, the visit wiped.
    visit_cookies = page.context.cookies()
    expect(dialog).to_be_visible(timeout=6_000)
    page.wait_for_url(re.compile(r"/nl/$"), timeout=10_000)
    expect_lang(page, "nl")
    expect(page.locator(".who")).to_have_count(0)
    page.goto(live.url("/fr/my"))
    page.wait_for_url(re.compile(r"/fr/login\?next="))
    expect(page.locator("h1")).to_have_text(t("fr", "Log in"))
    # Wiped on the server too: the old cookie's registry session was revoked.
    page.context.clear_cookies()
    page.context.add_cookies(visit_cookies)  # type: ignore[arg-type]
    page.goto(live.url("/fr/my"))
    page.wait_for_url(re.compile(r"/fr/login"))
    expect(page.locator(".who")).to_have_count(0)
    page.console.assert_clean()  # type: ignore[attr-defined]


# --- d, e, f. Every page in every language --------------------------------------------------

TARGETS_JS = """(min) => {
  const out = [];
  const sel = 'a, button, input:not([type=hidden]), select, summary, textarea, label[for]';
  const tooSmall = (r) => r.width < min - 0.01 || r.height < min - 0.01;
  const shown = (el) => {
    if (!el.checkVisibility({checkVisibilityCSS: true})) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 || r.height > 0;
  };
  const describe = (el) => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += '#' + el.id;
    if (el.className && typeof el.className === 'string')
      d += '.' + el.className.trim().split(/\\s+/).join('.');
    if (el.getAttribute('href')) d += `[href="${el.getAttribute('href')}"]`;
    const text = (el.innerText || el.value || el.getAttribute('aria-label') || '')
      .replace(/\\s+/g, ' ').trim().slice(0, 50);
    return text ? `${d} "${text}"` : d;
  };
  for (const el of document.querySelectorAll(sel)) {
    if (el.matches('.skip-link') && document.activeElement !== el) continue;  // off-screen
    if (el.tagName === 'LABEL') {  // only a checkbox's label is its target
      const box = document.getElementById(el.htmlFor);
      if (!box || !box.matches('input[type=checkbox], input[type=radio]')) continue;
    }
    if (!shown(el)) continue;
    const r = el.getBoundingClientRect();
    if (!tooSmall(r)) continue;
    if (el.matches('input[type=checkbox], input[type=radio]')) {
      const labels = Array.from(el.labels || []).filter(shown);
      if (labels.some((l) => !tooSmall(l.getBoundingClientRect()))) continue;
    }
    out.push(`${describe(el)}: ${Math.round(r.width)}×${Math.round(r.height)}`);
  }
  return out;
}"""


@dataclass
class Walk:
    lang: str
    pages: list[str] = field(default_factory=list)
    axe: dict[str, str] = field(default_factory=dict)  # page → violations report
    targets: dict[str, list[str]] = field(default_factory=dict)  # page → offenders
    console: list[str] = field(default_factory=list)


class Walker:
    def __init__(self, page: Page, live: Live, lang: str) -> None:
        self.page, self.live, self.lang = page, live, lang
        self.console: Console = page.console  # type: ignore[attr-defined]
        self.notes = Walk(lang)

    def go(self, path: str, name: str) -> None:
        self.console.where = name
        self.page.goto(self.live.url(f"/{self.lang}{path}"))
        self.check(name)

    def check(self, name: str) -> None:
        page, lang = self.page, self.lang
        self.console.where = name
        page.wait_for_load_state()
        expect(page.locator("html")).to_have_attribute("lang", lang)
        self.notes.pages.append(name)
        # axe-core is put in every page by the context (see `walk`), like Axe().run would
        # but without sending half a megabyte of script over again on each page.
        results = AxeResults(page.evaluate(f"axe.run({json.dumps(AXE_OPTIONS)})"))
        if results.violations_count:
            self.notes.axe[name] = f"{page.url}\n{results.generate_report()}"
        offenders = page.evaluate(TARGETS_JS, MIN_TARGET)
        if offenders:
            self.notes.targets[name] = offenders

    def walk(self) -> Walk:
        page, lang, live = self.page, self.lang, self.live
        slug = "spanish-beginners"

        self.go("/", "start")
        self.go("/privacy", "privacy")
        response = page.goto(live.url(f"/{lang}/no-such-page"))
        assert response is not None and response.status == 404
        self.check("404")
        self.go("/account/new", "register")
        page.get_by_role("button", name=t(lang, "Create my account")).click()
        expect(page.locator(".error-summary")).to_be_visible()
        self.check("register with errors")
        self.go("/login", "log in")
        page.locator("#identifier").fill("nobody@example.be")
        page.locator("#password").fill("not the password")
        page.locator("main form button[type=submit]").click()
        expect(page.locator(".error-summary")).to_be_visible()
        self.check("log in failed")
        self.go("/courses/", "catalogue")
        self.go("/courses/?category=languages", "catalogue filtered")
        self.go("/courses/?q=xyzzy", "catalogue, search without result")
        self.go(f"/courses/{slug}", "course")

        # A patron with a seat.
        register(page, live, lang, "Wanda", f"wanda.{lang}@example.be")
        self.check("account created")
        self.go(f"/courses/{slug}/enrol", "confirm")
        page.get_by_role("button", name=t(lang, "Yes, enrol me")).click()
        page.wait_for_url(f"**/courses/{slug}/done")
        self.check("receipt, seated")
        self.go("/my", "my courses, seated")
        # E-mails about new courses (offered with mail on and a public address).
        live.service.notices.enabled = True
        live.service.alerts.link_base = live.url("")
        self.go("/my/new-courses", "new courses by e-mail")
        page.locator("input[name=categories][value=office]").check()
        page.get_by_role("button", name=t(lang, "Save my choice")).click()
        expect(page.locator(".error-summary")).to_be_visible()
        self.check("new courses by e-mail, no consent")
        stop_link = live.service.alerts.stop_url(1, lang).removeprefix(live.url(f"/{lang}"))
        self.go(stop_link, "stop the e-mails about new courses?")
        live.service.notices.enabled, live.service.alerts.link_base = False, ""
        self.go(f"/my/withdraw/{slug}", "stop a course?")
        self.go("/my/give-up", "give up the seat?")
        self.go("/my/data", "my data")
        self.go("/my/erase", "erase my account?")
        page.get_by_role("button", name=t(lang, "Yes, erase my account")).click()
        expect(page.locator(".error-summary")).to_be_visible()
        self.check("erase without password")

        # The programme is full: the next patron waits.
        live.service.set_cap(1, actor="test")
        page.locator("form.logout button").click()
        page.wait_for_url(f"**/{lang}/")
        add_patron(live.service, first_name="Walter", email=f"walter.{lang}@example.be",
                   password=PASSWORD, language=lang)
        log_in(page, live, lang, f"walter.{lang}@example.be")
        self.go(f"/courses/{slug}", "course, programme full")
        self.go(f"/courses/{slug}/enrol", "confirm, waiting list")
        page.get_by_role("button", name=t(lang, "Yes, enrol me")).click()
        page.wait_for_url(f"**/courses/{slug}/done")
        expect(page.locator(".receipt .position")).to_be_visible()
        self.check("receipt, waiting list")
        self.go("/my", "my courses, waiting")
        self.go("/my/leave", "leave the waiting list?")

        # "Are you still there?": let the browser's clock run past the warning.
        page.clock.install()
        self.console.where = "idle dialog"
        page.reload()
        page.clock.fast_forward((live.app.config["IDLE_WARNING_SECONDS"] + 2) * 1000)
        expect(page.locator("dialog#idle-dialog")).to_be_visible()
        self.check("idle dialog open")

        self.notes.console = self.console.take()
        return self.notes


@pytest.fixture(scope="module", params=LANGS)
def walk(request, browser: Browser, tmp_path_factory) -> Iterator[Walk]:
    """One browser context walks every page in one language, noting what d–f check."""
    lang = request.param
    servers = Servers()
    live = servers.start(tmp_path_factory.mktemp(f"walk-{lang}"))
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    context.add_init_script(Axe().axe_script)
    tab = context.new_page()
    tab.console = Console(tab)  # type: ignore[attr-defined]
    try:
        yield Walker(tab, live, lang).walk()
    finally:
        context.close()
        servers.close()


def test_d_axe_finds_no_violations(walk: Walk) -> None:
    assert len(walk.pages) == 29, walk.pages
    report = "\n\n".join(f"== {name} ==\n{text}" for name, text in walk.axe.items())
    assert not walk.axe, f"axe-core violations in {walk.lang}:\n{report}"


def test_e_targets_are_at_least_44_px(walk: Walk) -> None:
    report = "\n".join(f"{name}: {', '.join(items)}" for name, items in walk.targets.items())
    assert not walk.targets, f"targets under {MIN_TARGET}×{MIN_TARGET} px in {walk.lang}:\n{report}"


def test_f_no_csp_violation_or_script_error(walk: Walk) -> None:
    assert not walk.console, (
        f"on the {walk.lang} pages:\n" + "\n".join(walk.console))


# --- g. Back after log-out ------------------------------------------------------------------

def settled_content(page: Page) -> str:
    """The page's HTML once it has finished loading, riding out a redirect still under way."""
    for _ in range(50):
        try:
            page.wait_for_function("document.readyState === 'complete'")
            return page.content()
        except PlaywrightError as error:
            if "navigat" not in str(error) and "context was destroyed" not in str(error):
                raise
            page.wait_for_timeout(100)
    raise AssertionError(f"{page.url} kept navigating")


def test_g_back_button_after_log_out_shows_no_personal_data(browser: Browser,
                                                            live_server) -> None:
    live = live_server()
    name = "Philomena"
    add_patron(live.service, first_name=name, email="philomena@example.be", password=PASSWORD,
               language="en")
    # Playwright turns Chromium's back/forward cache off; the kiosk's browser has it on.
    kiosk_browser = browser.browser_type.launch(
        executable_path=CHROMIUM, args=LAUNCH_ARGS,
        ignore_default_args=["--disable-back-forward-cache"])
    try:
        context = kiosk_browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(10_000)
        page = context.new_page()
        console = Console(page)
        log_in(page, live, "en", "philomena@example.be")
        enrol(page, live, "en", "word-basics")
        page.locator(".who").get_by_role("link", name=t("en", "My courses")).click()
        page.wait_for_url("**/en/my")
        header_greeting(page, "en", name)
        expect(page.locator("main")).to_contain_text(COURSES["word-basics"]["title"]["en"])

        log_out(page, "en")
        assert name not in page.content()
        seen = []
        for _ in range(6):  # every page of the visit in the history
            before = page.url
            # A page restored from the back/forward cache fires no "load": wait for the commit.
            page.go_back(wait_until="commit")
            body = settled_content(page)
            if page.url == before:
                break  # the start of the history
            seen.append(page.url)
            assert name not in body, (
                f"{page.url} still shows the patron's name after log-out (history: {seen})")
            assert urlsplit(page.url).path != "/en/my", (
                "'My courses' came back from the browser's cache")
        assert seen, "the history had no page to go back to"
        console.assert_clean()
    finally:
        kiosk_browser.close()


# --- h. A double tap ------------------------------------------------------------------------


def test_h_two_quick_presses_on_create_my_account_make_one_account_and_show_its_card(
        page: Page, live_server) -> None:
    live = live_server()
    page.goto(live.url("/fr/account/new"))
    fill_registration(page, "fr", "Josette", "josette.double@example.be")
    # Two presses 0.1 s apart, as an impatient finger: the second would replace the first
    # navigation, whose answer (the new card number) would then never be shown.
    page.locator("#register-form").evaluate(
        "f => { f.requestSubmit(); setTimeout(() => f.requestSubmit(), 100); }")
    page.wait_for_url("**/fr/account/created")
    card = re.sub(r"\D", "", page.locator(".card-number").inner_text())
    with live.service.store.read() as s:
        made = s.execute(text("SELECT card_number FROM patrons WHERE email = :e"),
                         {"e": "josette.double@example.be"}).scalars().all()
    assert made == [card]


# --- i. Passwords tried on a kiosk left logged in -------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_i_five_wrong_passwords_under_my_data_lock_the_account_and_log_out(
        page: Page, live_server, lang: str) -> None:
    live = live_server()
    register(page, live, lang, "Marthe", f"marthe.{lang}@example.be")
    page.goto(live.url(f"/{lang}/my/data"))
    for attempt in range(5):
        page.get_by_label(t(lang, "E-mail address"), exact=True).fill("other@example.be")
        page.get_by_label(t(lang, "Your password"), exact=True).fill(f"a guess {attempt}")
        with page.expect_navigation():
            page.get_by_role("button", name=t(lang, "Save"), exact=True).click()
        if attempt < 4:
            expect(page.locator("#password-error")).to_have_text(
                t(lang, "This is not your current password."))
    page.wait_for_url(f"**/{lang}/login**")
    locked = t(lang, "Too many wrong passwords. For your safety this account is locked until "
                     "%(time)s. A librarian can help you.", time="\0")
    expect(page.locator("main")).to_contain_text(locked.split("\0")[0].strip())
    page.goto(live.url(f"/{lang}/my/data"))
    page.wait_for_url(f"**/{lang}/login**")  # logged out: My data is not shown again
