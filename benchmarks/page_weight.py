#!/usr/bin/env python
"""Page weight: what a real browser downloads for every patron page, in every language.

The app runs under waitress on 127.0.0.1 (a free port, in a thread) on a temporary instance
folder with the seeded demo registry, CSRF on, as in production. Chromium (Debian's, driven
by Playwright; never `playwright install`) walks the patron journey per language: it
registers through the form, logs out, logs in through the form, enrols through the
confirmation form, and opens every page once more with the browser cache disabled, so each
figure is what a terminal with a cold cache downloads for that page.

For each page it prints the number of requests, the response bytes (headers + bodies, as
received: waitress does not compress) and the requests that would have left the host. Any
request off 127.0.0.1:<port> is recorded and aborted, so nothing really leaves the machine.

Budgets (issue): every page <= 60 KB in total; 0 requests off the host.

    python benchmarks/page_weight.py [--strict] [--langs nl,fr,en] [--chromium PATH]

Exits 0 after printing; with --strict, exits 1 when a budget is missed. Exits 2 when the
journey itself could not be walked (a page answered something unexpected).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LANGS = ("nl", "fr", "en")
COURSE = "spanish-beginners"
PASSWORD = "benchmark-pass"
BUDGET_BYTES = 60 * 1024
BUDGET_OFF_HOST = 0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


class JourneyError(RuntimeError):
    """A page did not answer what the patron journey expects: the figures would be wrong."""


@dataclass
class Loaded:
    url: str
    resource: str
    status: int | None
    body: int
    headers: int
    off_host: bool

    @property
    def total(self) -> int:
        return self.body + self.headers


@dataclass
class PageResult:
    page: str
    lang: str
    path: str
    status: int | None
    loads: list[Loaded] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.loads)

    @property
    def total(self) -> int:
        return sum(x.total for x in self.loads if not x.off_host)

    @property
    def body(self) -> int:
        return sum(x.body for x in self.loads if not x.off_host)

    @property
    def off_host(self) -> int:
        return sum(1 for x in self.loads if x.off_host)

    def biggest(self) -> Loaded | None:
        on_host = [x for x in self.loads if not x.off_host]
        return max(on_host, key=lambda x: x.total) if on_host else None


# --------------------------------------------------------------------------- the server


def start_server(instance: Path) -> tuple[Any, int]:
    """The real app (CSRF on, seeded demo registry) under waitress, in a daemon thread."""
    from waitress import create_server

    from kiosk.app import create_app

    app = create_app(
        {
            "SECRET_KEY": "page-weight-benchmark",
            "DATABASE_URL": f"sqlite:///{instance / 'registry.sqlite3'}",
            "SEED_DEMO": True,
            "WTF_CSRF_ENABLED": True,
            "LIBRARY_CODE": "",
        },
        instance_path=str(instance),
    )
    # Chromium loads a page's files in parallel: "Task queue depth" warnings are noise here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    port = int(server.effective_port)
    threading.Thread(target=server.run, name="waitress", daemon=True).start()
    return server, port


# --------------------------------------------------------------------------- the browser


class Recorder:
    """Collects every request the page makes while `active`."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.active = False
        self.requests: list[Any] = []
        self.off_host_seen: list[str] = []

    def is_off_host(self, url: str) -> bool:
        return not (url == self.origin or url.startswith(self.origin + "/"))

    def on_request(self, request: Any) -> None:
        if self.active:
            self.requests.append(request)
        if self.is_off_host(request.url):
            self.off_host_seen.append(request.url)

    def start(self) -> None:
        self.requests = []
        self.active = True

    def stop(self) -> list[Any]:
        self.active = False
        return list(self.requests)


def _sizes(request: Any) -> tuple[int, int, int | None]:
    """(body bytes, header bytes, status) of a request's response, as received."""
    response = request.response()
    if response is None:
        return 0, 0, None
    try:
        sizes = request.sizes()
        body = max(int(sizes.get("responseBodySize", 0)), 0)
        headers = max(int(sizes.get("responseHeadersSize", 0)), 0)
    except Exception:  # noqa: BLE001 - sizes unavailable (e.g. a failed request)
        body, headers = 0, 0
    if body == 0 and not (300 <= response.status < 400):
        try:
            body = len(response.body())
        except Exception:  # noqa: BLE001 - no body kept for this response
            pass
    return body, headers, response.status


class Walker:
    def __init__(self, browser: Any, base: str, lang: str) -> None:
        self.base = base
        self.lang = lang
        locale = {"nl": "nl-BE", "fr": "fr-BE", "en": "en-GB"}[lang]
        self.context = browser.new_context(locale=locale)
        self.recorder = Recorder(base)
        # Anything off the host is recorded and aborted: nothing leaves the machine.
        self.context.route(lambda url: self.recorder.is_off_host(url), lambda route: route.abort())
        self.page = self.context.new_page()
        self.page.on("request", self.recorder.on_request)
        cdp = self.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})  # every page cold
        self.results: list[PageResult] = []

    def url(self, path: str) -> str:
        return f"{self.base}/{self.lang}{path}"

    def measure(self, name: str, path: str, expect_status: int = 200) -> PageResult:
        self.recorder.start()
        response = self.page.goto(self.url(path), wait_until="networkidle")
        requests = self.recorder.stop()
        status = response.status if response else None
        final = self.page.url
        if status != expect_status or not final.startswith(self.url(path.split("?")[0])):
            raise JourneyError(
                f"{name} ({self.lang}): GET {path} answered {status} at {final}, "
                f"expected {expect_status} at {self.url(path)}"
            )
        result = PageResult(name, self.lang, path, status)
        for request in requests:
            body, headers, st = _sizes(request)
            result.loads.append(
                Loaded(request.url, request.resource_type, st, body, headers,
                       self.recorder.is_off_host(request.url))
            )
        self.results.append(result)
        return result

    def submit(self, form_selector: str, expect_path: str) -> None:
        with self.page.expect_navigation(wait_until="networkidle"):
            self.page.locator(f"{form_selector} button[type=submit]").first.click()
        if not self.page.url.startswith(self.url(expect_path)):
            raise JourneyError(
                f"after submitting {form_selector} ({self.lang}) the browser is at "
                f"{self.page.url}, expected {self.url(expect_path)}"
            )

    def walk(self) -> list[PageResult]:
        page = self.page
        email = f"bench-{self.lang}@example.be"
        self.measure("start", "/")
        self.measure("register", "/account/new")
        page.fill("#first_name", "Mia")
        page.fill("#last_name", "Janssens")
        page.fill("#email", email)
        page.fill("#birth_day", "27")
        page.select_option("#birth_month", "3")
        page.fill("#birth_year", "1958")
        page.fill("#postcode", "2000")
        page.select_option("#library", "ANT-PERMEKE")
        page.fill("#phone", "0470 12 34 56")
        page.fill("#password", PASSWORD)
        page.check("#consent")
        self.submit("form:has(#first_name)", "/account/created")
        self.measure("account created", "/account/created")
        self.submit("form.logout", "/")
        self.measure("login", "/login")
        page.fill("#identifier", email)
        page.fill("#password", PASSWORD)
        self.submit("form:has(#identifier)", "/courses/")
        self.measure("catalogue", "/courses/")
        self.measure("course detail", f"/courses/{COURSE}")
        self.measure("confirm", f"/courses/{COURSE}/enrol")
        self.submit("main form.actions", f"/courses/{COURSE}/done")
        self.measure("receipt", f"/courses/{COURSE}/done")
        self.measure("my courses", "/my")
        self.measure("privacy", "/privacy")
        self.measure("404", "/no-such-page", expect_status=404)
        self.submit("form.logout", "/")
        self.context.close()
        return self.results


# --------------------------------------------------------------------------- the report


def kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def report(results: list[PageResult], stray: list[str], verbose: bool) -> bool:
    print(f"{'page':<16} {'lang':<4} {'status':>6} {'requests':>8} {'body':>10} "
          f"{'total':>10} {'off-host':>8}")
    for r in results:
        print(f"{r.page:<16} {r.lang:<4} {r.status!s:>6} {r.requests:>8} {kb(r.body):>10} "
              f"{kb(r.total):>10} {r.off_host:>8}")
        if verbose:
            for x in r.loads:
                print(f"    {x.resource:<10} {x.status!s:>4} {x.total:>7} B  {x.url}")
    print()
    print("'total' = response headers + bodies of every request the page made, cache disabled.")
    print()

    worst = max(results, key=lambda r: r.total)
    ok_weight = worst.total <= BUDGET_BYTES
    big = worst.biggest()
    biggest = f"; biggest: {urlsplit(big.url).path} {kb(big.total)}" if big else ""
    print(f"page weight: worst page {worst.page} ({worst.lang}) {kb(worst.total)} in "
          f"{worst.requests} requests vs budget {kb(BUDGET_BYTES)}{biggest} -> "
          f"{'PASS' if ok_weight else 'FAIL'}")
    over = [r for r in results if r.total > BUDGET_BYTES]
    for r in over:
        print(f"  over budget: {r.page} ({r.lang}) {kb(r.total)}")

    off = sum(r.off_host for r in results) + len(stray)
    worst_off = max(results, key=lambda r: r.off_host)
    ok_off = off <= BUDGET_OFF_HOST
    where = f"worst page {worst_off.page} ({worst_off.lang}) {worst_off.off_host}; " if off else ""
    print(f"off-host requests: {where}{off} in total over {len(results)} page loads vs budget "
          f"{BUDGET_OFF_HOST} -> {'PASS' if ok_off else 'FAIL'}")
    for url in sorted(set(u for r in results for u in (x.url for x in r.loads if x.off_host))
                      | set(stray)):
        print(f"  off host: {url}")
    return ok_weight and ok_off


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--langs", default=",".join(LANGS), help="comma-separated languages")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium executable")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every request")
    args = parser.parse_args(argv)
    langs = [x for x in args.langs.split(",") if x]

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="kiosk-page-weight-") as tmp:
        server, port = start_server(Path(tmp))
        base = f"http://127.0.0.1:{port}"
        results: list[PageResult] = []
        stray: list[str] = []
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                try:
                    for lang in langs:
                        walker = Walker(browser, base, lang)
                        results.extend(walker.walk())
                        # Off-host requests made outside a measured page (e.g. during a form
                        # submission) still count against the budget.
                        measured = {x.url for r in walker.results for x in r.loads}
                        stray.extend(u for u in walker.recorder.off_host_seen
                                     if u not in measured)
                finally:
                    browser.close()
        except JourneyError as error:
            print(f"page weight: could not walk the journey: {error}", file=sys.stderr)
            return 2
        finally:
            server.close()
        print(f"Chromium {args.chromium}, app at {base}, instance {tmp}\n")
        ok = report(results, stray, args.verbose)
    return 1 if (args.strict and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
