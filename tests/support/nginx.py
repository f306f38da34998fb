"""The shipped nginx front (deploy/linux/kiosk-registry.nginx) run for real on loopback, in
front of the registry served by gunicorn as kiosk-registry.service serves it; and slow clients
against either, measured. For tests and benchmarks.

- `render_site` substitutes only ports, the upstream address and the certificate paths, so
  every other directive of the shipped file is what runs.
- `Nginx` is a private nginx (its own prefix, config, pid file, logs and temp folders) that
  runs as the current user; the `user` directive is written only when that is root.
- `GunicornRegistry` is `kiosk registry serve` with the unit file's own options, on SQLite with
  the demo data and one terminal (or on a database and loopback address of the test's choosing:
  tests/support/registry_hosts.py puts two of them on one PostgreSQL).
- `slow_socket_latencies` is the measure: latencies of normal requests while stalled sockets
  hang on the same server.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import pwd
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from configparser import ConfigParser
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from kiosk.cli import main as kiosk_cli
from tests.support.factories import IN_CI
from tests.support.storm_support import free_port, stop_process_group

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "deploy" / "linux" / "kiosk-registry.nginx"
REGISTRY_UNIT = REPO / "deploy" / "linux" / "kiosk-registry.service"
HOSTNAME = "registry.test"  # the certificate's name; requests go to 127.0.0.1 with SNI set


def find_nginx() -> str | None:
    """Debian's nginx (/usr/sbin is not on every user's PATH), else one on PATH."""
    if os.access("/usr/sbin/nginx", os.X_OK):
        return "/usr/sbin/nginx"
    return shutil.which("nginx")


@dataclass(frozen=True)
class Certificate:
    ca: Path  # what clients trust
    chain: Path  # leaf then CA, for ssl_certificate
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server's certificate and name, as a terminal's requests would."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_certificate(folder: Path) -> Certificate:
    """A throw-away CA (cryptography, through trustme) and a certificate it issued for
    HOSTNAME and 127.0.0.1."""
    ca = trustme.CA()
    leaf = ca.issue_cert(HOSTNAME, "127.0.0.1")
    cert = Certificate(folder / "ca.pem", folder / "chain.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(cert.ca))
    with open(cert.chain, "wb") as out:
        for blob in leaf.cert_chain_pems:
            out.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(cert.key))
    return cert


def render_site(text: str, *, http_port: int, https_port: int, upstream: str | Sequence[str],
                certificate: Certificate) -> str:
    """The shipped site with loopback ports, another upstream (or several: one `server` line
    each, as the site's comment shows for more registry hosts) and the test's certificate.
    Raises ValueError if a line it substitutes is gone: a changed file must not go untested."""
    upstreams = [upstream] if isinstance(upstream, str) else list(upstream)
    substitutions = [
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),  # loopback IPv6 may be missing; the IPv4 socket is tested
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("server 127.0.0.1:8000;", "\n    ".join(f"server {u};" for u in upstreams)),
        ("/etc/ssl/certs/kiosk-registry.pem", str(certificate.chain)),
        ("/etc/ssl/private/kiosk-registry.key", str(certificate.key)),
    ]
    for old, new in substitutions:
        if old not in text:
            raise ValueError(f"{old!r} is no longer in the site file: update render_site")
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class Directive:
    """One nginx directive; `block` holds the ones inside its braces, if it has any."""

    name: str
    args: tuple[str, ...]
    block: tuple[Directive, ...] = ()

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        if len(found) != 1:
            raise LookupError(f"{len(found)} {name!r} directives in {self.name}, expected 1")
        return found[0]


def parse_config(text: str) -> Directive:
    """The directives of an nginx config file, as the block of a directive named "file":
    nginx's grammar (words, quotes, # comments, `;` and braces), not its semantics."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";{}")
    lexer.whitespace_split, lexer.commenters = True, "#"
    stack: list[tuple[str, tuple[str, ...], list[Directive]]] = [("file", (), [])]
    words: list[str] = []
    for token in lexer:
        if token == ";":
            stack[-1][2].append(Directive(words[0], tuple(words[1:])))
            words = []
        elif token == "{":
            stack.append((words[0], tuple(words[1:]), []))
            words = []
        elif token == "}":
            name, args, inner = stack.pop()
            stack[-1][2].append(Directive(name, args, tuple(inner)))
        else:
            words.append(token)
    if len(stack) != 1 or words:
        raise ValueError("unbalanced braces or a directive without its ';'")
    return Directive("file", (), tuple(stack[0][2]))


def size_bytes(value: str) -> int:
    """An nginx size: 64k, 1m or bytes."""
    units = {"k": 1024, "m": 1024 * 1024}
    unit = value[-1:].lower()
    return int(value[:-1]) * units[unit] if unit in units else int(value)


def seconds(value: str) -> float:
    """An nginx time: 10s, 1m, 1h or bare seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    unit = value[-1:]
    return float(value[:-1]) * units[unit] if unit in units else float(value)


class Nginx:
    """nginx with `site` as its only site, in `folder`; the main config mirrors what Debian's
    nginx.conf sets around sites-enabled/* (minus its system paths)."""

    def __init__(self, binary: str, folder: Path, site: str, https_port: int):
        self.binary, self.folder, self.site, self.https_port = binary, folder, site, https_port
        self.conf = folder / "nginx.conf"
        self.error_log = folder / "error.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def main_config(self) -> str:
        temp = "\n".join(f"    {kind}_temp_path {self.folder / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # Workers run as the current user: as root nginx would switch to nobody, who cannot
        # enter the test's private folder; any other user cannot switch at all.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        return (f"{user}daemon off;\nworker_processes 1;\npid {self.folder / 'nginx.pid'};\n"
                f"error_log {self.error_log} info;\n"
                "events { worker_connections 768; }\n"
                "http {\n"
                "    sendfile on;\n    tcp_nopush on;\n    types_hash_max_size 2048;\n"
                "    default_type application/octet-stream;\n"
                f"    access_log {self.folder / 'access.log'};\n{temp}\n"
                f"    include {self.folder / 'kiosk-registry.conf'};\n"
                "}\n")

    def start(self, timeout: float = 10) -> Nginx:
        (self.folder / "kiosk-registry.conf").write_text(self.site, encoding="utf-8")
        self.conf.write_text(self.main_config(), encoding="utf-8")
        # -e: the log for messages before the config is read (the default is under /var/log)
        cmd = [self.binary, "-p", str(self.folder), "-c", str(self.conf), "-e",
               str(self.error_log)]
        check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the config:\n{check.stderr}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown, open connections are closed
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""


def unit_serve_options() -> dict[str, str]:
    """`kiosk registry serve`'s options in kiosk-registry.service's ExecStart."""
    parser = ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(REGISTRY_UNIT.read_text(encoding="utf-8"))
    command = shlex.split(parser["Service"]["ExecStart"])
    assert command[1:3] == ["registry", "serve"], command
    return dict(zip(command[3::2], command[4::2], strict=True))


def require_nginx() -> str:
    """nginx's binary; where there is none, a failure in CI (it must run the nginx tests) and
    a skip saying why elsewhere."""
    binary = find_nginx()
    if binary is None:
        if IN_CI:
            pytest.fail("CI must run the nginx tests: nginx not found (.ci/run installs it)")
        pytest.skip("nginx not found: apt-get install nginx")
    return binary


def free_port_on(hosts: Sequence[str]) -> int:
    """A port free on every one of `hosts` (loopback addresses), for servers that listen on the
    same port each on its own address, as registry hosts do."""
    for _ in range(20):
        with socket.socket() as first:
            first.bind((hosts[0], 0))
            port: int = first.getsockname()[1]
            try:
                for host in hosts[1:]:
                    with socket.socket() as other:
                        other.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no port free on all of {', '.join(hosts)}")


class GunicornRegistry:
    """The registry as kiosk-registry.service runs it (`kiosk registry serve`, gunicorn, the
    unit's workers and threads) on a loopback address (`host`) and a free port, with its own
    instance folder and log. By default on SQLite in that folder; `database_url` puts it on
    another database, which several of them may share (each host with its own instance
    folder, as on real hosts). `prepare()` fills the database with the demo data and issues
    one terminal (`token`): once per database. Its own process group."""

    def __init__(self, folder: Path, *, database_url: str = "", host: str = "127.0.0.1",
                 port: int | None = None, secret_key: str = "nginx-test-registry-key",
                 **environment: str):
        """`environment`: more variables for the server (KIOSK_METRICS_TOKEN, TMPDIR…)."""
        self.folder = folder
        self.host = host
        self.port = port or free_port()
        database_url = database_url or f"sqlite:///{folder / 'registry.sqlite3'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
        self.env.update(KIOSK_INSTANCE_PATH=str(folder / "instance"),
                        KIOSK_DATABASE_URL=database_url,
                        KIOSK_SECRET_KEY=secret_key)
        self.env.update(environment)
        self.log = folder / "registry.log"
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """`kiosk registry ARGS` in this process (kiosk is imported already: no 3 s start)."""
        done = CliRunner().invoke(kiosk_cli, ["registry", *args], env=self.env, input=stdin)
        if done.exit_code != 0:
            raise RuntimeError(f"kiosk registry {' '.join(args)}: {done.output}")
        return done.output

    def add_terminal(self, name: str) -> str:
        """A new terminal of ANT-PERMEKE; answers its token."""
        out = self.cli("add-terminal", "--library", "ANT-PERMEKE", "--name", name)
        return next(w for w in out.split() if w.startswith("kt_"))

    def prepare(self) -> None:
        self.cli("upgrade", "--demo-data")
        self.token = self.add_terminal("nginx test")

    def start(self, timeout: float = 60, *, prepare: bool = True) -> GunicornRegistry:
        if prepare:
            self.prepare()
        self.launch()
        return self.wait_until_ready(timeout)

    def launch(self) -> None:
        """Start the server without waiting for it (several hosts start side by side)."""
        options = unit_serve_options()
        options.update({"--host": self.host, "--port": str(self.port)})
        cmd = [sys.executable, "-c", "from kiosk.cli import main; main()", "registry", "serve",
               *[part for option in options.items() for part in option]]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.folder, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_until_ready(self, timeout: float = 60) -> GunicornRegistry:
        """Until /readyz answers 200; stops the server and raises if it does not in time."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the registry exited:\n{self.log.read_text()}")
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                conn.request("GET", "/readyz")
                ready = conn.getresponse().status == 200
                conn.close()
                if ready:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the registry did not become ready:\n{self.log.read_text()}")

    def kill9(self) -> None:
        """SIGKILL to the whole process group: master and workers die at once, as when the
        host loses power."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
        self.proc = None

    def access_lines(self) -> list[dict[str, object]]:
        """The app's access lines (logger kiosk.access, one JSON line per request) in its log."""
        lines = []
        for text in self.log.read_text(errors="replace").splitlines():
            if text.startswith("{"):
                line = json.loads(text)
                if line.get("logger") == "kiosk.access":
                    lines.append(line)
        return lines


@contextmanager
def registry_behind_nginx(folder: Path, nginx: str, **environment: str
                          ) -> Iterator[tuple[GunicornRegistry, Nginx, Certificate, int]]:
    """The registry (with `environment`, see GunicornRegistry) and the shipped nginx front
    before it; yields the registry, nginx, the certificate to trust and nginx's HTTP port
    (the HTTPS one is `nginx.https_port`)."""
    with ExitStack() as stack:
        registry = GunicornRegistry(folder, **environment)
        stack.callback(registry.stop)
        registry.start()
        certificate = make_certificate(folder)
        http_port, https_port = free_port(), free_port()
        site = render_site(SITE.read_text(encoding="utf-8"), http_port=http_port,
                           https_port=https_port, upstream=f"127.0.0.1:{registry.port}",
                           certificate=certificate)
        (folder / "nginx").mkdir()
        front = Nginx(nginx, folder / "nginx", site, https_port)
        stack.callback(front.stop)
        front.start()
        yield registry, front, certificate, http_port


# --- Slow clients ---------------------------------------------------------------------------


class _SlowSockets:
    """Half the sockets trickle a request header that never ends (one byte per `interval`,
    over TLS when `tls` is given); the others are idle: with TLS, half of them finish the
    handshake and then say nothing, the rest never even send a ClientHello."""

    def __init__(self, host: str, port: int, count: int, tls: ssl.SSLContext | None,
                 server_hostname: str, interval: float):
        self.interval = interval
        self.trickling: list[tuple[socket.socket, Iterator[bytes]]] = []
        self.idle: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, name="slow-sockets", daemon=True)
        head = f"GET /healthz HTTP/1.1\r\nHost: {server_hostname}\r\nX-Slow: ".encode()
        try:
            for index in range(count):
                sock: socket.socket = socket.create_connection((host, port), timeout=5)
                trickles = index % 2 == 0
                if tls is not None and (trickles or index % 4 == 1):
                    try:
                        sock = tls.wrap_socket(sock, server_hostname=server_hostname)
                    except BaseException:
                        sock.close()
                        raise
                if trickles:
                    sock.sendall(head[:1])
                    self.trickling.append((sock, _endless(head[1:])))
                else:
                    self.idle.append(sock)
        except BaseException:
            self.close()
            raise
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(self.interval):
            for sock, rest in list(self.trickling):
                try:
                    sock.sendall(next(rest))
                except OSError:  # the server gave up on it (a header timeout): keep the rest
                    self.trickling.remove((sock, rest))
                    sock.close()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        for sock, _ in self.trickling:
            sock.close()
        for sock in self.idle:
            sock.close()
        self.trickling, self.idle = [], []


def _endless(prefix: bytes) -> Iterator[bytes]:
    for byte in prefix:
        yield bytes([byte])
    while True:
        yield b"a"


def _one_request(host: str, port: int, tls: ssl.SSLContext | None, server_hostname: str,
                 path: str, headers: Mapping[str, str], timeout: float) -> float:
    started = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.sock = socket.create_connection((host, port), timeout=timeout)
        if tls is not None:  # connect to the address, but name the server (SNI, Host)
            conn.sock = tls.wrap_socket(conn.sock, server_hostname=server_hostname)
        conn.request("GET", path, headers={"Host": server_hostname, **headers})
        answer = conn.getresponse()
        answer.read()
        ok = answer.status == 200
    except OSError:  # timeouts included
        ok = False
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    return elapsed if ok and elapsed <= timeout else math.inf


def slow_socket_latencies(host: str, port: int, *, tls: ssl.SSLContext | None = None,
                          server_hostname: str = HOSTNAME, path: str = "/readyz",
                          headers: Mapping[str, str] | None = None, slow: int = 50,
                          normal: int = 20, timeout: float = 2.0, settle: float = 0.5,
                          interval: float = 0.25) -> list[float]:
    """Open `slow` stalled sockets against host:port (see _SlowSockets), wait `settle` seconds
    for the server to take them, then make `normal` GET `path` requests one after another,
    each on a new connection (a new TLS handshake when `tls` is given). Returns their
    latencies in seconds, in order; a request without a 200 within `timeout` counts as
    math.inf. The stalled sockets are closed before it returns."""
    stalled = _SlowSockets(host, port, slow, tls, server_hostname, interval)
    try:
        time.sleep(settle)
        return [_one_request(host, port, tls, server_hostname, path, headers or {}, timeout)
                for _ in range(normal)]
    finally:
        stalled.close()


def p99(latencies: Sequence[float]) -> float:
    """The 99th percentile, nearest rank (the largest of fewer than 100 values)."""
    ranked = sorted(latencies)
    return ranked[max(0, math.ceil(0.99 * len(ranked)) - 1)]
