#!/usr/bin/env python
"""Start-up time and memory of the demo: `kiosk demo` as a patron-facing process.

Starts `kiosk demo --port <free port>` as a subprocess, as a librarian would, with its
registry database and secret key in a temporary folder (KIOSK_DATABASE_URL and
KIOSK_SECRET_KEY; nothing is written to the checkout's instance folder). Then:

1. "demo first page": the time from spawning the command until GET /nl/ answers 200
   (polled every 20 ms). Includes Python start-up, imports, seeding the registry, and
   waitress binding its port.
2. "RSS after N requests": sends 1,000 requests (a mix of every patron page in the three
   languages, as a patron who registered through the form, logged out and logged in again,
   CSRF on, with a cookie jar; plus some enrolments and the static files) one after the
   other, then reads VmRSS of the process from /proc/<pid>/status. VmHWM (the peak) is
   printed too.

Budgets (issue): first page <= 3 s after the command; RSS <= 100 MB after 1,000 requests.

    python benchmarks/memory.py [--strict] [--requests 1000] [--kiosk PATH]

Exits 0 after printing; with --strict, exits 1 when a budget is missed. Exits 2 when the
demo did not start or a page answered something unexpected. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

BUDGET_FIRST_PAGE_S = 3.0
BUDGET_RSS_MB = 100.0
POLL_S = 0.020
START_TIMEOUT_S = 60.0
PASSWORD = "benchmark-pass"
LANGS = ("nl", "fr", "en")
COURSES = ("spanish-beginners", "word-basics", "recognising-phishing", "mindfulness",
           "digital-photography", "video-calling", "ai-assistants", "excel-basics")
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"'
                     r'|value="([^"]+)"[^>]*name="csrf_token"')


class BenchError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kiosk_command() -> str:
    beside = Path(sys.executable).parent / "kiosk"
    if beside.exists():
        return str(beside)
    found = shutil.which("kiosk")
    if not found:
        raise BenchError("the `kiosk` command is not installed (pip install -e .)")
    return found


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in kB."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def mb(kb: int) -> float:
    return kb / 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # every request is counted: redirects are not followed behind our back


class Patron:
    """A browser-less patron: a cookie jar and a request counter."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )
        self.count = 0

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, body, Location) without following redirects."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body)
        self.count += 1
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, resp.read().decode("utf-8", "replace"), ""
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace")
            return err.code, text, err.headers.get("Location", "")

    def expect(self, path: str, status: int = 200, data: dict[str, str] | None = None,
               location: str | None = None) -> str:
        got, text, where = self.request(path, data)
        if got != status or (location is not None and not where.endswith(location)):
            raise BenchError(f"{'POST' if data is not None else 'GET'} {path} answered {got} "
                             f"{where}, expected {status} {location or ''}")
        return text

    def token(self, path: str) -> str:
        """The CSRF token of the form on `path` (GET; counted like any request)."""
        page = self.expect(path)
        match = CSRF_RE.search(page)
        if not match:
            raise BenchError(f"no csrf_token on {path}")
        return match.group(1) or match.group(2)


def patron_visit(patron: Patron, total: int, progress: callable) -> None:  # type: ignore[valid-type]
    """Register, log out, log in, then browse and enrol until `total` requests were sent."""
    email = "memory-bench@example.be"
    token = patron.token("/nl/account/new")
    patron.expect("/nl/account/new", 302, location="/nl/account/created", data={
        "csrf_token": token, "first_name": "Mia", "last_name": "Janssens", "email": email,
        "birth_day": "27", "birth_month": "3", "birth_year": "1958", "postcode": "2000",
        "library": "ANT-PERMEKE", "phone": "0470 12 34 56", "password": PASSWORD,
        "consent": "y",
    })
    patron.expect("/nl/account/created")
    token = patron.token("/nl/privacy")
    patron.expect("/nl/logout", 302, data={"csrf_token": token})
    token = patron.token("/nl/login")
    patron.expect("/nl/login", 302, location="/nl/courses/",
                  data={"csrf_token": token, "identifier": email, "password": PASSWORD})

    enrolled: list[str] = []
    to_enrol = iter(COURSES)
    plan = itertools.cycle([
        ("GET", "/{l}/"), ("GET", "/{l}/courses/"), ("GET", "/static/kiosk.css"),
        ("GET", "/static/kiosk.js"), ("GET", "/{l}/courses/?category=languages"),
        ("GET", "/{l}/courses/?q=spaans"), ("GET", "/{l}/courses/{c}"),
        ("GET", "/{l}/courses/{c}/enrol"), ("ENROL", ""), ("GET", "/{l}/courses/{e}/done"),
        ("GET", "/{l}/my"), ("GET", "/{l}/privacy"), ("GET", "/{l}/login"),
        ("GET", "/{l}/account/new"), ("GET", "/{l}/no-such-page"),
        ("GET", "/static/icons/book.svg"),
    ])
    langs = itertools.cycle(LANGS)
    courses = itertools.cycle(COURSES)
    lang, course = next(langs), next(courses)
    while patron.count < total:
        kind, pattern = next(plan)
        if pattern == "/{l}/":
            lang, course = next(langs), next(courses)
        if kind == "ENROL":
            slug = next(to_enrol, None)
            if slug is None or patron.count + 2 > total:
                continue
            token = patron.token(f"/{lang}/courses/{slug}/enrol")
            patron.expect(f"/{lang}/courses/{slug}/enrol", 302, data={"csrf_token": token},
                          location=f"/{lang}/courses/{slug}/done")
            enrolled.append(slug)
        else:
            if "{e}" in pattern and not enrolled:
                continue
            path = pattern.format(l=lang, c=course, e=enrolled[-1] if enrolled else "")
            patron.expect(path, 404 if "no-such-page" in path else 200)
        progress(patron.count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is missed")
    parser.add_argument("--requests", type=int, default=1000, help="requests to send")
    parser.add_argument("--kiosk", default=None, help="the kiosk command (default: the venv's)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        print("memory: needs Linux /proc", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="kiosk-memory-") as tmp:
        port = free_port()
        env = dict(os.environ)
        env["KIOSK_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'r.sqlite3'}"
        env["KIOSK_SECRET_KEY"] = "memory-benchmark"
        env.pop("KIOSK_SEED_DEMO", None)
        command = [args.kiosk or kiosk_command(), "demo", "--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        log = open(Path(tmp) / "demo.log", "w+")
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
        try:
            first_page = wait_first_page(proc, base + "/nl/", t0)
            after_start = proc_status(proc.pid)
            samples: list[tuple[int, int]] = [(1, after_start["VmRSS"])]
            patron = Patron(base)
            patron.count = 1  # the first page

            def progress(n: int) -> None:
                if n % 100 == 0 or n == args.requests:
                    samples.append((n, proc_status(proc.pid)["VmRSS"]))

            t1 = time.perf_counter()
            patron_visit(patron, args.requests, progress)
            elapsed = time.perf_counter() - t1
            final = proc_status(proc.pid)
        except BenchError as error:
            log.seek(0)
            print(f"memory: {error}\n--- demo output ---\n{log.read()[-4000:]}", file=sys.stderr)
            return 2
        finally:
            stop(proc)
            log.close()

    print(f"command: {' '.join(command)}  (pid {proc.pid}, exit {proc.returncode} after "
          f"SIGTERM)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load}")
    print(f"RSS after first page: {mb(after_start['VmRSS']):.1f} MB")
    print("RSS while serving (requests sent -> MB): " +
          ", ".join(f"{n}: {mb(kb):.1f}" for n, kb in samples))
    print(f"{patron.count} requests in {elapsed:.1f} s "
          f"({patron.count / elapsed:.0f}/s, one at a time)")
    print()
    ok_start = first_page <= BUDGET_FIRST_PAGE_S
    print(f"demo first page: {first_page:.2f} s from spawning `kiosk demo` to 200 on /nl/ "
          f"vs budget {BUDGET_FIRST_PAGE_S:.0f} s -> {'PASS' if ok_start else 'FAIL'}")
    rss = mb(final["VmRSS"])
    ok_rss = rss <= BUDGET_RSS_MB
    print(f"terminal RSS: {rss:.1f} MB after {patron.count} requests "
          f"(peak VmHWM {mb(final['VmHWM']):.1f} MB) vs budget {BUDGET_RSS_MB:.0f} MB -> "
          f"{'PASS' if ok_rss else 'FAIL'}")
    return 1 if (args.strict and not (ok_start and ok_rss)) else 0


def wait_first_page(proc: subprocess.Popen, url: str, t0: float) -> float:
    """Seconds from spawn until `url` answers 200; polls every 20 ms."""
    while True:
        if proc.poll() is not None:
            raise BenchError(f"`kiosk demo` exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.perf_counter() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.perf_counter() - t0 > START_TIMEOUT_S:
            raise BenchError(f"no 200 from {url} within {START_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def stop(proc: subprocess.Popen) -> None:
    """End the demo we started (only that process)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
