"""The HTTP registry client against a real HTTP server on loopback that misbehaves on cue.

The server is a raw socket server in a thread: each test scripts what it answers (or does
not), and the server records every request it saw, with its Idempotency-Key.
"""

from __future__ import annotations

import gc
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from kiosk import __version__
from kiosk.registry import http_client
from kiosk.registry.domain import ClaimResult, PatronView, RegistryError, Standing
from kiosk.registry.http_client import HttpRegistryClient

pytestmark = pytest.mark.slow  # waits out deadlines by design

DEADLINE = 2.0
MARGIN = 1.5  # generous: this checks a behaviour, it is not a speed benchmark

SEATED = {"standing": "seated", "position": None, "newly_granted": True}
PROGRAMME = {"cap": 2000, "seats_taken": 3, "seats_left": 1997, "waiting": 0,
             "academy_url": "https://academy.example"}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")


Handler = Callable[["FakeRegistry", Request, socket.socket, int], bool]


@dataclass
class FakeRegistry:
    """Accepts connections and lets `handler(server, request, conn, n)` answer the n-th request.

    The handler returns True to keep the connection open for the next request.
    """

    handler: Handler
    listen: bool = True
    requests: list[Request] = field(default_factory=list)
    executions: int = 0
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)
    clients: list[HttpRegistryClient] = field(default_factory=list)  # closed with the server

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if self.listen:
            threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(15)
        try:
            with conn:
                while not self.stopped.is_set():
                    request = read_request(conn)
                    if request is None:
                        return
                    with self.lock:
                        self.requests.append(request)
                        n = len(self.requests)
                    if not self.handler(self, request, conn, n):
                        return
        except OSError:
            return

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.stopped.set()
        self.sock.close()

    def keys(self) -> list[str | None]:
        return [r.key for r in self.requests]


def read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return Request(method, path, headers, body)


def http_answer(status: int, body: bytes | str | dict | list | None = None, *,
                content_type: str = "application/json", headers: dict[str, str] | None = None,
                length: int | None = None, keep_alive: bool = False) -> bytes:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    body = body or b""
    lines = [f"HTTP/1.1 {status} Whatever"]
    if body or status != 204:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def error_body(code: str, **extra: object) -> dict:
    return {"error": {"code": code, "message": code, "fields": {}, **extra}}


def answer(*script: bytes) -> Handler:
    """Answers the n-th request with script[n-1] (the last one again after that)."""

    def handle(server: FakeRegistry, request: Request, conn: socket.socket, n: int) -> bool:
        conn.sendall(script[min(n, len(script)) - 1])
        return False

    return handle


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeRegistry]]:
    servers: list[FakeRegistry] = []

    def make(handler: Handler, listen: bool = True) -> FakeRegistry:
        servers.append(FakeRegistry(handler, listen=listen))
        return servers[-1]

    yield make
    for server in servers:
        server.close()
    gc.collect()  # what a test left unclosed warns now, in that test, not in a later one


def client_for(server: FakeRegistry, deadline: float = DEADLINE) -> HttpRegistryClient:
    client = HttpRegistryClient(server.url, "kt_test", connect_timeout=1, deadline=deadline)
    server.clients.append(client)
    return client


def refused(call: Callable[[], object]) -> tuple[RegistryError, float]:
    start = time.monotonic()
    with pytest.raises(RegistryError) as info:
        call()
    return info.value, time.monotonic() - start


# --- Nothing there, or nothing coming back -------------------------------------------------


def test_refused_port_is_unavailable_quickly() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    client = HttpRegistryClient(f"http://127.0.0.1:{port}", "kt", connect_timeout=1,
                                deadline=DEADLINE)
    error, elapsed = refused(client.programme_status)
    assert error.code == "unavailable"
    assert elapsed < DEADLINE


def test_accepts_but_never_answers_fails_at_the_deadline(fake) -> None:
    def hang(server: FakeRegistry, request: Request, conn: socket.socket, n: int) -> bool:
        server.stopped.wait(30)
        return False

    server = fake(hang)
    error, elapsed = refused(client_for(server).programme_status)
    assert error.code == "unavailable"
    assert DEADLINE - 0.2 <= elapsed <= DEADLINE + MARGIN


def test_backlog_without_accept_fails_at_the_deadline(fake) -> None:
    """The kernel completes the handshake, but no one ever reads the request."""
    server = fake(answer(b""), listen=False)
    server.sock.listen(8)
    error, elapsed = refused(client_for(server).institutions)
    assert error.code == "unavailable"
    assert elapsed <= DEADLINE + MARGIN


def drip(data: bytes, every: float = 1.0) -> Handler:
    def handle(server: FakeRegistry, request: Request, conn: socket.socket, n: int) -> bool:
        for i in range(len(data)):
            if server.stopped.is_set():
                break
            conn.sendall(data[i:i + 1])
            time.sleep(every)
        return False

    return handle


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_server_that_drips_one_byte_a_second_does_not_hold_the_kiosk(fake, where) -> None:
    """Socket timeouts are per read: only the overall deadline stops a drip."""
    full = http_answer(200, PROGRAMME)
    if where == "body":  # the headers arrive at once, then the body byte by byte
        head, _, body = full.partition(b"\r\n\r\n")

        def handle(server: FakeRegistry, request: Request, conn: socket.socket, n: int) -> bool:
            conn.sendall(head + b"\r\n\r\n")
            return drip(body)(server, request, conn, n)

        server = fake(handle)
    else:
        server = fake(drip(full))
    error, elapsed = refused(client_for(server).programme_status)
    assert error.code == "unavailable"
    assert elapsed <= DEADLINE + MARGIN
    assert len(server.requests) == 1  # no retry started after the deadline


def test_control_without_the_watchdog_a_header_drip_outlives_the_deadline(fake,
                                                                        monkeypatch) -> None:
    """The negative control: per-read socket timeouts alone never stop a drip; it is the
    watchdog that cuts the socket at the deadline."""
    monkeypatch.setattr(http_client._Deadline, "start", lambda self: None)
    head = http_answer(200, PROGRAMME, headers={"X-Pad": "p" * 200}).partition(b"\r\n\r\n")
    server = fake(drip(head[0] + head[1], every=0.015))  # ~300 bytes: ~4.5 s, 15 ms per read
    error, elapsed = refused(client_for(server).programme_status)
    assert error.code == "unavailable"  # the body never comes; but only after all the headers
    assert elapsed > DEADLINE + MARGIN


def test_a_write_that_drips_keeps_its_deadline_too(fake) -> None:
    server = fake(drip(http_answer(200, SEATED)))
    error, elapsed = refused(lambda: client_for(server).claim("tok", "word-basics"))
    assert error.code == "unavailable"
    assert elapsed <= DEADLINE + MARGIN


def test_a_slow_answer_within_the_deadline_is_fine(fake) -> None:
    def slow(server: FakeRegistry, request: Request, conn: socket.socket, n: int) -> bool:
        time.sleep(1.0)
        conn.sendall(http_answer(200, PROGRAMME))
        return False

    server = fake(slow)
    status = client_for(server, deadline=3).programme_status()
    assert (status.cap, status.seats_taken, status.waiting) == (2000, 3, 0)


# --- Answers that are not the registry's -----------------------------------------------------


@pytest.mark.parametrize("raw", [
    pytest.param(b"this is not HTTP at all\r\n\r\n", id="garbage"),
    pytest.param(http_answer(200, "<html><body>Proxy login</body></html>",
                             content_type="text/html"), id="html"),
    pytest.param(http_answer(200, '{"cap": 2000, "seats_ta'), id="truncated-json"),
    pytest.param(http_answer(200, '{"cap": 2000}', length=400), id="short-body"),
    pytest.param(http_answer(200, "{'cap': 2000}"), id="malformed-json"),
    pytest.param(http_answer(200, {"cap": "lots", "seats_taken": 1}), id="wrong-schema"),
    pytest.param(http_answer(200, [1, 2, 3]), id="wrong-shape"),
    pytest.param(http_answer(200, PROGRAMME, content_type="text/plain"), id="not-json-type"),
    pytest.param(http_answer(302, "", headers={"Location": "http://elsewhere/"}), id="redirect"),
    pytest.param(http_answer(403, "<h1>Forbidden</h1>", content_type="text/html"),
                 id="html-403"),
    pytest.param(http_answer(502, "<h1>Bad gateway</h1>", content_type="text/html"),
                 id="html-502"),
    pytest.param(http_answer(500, error_body("internal_error")), id="internal-error"),
    pytest.param(http_answer(404, {"detail": "Not Found"}), id="foreign-404"),
])
def test_answers_that_are_not_the_registrys_are_unavailable(fake, raw) -> None:
    server = fake(answer(raw))
    error, elapsed = refused(client_for(server).programme_status)
    assert error.code == "unavailable"
    assert elapsed <= DEADLINE + MARGIN


def test_an_oversized_answer_is_unavailable(fake) -> None:
    huge = json.dumps({**PROGRAMME, "academy_url": "x" * (3 * 1024 * 1024)})
    server = fake(answer(http_answer(200, huge)))
    assert refused(client_for(server).academy_url)[0].code == "unavailable"
    chunked_head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")

    def endless(server: FakeRegistry, request: Request, conn: socket.socket, n: int) -> bool:
        conn.sendall(chunked_head)
        chunk = b"x" * 65536
        try:
            for _ in range(64):  # 4 MiB, no declared length
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass
        return False

    server = fake(endless)
    assert refused(client_for(server).academy_url)[0].code == "unavailable"


def test_a_garbage_retry_after_is_unavailable(fake) -> None:
    server = fake(answer(http_answer(503, error_body("busy"),
                                     headers={"Retry-After": "whenever"})))
    assert refused(client_for(server).programme_status)[0].code == "unavailable"


# --- Retries: the same Idempotency-Key every time ---------------------------------------------


def test_503_with_retry_after_then_200_is_retried_with_the_same_key(fake) -> None:
    server = fake(answer(
        http_answer(503, error_body("busy", retry_after=1), headers={"Retry-After": "1"}),
        http_answer(200, SEATED),
    ))
    start = time.monotonic()
    result = client_for(server, deadline=4).claim("tok", "word-basics")
    elapsed = time.monotonic() - start
    assert result == ClaimResult(Standing.SEATED, None, True)
    assert len(server.requests) == 2
    assert server.keys()[0] and server.keys()[0] == server.keys()[1]
    assert server.requests[0].body == server.requests[1].body
    assert elapsed >= 0.9  # it honoured Retry-After


def test_500_on_a_post_then_success_is_retried_with_the_same_key(fake) -> None:
    server = fake(answer(http_answer(500, error_body("internal_error")),
                         http_answer(200, SEATED)))
    assert client_for(server).claim("tok", "word-basics").standing is Standing.SEATED
    assert len(server.requests) == 2 and len(set(server.keys())) == 1


def test_a_retry_after_beyond_the_deadline_is_not_waited_for(fake) -> None:
    server = fake(answer(
        http_answer(503, error_body("busy", retry_after=30), headers={"Retry-After": "30"})))
    error, elapsed = refused(client_for(server).programme_status)
    assert error.code == "busy" and error.detail == {"retry_after": 30}
    assert elapsed < 1.0
    assert len(server.requests) == 1


def test_retries_stop_after_two(fake) -> None:
    server = fake(answer(http_answer(503, "<h1>down</h1>", content_type="text/html")))
    error, elapsed = refused(lambda: client_for(server, deadline=5).give_up_seat("tok"))
    assert error.code == "unavailable"
    assert len(server.requests) == 3 and len(set(server.keys())) == 1
    assert elapsed < 5


def test_retry_after_sleeps_are_capped_by_the_deadline(fake) -> None:
    """Retry-After: 1 three times with a 2 s deadline: no retry starts after the deadline."""
    server = fake(answer(http_answer(503, error_body("busy", retry_after=1),
                                     headers={"Retry-After": "1"})))
    error, elapsed = refused(client_for(server).programme_status)
    assert error.code == "busy"
    assert elapsed <= DEADLINE + 0.3
    assert len(server.requests) <= 2


def keyed_registry(drop_first: str | None) -> Handler:
    """A registry that runs each key once; with `drop_first` it commits the first attempt and
    then loses the answer: 'close' closes the socket, 'reset' resets it."""

    def handle(server: FakeRegistry, request: Request, conn: socket.socket, n: int) -> bool:
        key = request.key or ""
        with server.lock:
            stored = server.answers.get(key)
            if stored is None:
                server.executions += 1
                stored = server.answers[key] = (200, json.dumps(SEATED).encode())
                first = True
            else:
                first = False
        if first and drop_first == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if first and drop_first == "close":
            return False
        conn.sendall(http_answer(stored[0], stored[1],
                                 headers={"Idempotent-Replayed": "true"} if not first else {}))
        return False

    return handle


@pytest.mark.parametrize("how", ["close", "reset"])
def test_an_answer_lost_after_the_commit_is_replayed_not_rerun(fake, how) -> None:
    server = fake(keyed_registry(drop_first=how))
    result = client_for(server).claim("tok", "word-basics")
    assert result == ClaimResult(Standing.SEATED, None, True)
    assert len(server.requests) == 2
    assert server.keys()[0] == server.keys()[1]
    assert server.executions == 1


def test_each_logical_write_has_its_own_key_and_reads_have_none(fake) -> None:
    server = fake(keyed_registry(drop_first=None))
    client = client_for(server)
    client.claim("tok", "word-basics")
    client.claim("tok", "word-basics")
    keys = server.keys()
    assert len(keys) == 2 and keys[0] != keys[1] and all(keys)
    assert server.executions == 2
    server2 = fake(answer(http_answer(200, PROGRAMME)))
    client_for(server2).programme_status()
    assert server2.keys() == [None]


def test_in_progress_is_waited_for_with_the_same_key(fake) -> None:
    server = fake(answer(
        http_answer(409, error_body("idempotency_in_progress", retry_after=1),
                    headers={"Retry-After": "1"}),
        http_answer(200, SEATED),
    ))
    assert client_for(server, deadline=4).claim("tok", "x").standing is Standing.SEATED
    assert len(server.requests) == 2 and len(set(server.keys())) == 1


def test_in_progress_past_the_deadline_is_unavailable(fake) -> None:
    server = fake(answer(http_answer(409, error_body("idempotency_in_progress", retry_after=1),
                                     headers={"Retry-After": "1"})))
    error, elapsed = refused(lambda: client_for(server).claim("tok", "x"))
    assert error.code == "unavailable"
    assert elapsed <= DEADLINE + 0.3


# --- What the client sends, and refusals it passes on ------------------------------------------


def test_headers_sent(fake) -> None:
    server = fake(answer(http_answer(200, SEATED)))
    client_for(server).claim("patron-token", "word-basics")
    (request,) = server.requests
    assert request.method == "POST" and request.path == "/api/v1/me/claims"
    assert request.headers["authorization"] == "Bearer kt_test"
    assert request.headers["x-patron-session"] == "patron-token"
    assert request.headers["user-agent"] == f"kiosk-terminal/{__version__}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"course": "word-basics"}


def test_the_netrc_file_cannot_replace_the_bearer_token(fake, tmp_path, monkeypatch) -> None:
    server = fake(answer(http_answer(200, PROGRAMME)))
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client_for(server).programme_status()
    assert server.requests[0].headers["authorization"] == "Bearer kt_test"


@pytest.mark.parametrize("code", ["terminal_unauthorized", "terminal_revoked"])
def test_terminal_refusals_keep_their_code_and_are_not_retried(fake, code) -> None:
    server = fake(answer(http_answer(401, error_body(code),
                                     headers={"WWW-Authenticate": "Bearer"})))
    error, _ = refused(client_for(server).institutions)
    assert error.code == code
    assert len(server.requests) == 1


def test_account_locked_carries_until_in_naive_utc(fake) -> None:
    server = fake(answer(http_answer(429, error_body("account_locked", retry_after=900),
                                     headers={"Retry-After": "900"})))
    before = datetime.utcnow()  # noqa: DTZ003 - naive UTC is what the terminal formats
    error, elapsed = refused(lambda: client_for(server).login("card", "pw"))
    assert error.code == "account_locked"
    until = error.detail["until"]
    assert isinstance(until, datetime) and until.tzinfo is None
    assert timedelta(seconds=899) <= until - before <= timedelta(seconds=902)
    assert len(server.requests) == 1 and elapsed < 1  # 429 is an answer, not a retry


def test_validation_refusal_keeps_its_fields(fake) -> None:
    server = fake(answer(http_answer(422, {"error": {
        "code": "invalid", "message": "x", "fields": {"email": "email_taken"}}})))
    error, _ = refused(lambda: client_for(server).login("a", "b"))
    assert (error.code, error.fields, error.detail) == ("invalid", {"email": "email_taken"}, {})


def test_aware_datetimes_become_naive_utc(fake) -> None:
    status = {"standing": "seated", "position": None, "seated_at": "2025-03-01T10:00:00+01:00",
              "enrolments": [{"course_slug": "a", "title": "A",
                              "enrolled_at": "2025-03-01T09:30:00Z"}]}
    server = fake(answer(http_answer(200, status)))
    answer_ = client_for(server).status("tok", "nl")
    assert answer_.seated_at == datetime(2025, 3, 1, 9, 0)
    assert answer_.enrolments[0].enrolled_at == datetime(2025, 3, 1, 9, 30)


def test_slugs_that_match_no_route_are_refused_without_a_request(fake) -> None:
    server = fake(answer(http_answer(200, {})))
    client = client_for(server)
    for slug in ("", "a/b", ".."):
        assert refused(lambda s=slug: client.course(s, "nl"))[0].code == "course_not_found"
        assert refused(lambda s=slug: client.withdraw("t", s))[0].code == "not_enrolled"
    assert server.requests == []
    with pytest.raises(RegistryError):
        client.course("a b%", "nl")
    assert server.requests[0].path == "/api/v1/courses/a%20b%25?lang=nl"


def test_from_config_and_the_base_url() -> None:
    client = HttpRegistryClient.from_config({
        "REGISTRY_URL": "https://registry.example.be/", "REGISTRY_TOKEN": "kt_x",
        "REGISTRY_CONNECT_TIMEOUT": 2, "REGISTRY_DEADLINE": 5})
    assert client.base_url == "https://registry.example.be/api/v1"
    assert (client.connect_timeout, client.deadline) == (2.0, 5.0)
    assert HttpRegistryClient("http://h:1/api/v1/", "t").base_url == "http://h:1/api/v1"
    with pytest.raises(ValueError):
        HttpRegistryClient("registry.example.be", "t")


# --- Threads ---------------------------------------------------------------------------------


def test_threads_share_one_client_and_a_hung_call_does_not_hurt_the_others(fake) -> None:
    """Many waitress threads use one client; one call stuck at its deadline only fails itself,
    and the connections its watchdog cuts are its own."""

    def handle(server: FakeRegistry, request: Request, conn: socket.socket, n: int) -> bool:
        if request.path.startswith("/api/v1/me"):
            if request.headers["x-patron-session"] == "stuck":
                server.stopped.wait(30)
                return False
            view = {"card_number": request.headers["x-patron-session"], "first_name": "A",
                    "language": "nl", "library_code": "L"}
            conn.sendall(http_answer(200, view, keep_alive=True))
            return True
        conn.sendall(http_answer(200, PROGRAMME, keep_alive=True))
        return True

    server = fake(handle)
    client = client_for(server, deadline=DEADLINE)
    failures: list[BaseException] = []
    stuck: list[RegistryError] = []

    def worker(i: int) -> None:
        try:
            end = time.monotonic() + DEADLINE + 0.5
            while time.monotonic() < end:
                assert client.whoami(f"patron-{i}") == PatronView(f"patron-{i}", "A", "nl", "L")
                client.programme_status()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    def hung() -> None:
        try:
            client.whoami("stuck")
        except RegistryError as error:
            stuck.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    threads.append(threading.Thread(target=hung))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert failures == []
    assert [e.code for e in stuck] == ["unavailable"]
    assert client.programme_status().cap == 2000  # the pool is not poisoned
