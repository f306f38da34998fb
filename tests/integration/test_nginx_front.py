"""The shipped nginx front (deploy/linux/kiosk-registry.nginx), run for real on loopback with a
test certificate, before the registry served as kiosk-registry.service serves it (gunicorn,
the unit's workers and threads). Issue #13 item 7: 50 slow or idle sockets straight at
gunicorn hold up the normal requests; through nginx every request is answered in well under
a second. The same sockets straight at gunicorn are the negative control."""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kiosk.config import Config
from tests.support.nginx import (
    HOSTNAME,
    SITE,
    Certificate,
    GunicornRegistry,
    Nginx,
    free_port,
    make_certificate,
    p99,
    registry_behind_nginx,
    render_site,
    require_nginx,
    slow_socket_latencies,
)

pytestmark = pytest.mark.slow  # nginx, gunicorn and fifty slow sockets

PROGRAMME = "/api/v1/programme"
METRICS_TOKEN = "nginx-test-metrics-token-0123456789abcdef"


@dataclass
class Front:
    registry: GunicornRegistry
    nginx: Nginx
    certificate: Certificate
    http_port: int

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.registry.token}"}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    binary = require_nginx()
    with registry_behind_nginx(tmp_path_factory.mktemp("nginx-front"), binary,
                               KIOSK_METRICS_TOKEN=METRICS_TOKEN) as parts:
        yield Front(*parts)


def _tls_connection(port: int, certificate: Certificate,
                    timeout: float = 5) -> http.client.HTTPConnection:
    """HTTPS to 127.0.0.1 naming the server HOSTNAME (SNI, certificate check)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.sock = certificate.client_context().wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=timeout),
        server_hostname=HOSTNAME)
    return conn


def _request(conn: http.client.HTTPConnection, method: str, path: str,
             headers: dict[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        conn.request(method, path, body=body, headers={"Host": HOSTNAME, **(headers or {})})
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


# --- Slow clients ---------------------------------------------------------------------------


def test_fifty_slow_and_idle_sockets_leave_every_request_through_nginx_answered_in_a_second(
        front: Front) -> None:
    tls = front.certificate.client_context()
    # First without slow sockets: each gunicorn worker's first call (~0.2 s) is not theirs.
    quiet = slow_socket_latencies("127.0.0.1", front.nginx.https_port, tls=tls, path=PROGRAMME,
                                  headers=front.auth, slow=0, normal=10, settle=0, timeout=5.0)
    latencies = slow_socket_latencies("127.0.0.1", front.nginx.https_port, tls=tls,
                                      path=PROGRAMME, headers=front.auth, slow=50, normal=30,
                                      timeout=2.0)
    print(f"\nthrough nginx: p99 {p99(quiet) * 1000:.0f} ms alone, {p99(latencies) * 1000:.0f} "
          f"ms with 50 slow sockets ({len(latencies)} requests)")
    assert all(math.isfinite(x) for x in latencies), latencies
    assert p99(latencies) < 1.0, latencies


def test_the_same_sockets_straight_at_gunicorn_hold_requests_up(front: Front) -> None:
    """The negative control: without nginx, a stalled header holds a gunicorn thread until it
    ends, so requests wait behind them and some get no answer within 1.5 s. (Which requests
    depends on how the kernel spread the sockets over the workers; it favours the worker that
    took the stalled ones, so most of them fail.)"""
    latencies = slow_socket_latencies("127.0.0.1", front.registry.port, tls=None,
                                      path=PROGRAMME, headers=front.auth, slow=50, normal=6,
                                      timeout=1.5)
    unanswered = sum(math.isinf(x) for x in latencies)
    print(f"\nstraight at gunicorn, 50 slow sockets: {unanswered} of {len(latencies)} requests "
          f"unanswered within 1.5 s (p99 {p99(latencies)})")
    assert unanswered >= 1 and p99(latencies) > 1.0, latencies
    # Once the sockets are closed gunicorn answers again: the sockets were the cause.
    after = slow_socket_latencies("127.0.0.1", front.registry.port, tls=None, path=PROGRAMME,
                                  headers=front.auth, slow=0, normal=1, settle=0, timeout=5.0)
    assert math.isfinite(after[0]), after


def test_a_client_gets_at_most_32_requests_in_progress(front: Front) -> None:
    """Requests waiting for their body count against limit_conn (a body trickled in never
    reaches gunicorn); the 33rd from the same address gets 503 until they end."""
    head = (f"POST /api/v1/patrons HTTP/1.1\r\nHost: {HOSTNAME}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").encode()
    waiting: list[socket.socket] = []
    try:
        for _ in range(32):
            conn = _tls_connection(front.nginx.https_port, front.certificate)
            assert conn.sock is not None
            waiting.append(conn.sock)
            conn.sock.sendall(head)
        time.sleep(0.3)  # nginx has read every header and counted each request
        status, headers, _ = _request(_tls_connection(front.nginx.https_port, front.certificate),
                                      "GET", PROGRAMME, front.auth)
        assert status == 503
        assert headers["Server"] == "nginx"  # no version on nginx's own answers either
        status, _, _ = _request(http.client.HTTPConnection("127.0.0.1", front.registry.port,
                                                           timeout=5),
                                "GET", PROGRAMME, front.auth)
        assert status == 200  # gunicorn never saw them
    finally:
        for sock in waiting:
            sock.close()
    time.sleep(0.3)
    status, _, _ = _request(_tls_connection(front.nginx.https_port, front.certificate), "GET",
                            PROGRAMME, front.auth)
    assert status == 200


# --- The rest of the front ------------------------------------------------------------------


def test_plain_http_is_redirected_to_https_and_no_answer_names_the_version(
        front: Front) -> None:
    status, headers, body = _request(http.client.HTTPConnection(
        "127.0.0.1", front.http_port, timeout=5), "GET", "/nl/staff/?x=1")
    assert status == 301
    assert headers["Location"] == f"https://{HOSTNAME}/nl/staff/?x=1"
    assert headers["Server"] == "nginx" and b"nginx/" not in body
    status, headers, body = _request(_tls_connection(front.nginx.https_port, front.certificate),
                                     "GET", "/readyz")
    assert status == 200 and json.loads(body) == {"status": "ready"}
    assert headers["Server"] == "nginx"


def test_a_scrape_through_the_front_needs_the_token_which_nginx_passes_on(front: Front) -> None:
    """A Prometheus elsewhere scrapes through nginx over TLS: the bearer token is the
    protection, and nginx hands it to the registry untouched."""
    status, _, body = _request(_tls_connection(front.nginx.https_port, front.certificate),
                               "GET", "/metrics")
    assert status == 401 and b"kiosk_" not in body
    status, headers, body = _request(
        _tls_connection(front.nginx.https_port, front.certificate), "GET", "/metrics",
        {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"kiosk_database_up 1.0" in body


def test_a_body_over_the_apps_limit_is_refused_by_nginx_and_one_at_the_limit_reaches_it(
        front: Front) -> None:
    limit = Config.MAX_CONTENT_LENGTH
    headers = {**front.auth, "Content-Type": "application/json"}
    status, answer_headers, body = _request(
        _tls_connection(front.nginx.https_port, front.certificate), "POST", "/api/v1/patrons",
        headers, b" " * (limit + 1))
    assert status == 413 and b"nginx/" not in body
    assert not answer_headers.get("Content-Type", "").startswith("application/json")
    status, answer_headers, body = _request(
        _tls_connection(front.nginx.https_port, front.certificate), "POST", "/api/v1/patrons",
        headers, b" " * limit)
    # The app's own JSON refusal of an empty document: the body got through whole.
    assert answer_headers["Content-Type"].startswith("application/json"), (status, body)
    assert status == 400 and "error" in json.loads(body), body


class _Recorder(BaseHTTPRequestHandler):
    """An upstream that notes when each connection arrives and the headers it got."""

    seen: list[tuple[float, dict[str, str], bytes]] = []
    arrived: list[float] = []

    def setup(self) -> None:
        _Recorder.arrived.append(time.monotonic())
        super().setup()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.seen.append((time.monotonic(), dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_gunicorn_gets_whole_requests_with_the_forwarded_headers(tmp_path: Path) -> None:
    """The shipped site before a recording upstream: the upstream sees nothing until the
    whole body is in, then the client's address (not the X-Forwarded-For it made up), https
    and the host."""
    binary = require_nginx()
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    serving = threading.Thread(target=upstream.serve_forever, daemon=True)
    serving.start()
    certificate = make_certificate(tmp_path)
    https_port = free_port()
    site = render_site(SITE.read_text(encoding="utf-8"), http_port=free_port(),
                       https_port=https_port,
                       upstream=f"127.0.0.1:{upstream.server_address[1]}",
                       certificate=certificate)
    (tmp_path / "nginx").mkdir()
    proxy = Nginx(binary, tmp_path / "nginx", site, https_port).start()
    _Recorder.seen, _Recorder.arrived = [], []
    try:
        conn = _tls_connection(https_port, certificate)
        conn.putrequest("POST", "/api/v1/sessions", skip_host=True)
        for name, value in (("Host", HOSTNAME), ("X-Forwarded-For", "203.0.113.9"),
                            ("X-Forwarded-Proto", "http"), ("Content-Length", "10")):
            conn.putheader(name, value)
        conn.endheaders(b"01234")
        time.sleep(0.5)
        assert _Recorder.arrived == []  # half a body: gunicorn is not bothered yet
        conn.send(b"56789")
        answer = conn.getresponse()
        answer.read()
        conn.close()
        assert answer.status == 200
        [(_, headers, body)] = _Recorder.seen
        assert body == b"0123456789"
        assert headers["X-Forwarded-For"] == "127.0.0.1"
        assert headers["X-Forwarded-Proto"] == "https"
        assert headers["Host"] == headers["X-Forwarded-Host"] == HOSTNAME
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()
        serving.join(timeout=5)
