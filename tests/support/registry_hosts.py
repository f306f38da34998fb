"""More than one registry host (issue #14 item 4): two `kiosk registry serve` (gunicorn, as the
unit runs it) on 127.0.0.2 and 127.0.0.3, the same port, one PostgreSQL database, behind the
shipped nginx site with both in its upstream. For tests.

- `registries_behind_nginx` starts them: the database filled through the CLI (`upgrade
  --demo-data`, `set-cap`), each host with its own instance folder, log and secret key (the
  same one, as README asks, or two for the negative control);
- `terminal_client` is the terminal's own `HttpRegistryClient` through nginx, its connections
  from a loopback address of its own (as a library's PC has: nginx allows 32 requests in
  progress per address);
- `staff_visit` is a librarian's browser: the log-in page, the log-in, then staff pages, each
  request with an X-Request-Id that the host answering it writes in its access line, so the
  test can tell which host answered what.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from kiosk.registry.http_client import HttpRegistryClient
from tests.support.nginx import (
    SITE,
    Certificate,
    GunicornRegistry,
    Nginx,
    free_port,
    free_port_on,
    make_certificate,
    render_site,
)

HOSTS = ("127.0.0.2", "127.0.0.3")
SHARED_KEY = "the-same-key-on-every-registry-host"


@dataclass
class RegistryHosts:
    hosts: list[GunicornRegistry]
    nginx: Nginx
    certificate: Certificate
    database_url: str

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.nginx.https_port}"

    def answered_by(self, request_ids: Sequence[str]) -> list[str | None]:
        """For each request id, the address of the host whose access log has it (None when
        no host's has it, "both" when both have: neither may happen)."""
        seen: dict[str, set[str]] = {}
        for host in self.hosts:
            for line in host.access_lines():
                seen.setdefault(str(line.get("request_id")), set()).add(host.host)
        found = [seen.get(rid, set()) for rid in request_ids]
        return [None if not hosts else next(iter(hosts)) if len(hosts) == 1 else "both"
                for hosts in found]


@contextmanager
def registries_behind_nginx(folder: Path, nginx: str, database_url: str, *, cap: int,
                            secret_keys: Sequence[str] = (SHARED_KEY, SHARED_KEY)
                            ) -> Iterator[RegistryHosts]:
    """Two registry hosts on one (new, empty) database with the demo data and `cap`, each
    with its secret key, and the shipped nginx site with both as its upstream."""
    port = free_port_on(HOSTS)
    with ExitStack() as stack:
        hosts: list[GunicornRegistry] = []
        stack.callback(_stop_together, hosts)  # the ones made by then
        for address, key in zip(HOSTS, secret_keys, strict=True):
            (folder / address).mkdir()
            host = GunicornRegistry(folder / address, database_url=database_url, host=address,
                                    port=port, secret_key=key)
            # As the shipped registry.env.example sets them: nginx is the one proxy, over TLS.
            host.env.update(KIOSK_TRUSTED_PROXIES="1", KIOSK_HTTPS="true")
            hosts.append(host)
        first = hosts[0]
        first.prepare()  # once: the database is theirs together
        first.cli("set-cap", str(cap), "--reason", "two registry hosts test")
        for host in hosts:
            host.token = first.token
            host.launch()
        for host in hosts:
            host.wait_until_ready()
        certificate = make_certificate(folder)
        https_port = free_port()
        site = render_site(SITE.read_text(encoding="utf-8"), http_port=free_port(),
                           https_port=https_port, upstream=[h.address for h in hosts],
                           certificate=certificate)
        (folder / "nginx").mkdir()
        front = Nginx(nginx, folder / "nginx", site, https_port)
        stack.callback(front.stop)
        front.start()
        yield RegistryHosts(hosts, front, certificate, database_url)


def _stop_together(hosts: Sequence[GunicornRegistry]) -> None:
    """Each host's graceful stop takes a second or two: side by side, not one after another."""
    with ThreadPoolExecutor(len(hosts)) as pool:
        for stopped in [pool.submit(host.stop) for host in hosts]:
            stopped.result()


def terminal_client(hosts: RegistryHosts, token: str, source: str, *, threads: int,
                    deadline: float) -> HttpRegistryClient:
    """The terminal's client through nginx (its retries, deadlines and certificate checks),
    connecting from the loopback address `source`."""
    client = HttpRegistryClient(hosts.base_url, token, ca_file=str(hosts.certificate.ca),
                                deadline=deadline, pool_size=threads)
    # urllib3's PoolManager hands these to every connection pool it makes (none made yet).
    client.session.get_adapter(hosts.base_url).poolmanager.connection_pool_kw[
        "source_address"] = (source, 0)
    return client


@dataclass(frozen=True)
class Step:
    what: str  # "log-in page", "log-in", "page"
    status: int
    request_id: str


def staff_visit(hosts: RegistryHosts, username: str, password: str, pages: int,
                timeout: float = 10) -> list[Step]:
    """A librarian's browser through nginx: the log-in page, the log-in, then `pages` visits
    of the staff home page. Stops at the first answer a working session would not give (200,
    and the log-in's 302); answers the steps taken."""
    steps: list[Step] = []
    with requests.Session() as browser:
        browser.verify = str(hosts.certificate.ca)
        browser.trust_env = False  # no proxy of the developer's environment

        def send(what: str, method: str, path: str, ok: int, data: dict[str, str] | None = None,
                 referer: str | None = None) -> requests.Response | None:
            rid = uuid.uuid4().hex
            headers = {"X-Request-Id": rid, **({"Referer": referer} if referer else {})}
            answer = browser.request(method, f"{hosts.base_url}/en/staff/{path}", data=data,
                                     headers=headers, timeout=timeout, allow_redirects=False)
            steps.append(Step(what, answer.status_code, rid))
            return answer if answer.status_code == ok else None

        page = send("log-in page", "GET", "login", 200)
        form = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) if page else None
        if form is None:
            return steps
        # nginx passes the host without its port ($host): in production that is 443.
        if send("log-in", "POST", "login", 302, referer="https://127.0.0.1/en/staff/login",
                data={"csrf_token": form[1], "username": username, "password": password}):
            for _ in range(pages):
                if send("page", "GET", "", 200) is None:
                    break
    return steps
