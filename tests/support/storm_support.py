"""Helpers for the storm tests and the registry load benchmark (PostgreSQL + gunicorn).

* databases: make and drop `kiosk_storm_*` databases, migrate and seed one with a chosen cap,
  issue terminal tokens;
* patrons in bulk: N patrons straight into the database with ONE precomputed argon2 hash,
  each with a live session whose token is known (only its sha256 is stored, as the service
  does), so a storm needs no log-in (argon2 on purpose costs ~50 ms of CPU per log-in);
* a gunicorn registry (`tests.support.storm_app:app()`) in its own process group on a free port:
  start, wait for /readyz, stop, or kill -9 (master and workers);
* a load driver: `multiprocessing` (spawn) processes × threads, each thread with its own
  keep-alive `http.client.HTTPConnection`, all released together by a barrier; retries a
  keyed write with the SAME Idempotency-Key when the policy says so;
* the invariants of the seat table, read with plain SQL.

Kept light at import time: the spawned load processes import this module and need only the
standard library.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import itertools
import json
import multiprocessing
import os
import queue
import random
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
USER_AGENT = "kiosk-storm/1"
CONNECTION_ERROR = -1  # the status recorded for an attempt that got no HTTP answer
TIMEOUT = 180  # seconds a client waits for an answer (a slow, shared machine queues long)
_names = itertools.count(1)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --- Databases ---------------------------------------------------------------------------


def create_storm_database(admin_url: str, label: str = "") -> str:
    """A fresh database `kiosk_storm_<pid>_<n>[_label]`; answers its URL."""
    import psycopg

    name = f"kiosk_storm_{os.getpid()}_{next(_names)}" + (f"_{label}" if label else "")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_storm_database(admin_url: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    assert name.startswith("kiosk_storm_"), name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Registry:
    url: str
    terminal_tokens: list[str]
    courses: list[str]


def prepare_registry(url: str, cap: int, terminals: int = 4) -> Registry:
    """Migrate, seed the demo data with `cap`, and issue `terminals` terminal tokens."""
    from kiosk.registry import schema
    from kiosk.registry.seed import load_demo_data, seed
    from kiosk.registry.services import RegistryService
    from kiosk.registry.store import Store, make_engine

    store = Store(make_engine(url))
    try:
        schema.upgrade(store.engine)
        data = load_demo_data()
        seed(store, data, utcnow().date(), cap=cap)
        service = RegistryService(store)
        tokens = [service.add_terminal("ANT-PERMEKE", f"Storm terminal {i + 1}", "storm")[0]
                  for i in range(terminals)]
    finally:
        store.engine.dispose()
    return Registry(url, tokens, [c["slug"] for c in data["courses"]])


@cache
def _password_hash() -> str:
    from kiosk.registry.passwords import PASSWORDS

    return PASSWORDS.hash("storm-password")  # once: argon2id is slow on purpose


def token_hash(token: str) -> str:
    """What the registry stores for a session token (services._token_hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class StormPatron:
    id: int
    token: str


def bulk_patrons(url: str, n: int) -> list[StormPatron]:
    """N patrons, each with a fresh session, by COPY; answers them in creation order."""
    import psycopg

    from kiosk.registry.domain import make_card_number

    hashed = _password_hash()
    now = utcnow()
    with psycopg.connect(url) as conn:
        library_id = conn.execute(
            "SELECT id FROM libraries WHERE code = 'ANT-PERMEKE'").fetchone()[0]
        base = conn.execute("SELECT coalesce(max(id), 0) FROM patrons").fetchone()[0]
        with conn.cursor().copy(
            "COPY patrons (card_number, email, first_name, last_name, birth_date, postcode,"
            " phone, library_id, language, password_hash, created_at, failed_logins)"
            " FROM STDIN"
        ) as copy:
            for i in range(n):
                serial = base + 1 + i
                copy.write_row((make_card_number("2101", serial), f"storm{serial}@example.be",
                                "Storm", f"Patron{serial}", date(1955, 3, 27), "2000", "",
                                library_id, "nl", hashed, now, 0))
        ids = dict(conn.execute(
            "SELECT email, id FROM patrons WHERE id > %s", (base,)).fetchall())
        patrons = [StormPatron(ids[f"storm{base + 1 + i}@example.be"],
                               f"storm-{base + 1 + i}-{secrets.token_urlsafe(16)}")
                   for i in range(n)]
        with conn.cursor().copy(
            "COPY patron_sessions (token_hash, patron_id, created_at, last_seen_at) FROM STDIN"
        ) as copy:
            for p in patrons:
                copy.write_row((token_hash(p.token), p.id, now, now))
    return patrons


def bulk_places(url: str, seated: Sequence[int], waiting: Sequence[int], course: str) -> None:
    """Seat `seated` and queue `waiting` (in that order) straight in the database, each with
    one course, and set the programme's counters to match (the cap is not changed)."""
    import psycopg

    now = utcnow()
    with psycopg.connect(url) as conn:
        course_id = conn.execute("SELECT id FROM courses WHERE slug = %s", (course,)).fetchone()[0]
        first_no = conn.execute("SELECT next_queue_no FROM programme").fetchone()[0]
        with conn.cursor().copy("COPY places (patron_id, status, queue_no, requested_at, "
                                "seated_at) FROM STDIN") as copy:
            for pid in seated:
                copy.write_row((pid, "seated", None, now, now))
            for i, pid in enumerate(waiting):
                copy.write_row((pid, "waiting", first_no + i, now, None))
        with conn.cursor().copy(
                "COPY enrolments (patron_id, course_id, created_at) FROM STDIN") as copy:
            for pid in itertools.chain(seated, waiting):
                copy.write_row((pid, course_id, now))
        conn.execute("UPDATE programme SET seats_taken = seats_taken + %s, "
                     "next_queue_no = next_queue_no + %s, waiting = waiting + %s",
                     (len(seated), len(waiting), len(waiting)))


def vacuum_analyze(url: str) -> None:
    """What autovacuum would have done by the time a table is this big."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def refresh_sessions(url: str) -> None:
    """Mark every session as just seen (a long benchmark must not hit the idle limit)."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("UPDATE patron_sessions SET created_at = %s, last_seen_at = %s",
                     (utcnow(), utcnow()))


# --- The server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a server started in its own process group (master and workers), SIGKILL
    if it has not ended within 20 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def _no_control_socket() -> list[str]:
    """gunicorn ≥ 24 opens a control socket in ~/.gunicorn by default: one per server would
    clash, and the tests need none."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(
        s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []


class RegistryServer:
    """gunicorn (gthread) serving tests.support.storm_app in its own process group."""

    def __init__(self, database_url: str, *, workers: int = 2, threads: int = 8,
                 port: int | None = None, guard: bool = True, mail: bool = False,
                 isolation: str = "READ COMMITTED", race_pause: float = 0.0,
                 stale_after: float | None = None):
        self.database_url = database_url
        self.workers = workers
        self.threads = threads
        self.port = port or free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
        self.folder = Path(tempfile.mkdtemp(prefix="kiosk-storm-"))
        self.env.update({
            "KIOSK_STORM_DATABASE_URL": database_url,
            "KIOSK_STORM_GUARD": "1" if guard else "0",
            "KIOSK_STORM_MAIL": "1" if mail else "0",
            "KIOSK_STORM_ISOLATION": isolation,
            "KIOSK_STORM_RACE_PAUSE": str(race_pause),
            "KIOSK_STORM_INSTANCE": str(self.folder),
        })
        if stale_after is not None:
            self.env["KIOSK_STORM_STALE_AFTER"] = str(stale_after)
        self.log = self.folder / "gunicorn.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> RegistryServer:
        cmd = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
               "--workers", str(self.workers), "--threads", str(self.threads),
               "--bind", f"127.0.0.1:{self.port}", "--keep-alive", "75", "--timeout", "60",
               "--graceful-timeout", "5", "--backlog", "2048", *_no_control_socket(),
               "tests.support.storm_app:app()"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return self
            except OSError:
                pass  # not listening yet, or reset while its workers start
            finally:
                conn.close()
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not become ready:\n" + self.log_tail())

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def kill9(self) -> None:
        """SIGKILL to the whole process group: master and workers die at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
        self.proc = None

    def close(self) -> None:
        """Stop, and remove the folder with the server's log (its end is shown on stderr
        when the app logged errors, or when gunicorn had stopped on its own)."""
        ended = self.proc.poll() if self.proc is not None else None
        self.stop()
        if ended is not None:
            print(f"\n[gunicorn] stopped on its own (exit code {ended}); the log ends:\n"
                  f"{self.log_tail(30)}", file=sys.stderr)
        elif self.errors_logged():
            print(f"\n[gunicorn] {self.errors_logged()} error(s) logged by the app; the log "
                  f"ends:\n{self.log_tail(30)}", file=sys.stderr)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def errors_logged(self) -> int:
        """Tracebacks the app logged ("unhandled API error" → a 500)."""
        try:
            return self.log.read_text(errors="replace").count("unhandled API error")
        except OSError:
            return 0

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- The load driver -----------------------------------------------------------------------

# A job: (method, path, patron token, Idempotency-Key or "", JSON body or b"")
Job = tuple[str, str, str, str, bytes]


def call(base_url: str, job: Job, terminal: str, timeout: float = 10) -> tuple[int, bytes]:
    """One request, one attempt: its status and body."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                      timeout=timeout)
    try:
        status, body, _ = _attempt(conn, job, terminal)
        return status, body
    finally:
        conn.close()


def claim_job(token: str, course: str) -> Job:
    return ("POST", "/api/v1/me/claims", token, uuid.uuid4().hex,
            json.dumps({"course": course}).encode())


def release_job(token: str) -> Job:
    return ("DELETE", "/api/v1/me/seat", token, uuid.uuid4().hex, b"")


def status_job(token: str) -> Job:
    return ("GET", "/api/v1/me/status", token, "", b"")


@dataclass(frozen=True)
class Policy:
    """When an attempt is repeated (always with the same Idempotency-Key)."""

    retry_connection_errors: bool = False
    retry_busy: bool = False  # 503, and 409 idempotency_in_progress
    retry_server_errors: bool = False  # 500
    pause: float = 0.2  # seconds between attempts
    give_up_after: float = 120.0  # seconds per job


@dataclass
class Outcome:
    """One job: the first attempt's status, the final answer, and how it went."""

    index: int
    first_status: int
    status: int
    body: str
    attempts: int
    statuses: list[int]  # every attempt's status (CONNECTION_ERROR for none)
    replayed: bool
    started: float  # time.monotonic() (system-wide on Linux)
    ended: float
    latency: float  # of the final attempt

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Load:
    outcomes: list[Outcome]
    began: float
    ended: float
    processes: int
    threads: int
    client_cpu: float = 0.0  # CPU seconds of the load processes (start-up included)

    @property
    def seconds(self) -> float:
        return self.ended - self.began

    @property
    def rate(self) -> float:
        return len(self.outcomes) / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float, outcomes: Sequence[Outcome] | None = None) -> float:
        """Nearest-rank percentile of the final attempts' latency, in ms."""
        values = sorted(o.latency for o in (outcomes if outcomes is not None else self.outcomes))
        if not values:
            return 0.0
        rank = max(1, min(len(values), int(-(-q * len(values) // 100))))
        return values[rank - 1] * 1000

    def first_statuses(self) -> Counter[int]:
        return Counter(o.first_status for o in self.outcomes)

    def all_statuses(self) -> Counter[int]:
        return Counter(s for o in self.outcomes for s in o.statuses)

    def summary(self) -> str:
        return (f"{len(self.outcomes)} requests in {self.seconds:.1f} s = {self.rate:.0f}/s "
                f"({self.processes} processes x {self.threads} threads); latency ms "
                f"p50 {self.percentile(50):.1f} p95 {self.percentile(95):.1f} "
                f"p99 {self.percentile(99):.1f} max {self.percentile(100):.1f}; "
                f"first attempts {dict(self.first_statuses())}; "
                f"retried jobs {sum(o.attempts > 1 for o in self.outcomes)}")


def _is_in_progress(status: int, body: bytes) -> bool:
    return status == 409 and b"idempotency_in_progress" in body


def _attempt(conn: http.client.HTTPConnection, job: Job, terminal: str
             ) -> tuple[int, bytes, bool]:
    method, path, token, key, body = job
    headers = {"Authorization": f"Bearer {terminal}", "User-Agent": USER_AGENT,
               "Accept": "application/json"}
    if token:
        headers["X-Patron-Session"] = token
    if key:
        headers["Idempotency-Key"] = key
    if body:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body or None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, response.getheader("Idempotent-Replayed") == "true"


def _run_job(conn_box: list[http.client.HTTPConnection], host: str, port: int, index: int,
             job: Job, terminal: str, policy: Policy) -> Outcome:
    started = time.monotonic()
    statuses: list[int] = []
    while True:
        t0 = time.monotonic()
        try:
            status, data, replayed = _attempt(conn_box[0], job, terminal)
        except (OSError, http.client.HTTPException):
            conn_box[0].close()
            conn_box[0] = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
            statuses.append(CONNECTION_ERROR)
            status, data, replayed = CONNECTION_ERROR, b"", False
            retry = policy.retry_connection_errors
        else:
            statuses.append(status)
            retry = ((policy.retry_busy and (status == 503 or _is_in_progress(status, data)))
                     or (policy.retry_server_errors and status == 500))
        t1 = time.monotonic()
        if not retry or t1 - started > policy.give_up_after:
            return Outcome(index, statuses[0], status, data.decode(errors="replace"),
                           len(statuses), statuses, replayed, started, t1, t1 - t0)
        time.sleep(policy.pause * (0.5 + random.random()))


def _process_main(host: str, port: int, terminal: str, jobs: list[tuple[int, Job]],
                  threads: int, policy: Policy, barrier: Any, results: Any) -> None:
    """One load process: `threads` threads with a keep-alive connection each."""
    lock = threading.Lock()
    position = iter(jobs)
    outcomes: list[Outcome] = []
    go = threading.Event()
    connected = threading.Barrier(threads + 1)

    def worker() -> None:
        box = [http.client.HTTPConnection(host, port, timeout=TIMEOUT)]
        try:
            box[0].connect()
        except OSError:
            pass  # the first attempt reconnects (and counts the error)
        connected.wait()
        go.wait()
        while True:
            with lock:
                item = next(position, None)
            if item is None:
                break
            outcomes.append(_run_job(box, host, port, item[0], item[1], terminal, policy))
        box[0].close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    connected.wait()
    barrier.wait()  # every process connected: start together
    go.set()
    for t in pool:
        t.join()
    cpu = os.times()
    results.put((outcomes, cpu.user + cpu.system))


def drive(base_url: str, jobs: Sequence[Job], terminal_tokens: Sequence[str], *,
          processes: int = 4, threads: int = 50, policy: Policy = Policy(),
          during: Callable[[], None] | None = None, timeout: float = 900) -> Load:
    """Run `jobs` (in that order, spread round-robin over the processes) against the server;
    `during()` runs in this process once the load has started (to inject faults)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    numbered = list(enumerate(jobs))
    procs = [
        ctx.Process(target=_process_main, daemon=True,
                    args=(host, port, terminal_tokens[p % len(terminal_tokens)],
                          numbered[p::processes], threads, policy, barrier, results))
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        barrier.wait(timeout=180)
        began = time.monotonic()
        if during is not None:
            during()
        outcomes: list[Outcome] = []
        client_cpu = 0.0
        for _ in procs:
            try:
                part, cpu = results.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"the load did not end within {timeout:.0f} s") from None
            outcomes.extend(part)
            client_cpu += cpu
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    outcomes.sort(key=lambda o: o.index)
    assert [o.index for o in outcomes] == list(range(len(jobs))), "lost outcomes"
    return Load(outcomes, began, max((o.ended for o in outcomes), default=began),
                processes, threads, client_cpu)


def drive_light(base_url: str, jobs: Sequence[Job], terminal_tokens: Sequence[str], *,
                connections: int = 50, timeout: float = 900) -> Load:
    """Run `jobs` once each (no retries), in order, over `connections` keep-alive connections
    from this one process: asyncio and requests written as bytes, answers read by their
    Content-Length. The load tool of the benchmark. `drive`'s threads of `http.client` cost
    about 1 ms of CPU a request, taken from the same two cores the server runs on; this
    costs a tenth of that, as a load tool written in C would (wrk, h2load)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [_request_bytes(job, parts.netloc, terminal_tokens[i % len(terminal_tokens)])
                for i, job in enumerate(jobs)]
    cpu = os.times()
    # In a thread of its own: the caller's may run an event loop already (Playwright's).
    with ThreadPoolExecutor(1) as thread:
        outcomes, began = thread.submit(asyncio.run, asyncio.wait_for(
            _light_load(host, port, requests, connections), timeout)).result()
    spent = os.times()
    outcomes.sort(key=lambda o: o.index)
    assert [o.index for o in outcomes] == list(range(len(jobs))), "lost outcomes"
    return Load(outcomes, began, max((o.ended for o in outcomes), default=began), 1,
                connections, spent.user + spent.system - cpu.user - cpu.system)


def _request_bytes(job: Job, netloc: str, terminal: str) -> bytes:
    method, path, token, key, body = job
    head = [f"{method} {path} HTTP/1.1", f"Host: {netloc}",
            f"Authorization: Bearer {terminal}", f"User-Agent: {USER_AGENT}",
            "Accept: application/json"]
    if token:
        head.append(f"X-Patron-Session: {token}")
    if key:
        head.append(f"Idempotency-Key: {key}")
    if body:
        head.append("Content-Type: application/json")
    if body or method not in ("GET", "HEAD"):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _light_load(host: str, port: int, requests: list[bytes],
                      connections: int) -> tuple[list[Outcome], float]:
    opened = [await asyncio.open_connection(host, port) for _ in range(connections)]
    position = iter(enumerate(requests))
    outcomes: list[Outcome] = []

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for index, request in position:
            t0 = time.monotonic()
            try:
                writer.write(request)
                status, body, replayed, closing = await _read_answer(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status, body, replayed, closing = CONNECTION_ERROR, b"", False, True
            t1 = time.monotonic()
            if closing:  # the server ends the connection (or lost it): the next job opens one
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
            outcomes.append(Outcome(index, status, status, body.decode(errors="replace"), 1,
                                    [status], replayed, t0, t1, t1 - t0))
        writer.close()

    began = time.monotonic()
    await asyncio.gather(*(client(r, w) for r, w in opened))
    return outcomes, began


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool, bool]:
    """Status, body, whether replayed, whether the server closes the connection."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status_line, _, fields = head.partition("\r\n")
    length, replayed, closing = None, False, status_line.startswith("http/1.0")
    for field_line in fields.split("\r\n"):
        name, _, value = field_line.partition(":")
        if name == "content-length":
            length = int(value)
        elif name == "idempotent-replayed":
            replayed = value.strip() == "true"
        elif name == "connection":
            closing = value.strip() == "close"
    if length is None:
        raise ValueError("an answer without Content-Length")
    return int(status_line.split(" ", 2)[1]), await reader.readexactly(length), replayed, closing


def send_and_drop(base_url: str, job: Job, terminal: str, reset: bool = False) -> None:
    """Send a whole request and close at once without reading the answer (`reset`: with an
    RST instead of a FIN, as a terminal that lost power might)."""
    method, path, token, key, body = job
    parts = urlsplit(base_url)
    head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}",
            f"Authorization: Bearer {terminal}", f"User-Agent: {USER_AGENT}",
            f"X-Patron-Session: {token}", f"Idempotency-Key: {key}",
            "Content-Type: application/json", f"Content-Length: {len(body)}",
            "Connection: close"]
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# --- What the database says ----------------------------------------------------------------


@dataclass
class Seats:
    cap: int
    seats_taken: int
    over_cap: int
    next_queue_no: int
    waiting_count: int  # the counter on the programme row
    seated: dict[int, datetime | None]  # patron id → seated_at
    waiting: dict[int, int]  # patron id → queue_no
    requested_at: dict[int, datetime]
    enrolments: Counter[int]  # patron id → number of enrolments
    running_keys: int  # idempotency records left "running"
    extra: dict[str, Any] = field(default_factory=dict)

    def queue(self) -> list[int]:
        """Waiting patron ids in queue order."""
        return sorted(self.waiting, key=self.waiting.__getitem__)

    def position(self, patron_id: int) -> int | None:
        if patron_id not in self.waiting:
            return None
        return self._ranks()[patron_id]

    def _ranks(self) -> dict[int, int]:
        if "ranks" not in self.extra:
            self.extra["ranks"] = {pid: i + 1 for i, pid in enumerate(self.queue())}
        return self.extra["ranks"]

    def problems(self) -> list[str]:
        """The seat promises that hold whatever happened: empty when all hold."""
        out = []
        if len(self.seated) > self.cap + self.over_cap:
            out.append(f"oversold: {len(self.seated)} seated, cap {self.cap}")
        if self.seats_taken != len(self.seated):
            out.append(f"seats_taken {self.seats_taken} != {len(self.seated)} seated rows")
        if self.waiting and self.seats_taken < self.cap:
            out.append(f"{self.cap - self.seats_taken} seat(s) idle while "
                       f"{len(self.waiting)} wait")
        both = set(self.seated) & set(self.waiting)
        if both:
            out.append(f"{len(both)} patron(s) both seated and waiting")
        if self.waiting_count != len(self.waiting):
            out.append(f"waiting counter {self.waiting_count} != {len(self.waiting)} rows")
        if self.waiting and max(self.waiting.values()) >= self.next_queue_no:
            out.append("a queue number at or past next_queue_no")
        if len(set(self.waiting.values())) != len(self.waiting):
            out.append("two waiting patrons share a queue number")
        placed = set(self.seated) | set(self.waiting)
        orphans = [p for p in self.enrolments if p not in placed]
        if orphans:
            out.append(f"{len(orphans)} patron(s) with courses but no place")
        without = [p for p in placed if not self.enrolments.get(p)]
        if without:
            out.append(f"{len(without)} placed patron(s) without a course")
        if self.running_keys:
            out.append(f"{self.running_keys} idempotency key(s) left running")
        return out

    def summary(self) -> str:
        return (f"cap {self.cap}, seats_taken {self.seats_taken}, seated rows "
                f"{len(self.seated)}, waiting {len(self.waiting)}, next_queue_no "
                f"{self.next_queue_no}, enrolments {sum(self.enrolments.values())}")


def read_seats(url: str) -> Seats:
    import psycopg

    with psycopg.connect(url) as conn:
        cap, taken, over, next_no, counted = conn.execute(
            "SELECT cap, seats_taken, over_cap, next_queue_no, waiting FROM programme").fetchone()
        seated: dict[int, datetime | None] = {}
        waiting: dict[int, int] = {}
        requested: dict[int, datetime] = {}
        for pid, status, queue_no, req, seated_at in conn.execute(
                "SELECT patron_id, status, queue_no, requested_at, seated_at FROM places"):
            requested[pid] = req
            if status == "seated":
                seated[pid] = seated_at
            else:
                waiting[pid] = queue_no
        enrolments = Counter(dict(conn.execute(
            "SELECT patron_id, count(*) FROM enrolments GROUP BY patron_id").fetchall()))
        running = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE state = 'running'").fetchone()[0]
    return Seats(cap, taken, over, next_no, counted, seated, waiting, requested, enrolments,
                 running)


def terminate_backends(admin_url: str, url: str) -> int:
    """pg_terminate_backend every connection to the registry's database and wait until those
    backends are gone; answers how many there were."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        pids = [pid for (pid, ok) in conn.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)) if ok]
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                (pids,)).fetchone()[0]:
            time.sleep(0.02)
    return len(pids)


def count_places(url: str) -> int:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute("SELECT count(*) FROM places").fetchone()[0]


def wait_for_places(url: str, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = count_places(url)
        if n >= at_least or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def wait_until_settled(url: str, quiet: float = 1.5, timeout: float = 60) -> int:
    """Wait until no keyed request is running and none has started for `quiet` seconds;
    answers the number of idempotency records."""
    import psycopg

    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            total, running = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE state = 'running') "
                "FROM idempotency_keys").fetchone()
        if total != last or running:
            last, since = total, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return total
        time.sleep(0.1)
    raise TimeoutError("the server kept working on keyed requests")


def requested_at_inversion(seats: Seats) -> tuple[int, float]:
    """Waiting patrons whose requested_at is earlier than that of someone queued ahead of
    them: (how many, the largest such gap in seconds)."""
    latest = None
    count, worst = 0, 0.0
    for pid in seats.queue():
        at = seats.requested_at[pid]
        if latest is not None and at < latest:
            count += 1
            worst = max(worst, (latest - at).total_seconds())
        latest = at if latest is None or at > latest else latest
    return count, worst
