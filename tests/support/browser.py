"""A real browser for the tests: Debian's Chromium through Playwright (never `playwright
install`), the app served by waitress on a free port, and what the browser tests share (the
languages, the window, axe-core's options, the console watcher).

Playwright is imported only by the browser tests themselves: this module loads without it."""

from __future__ import annotations

import functools
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from babel.support import Translations
from flask import Flask

from kiosk.paths import resource_dir
from kiosk.registry.services import RegistryService

from .factories import IN_CI, build_app
from .live_server import serve

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]

LANGS = ("nl", "fr", "en")
VIEWPORT = {"width": 1280, "height": 1024}
AXE_OPTIONS = {
    "runOnly": {"type": "tag",
                "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
    "resultTypes": ["violations"],
}


@functools.cache
def _catalogue(lang: str) -> Translations:
    return Translations.load(str(resource_dir("translations")), [lang])


def t(lang: str, msgid: str, **params: object) -> str:
    """What the app shows for `msgid` in `lang` (the same catalogue the app loads): words in
    the patron's language, straight from the catalogues."""
    text = _catalogue(lang).gettext(msgid)
    return text % params if params else text


def require_browser() -> None:
    """Where the real-browser tests cannot run: a failure in CI (it must run them all), a
    skip saying why elsewhere. At a module's top, before Playwright is imported, or in a
    fixture."""
    reason = browser_missing()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def browser_missing() -> str | None:
    """None when the real-browser tests can run here, else the reason."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright is not installed ({exc}): pip install playwright"
    if not Path(CHROMIUM).exists():
        return "Chromium not installed: apt-get install chromium"
    return None


@dataclass
class Live:
    app: Flask
    base: str

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def service(self) -> RegistryService:
        return self.app.extensions["registry_service"]


class Servers:
    """Apps served by waitress on free ports until `close` (see `live_server.serve`, which
    stops each event loop in its own thread)."""

    def __init__(self) -> None:
        self.running = ExitStack()

    def start(self, folder: Path, **overrides: object) -> Live:
        app = build_app(folder, WTF_CSRF_ENABLED=True, **overrides)
        return Live(app, self.running.enter_context(serve(app, threads=4)))

    def close(self) -> None:
        self.running.close()


class Console:
    """Every CSP violation, script error and failed sub-resource, with the page it was on."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.where = ""
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self._add(f"uncaught script error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _add(self, text: str) -> None:
        self.problems.append(f"[{self.where or self.page.url}] {text}")

    def _console(self, msg) -> None:  # type: ignore[no-untyped-def]
        text = msg.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self._add(f"CSP: {text}")
        elif msg.type == "error" and not text.startswith("Failed to load resource"):
            self._add(f"console error: {text}")  # failed loads: see _response

    def _failed(self, request) -> None:  # type: ignore[no-untyped-def]
        if request.failure != "net::ERR_ABORTED":  # cut short by a navigation: normal
            self._add(f"request failed: {request.url} ({request.failure})")

    def _response(self, response) -> None:  # type: ignore[no-untyped-def]
        # The page itself may be a 404 on purpose; what it loads may not.
        if response.status >= 400 and response.request.resource_type != "document":
            self._add(f"{response.status} for {response.url}")

    def take(self) -> list[str]:
        out, self.problems = self.problems, []
        return out

    def assert_clean(self) -> None:
        problems = self.take()
        assert not problems, "script errors or CSP violations:\n" + "\n".join(problems)
