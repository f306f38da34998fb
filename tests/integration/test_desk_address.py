"""The desk's address in the audit log behind the shipped nginx front (issue #14 item 3).

The registry runs as kiosk-registry.service runs it (gunicorn) with the TRUSTED_PROXIES of the
shipped registry.env.example, behind the shipped nginx site, both for real on loopback. A
librarian logs in from 127.0.0.5 (the client socket bound to that source address): the audit
entry says 127.0.0.5, also when the client made up an X-Forwarded-For. The negative controls:
with TRUSTED_PROXIES 0 the entry says nginx's own address, and a made-up X-Forwarded-For
sent straight to the app is ignored."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import request
from requests.adapters import HTTPAdapter

from kiosk.app import create_app
from kiosk.cli import main as kiosk_cli
from kiosk.config import read_env_file
from tests.support.factories import build_app
from tests.support.nginx import (
    REPO,
    SITE,
    Certificate,
    GunicornRegistry,
    Nginx,
    free_port,
    make_certificate,
    render_site,
    require_nginx,
)

pytestmark = pytest.mark.slow  # two registries under gunicorn, two nginx

REGISTRY_ENV = REPO / "deploy" / "linux" / "registry.env.example"
DESK = "127.0.0.5"  # the desk PC, as nginx sees it
MADE_UP = "203.0.113.9"  # what a client claims to be in X-Forwarded-For
USERNAME, PASSWORD = "desk.test", "a desk password 2026"


@dataclass
class Front:
    registry: GunicornRegistry
    nginx: Nginx
    certificate: Certificate

    @property
    def through_nginx(self) -> str:
        return f"https://127.0.0.1:{self.nginx.https_port}"

    @property
    def straight(self) -> str:
        return f"http://127.0.0.1:{self.registry.port}"

    def last_login_place(self) -> str:
        """Where the audit log says the last log-in of USERNAME came from."""
        with sqlite3.connect(self.registry.folder / "registry.sqlite3") as db:
            row = db.execute("SELECT terminal FROM audit_log WHERE action = 'staff_login' "
                             "AND actor = ? ORDER BY id DESC LIMIT 1",
                             (f"staff:{USERNAME}",)).fetchone()
        assert row is not None, "no log-in audited"
        return str(row[0])


@contextmanager
def front(folder: Path, trusted_proxies: str) -> Iterator[Front]:
    """The registry with KIOSK_TRUSTED_PROXIES, a librarian account, the shipped nginx site."""
    with ExitStack() as stack:
        registry = GunicornRegistry(folder)
        registry.env["KIOSK_TRUSTED_PROXIES"] = trusted_proxies
        stack.callback(registry.stop)
        registry.start()
        added = CliRunner().invoke(
            kiosk_cli, ["registry", "add-staff", "--username", USERNAME, "--name", "Desk Test",
                        "--role", "librarian", "--institution", "ANT", "--password-stdin"],
            input=PASSWORD + "\n", env=registry.env)
        assert added.exit_code == 0, added.output
        certificate = make_certificate(folder)
        https_port = free_port()
        site = render_site(SITE.read_text(encoding="utf-8"), http_port=free_port(),
                           https_port=https_port, upstream=f"127.0.0.1:{registry.port}",
                           certificate=certificate)
        (folder / "nginx").mkdir()
        proxy = Nginx(require_nginx(), folder / "nginx", site, https_port)
        stack.callback(proxy.stop)
        proxy.start()
        yield Front(registry, proxy, certificate)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """TRUSTED_PROXIES as the shipped registry.env.example sets it."""
    trusted = read_env_file(REGISTRY_ENV)["KIOSK_TRUSTED_PROXIES"]
    with front(tmp_path_factory.mktemp("desk-address"), trusted) as parts:
        yield parts


@pytest.fixture(scope="module")
def untrusting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    with front(tmp_path_factory.mktemp("desk-address-0"), "0") as parts:
        yield parts


class FromAddress(HTTPAdapter):
    """Connections from `address` (a loopback address of the test's choosing)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def log_in(base: str, certificate: Certificate, headers: dict[str, str] | None = None) -> None:
    """A librarian's log-in on the staff page from DESK, as a browser does it."""
    with requests.Session() as browser:
        browser.mount("http://", FromAddress(DESK))
        browser.mount("https://", FromAddress(DESK))
        browser.verify = str(certificate.ca)
        browser.trust_env = False  # no proxy of the developer's environment
        page = browser.get(f"{base}/nl/staff/login", timeout=10)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        assert page.status_code == 200 and token is not None, page.text[:500]
        # nginx passes the host without its port ($host): in production that is 443.
        referer = "https://127.0.0.1/nl/staff/login"
        answer = browser.post(f"{base}/nl/staff/login", timeout=10, allow_redirects=False,
                              data={"csrf_token": token[1], "username": USERNAME,
                                    "password": PASSWORD},
                              headers={"Referer": referer, **(headers or {})})
        assert answer.status_code == 302, answer.text[:500]


def test_the_shipped_env_file_trusts_one_proxy_the_nginx_front() -> None:
    assert read_env_file(REGISTRY_ENV)["KIOSK_TRUSTED_PROXIES"] == "1"


def test_through_nginx_the_audit_shows_the_desks_address(shipped: Front) -> None:
    log_in(shipped.through_nginx, shipped.certificate)
    assert shipped.last_login_place() == f"desk {DESK}"


def test_through_nginx_an_address_the_client_made_up_is_not_believed(shipped: Front) -> None:
    log_in(shipped.through_nginx, shipped.certificate, {"X-Forwarded-For": MADE_UP})
    assert shipped.last_login_place() == f"desk {DESK}"


def test_trusting_no_proxy_the_audit_shows_nginx_not_the_desk(untrusting: Front) -> None:
    log_in(untrusting.through_nginx, untrusting.certificate)
    assert untrusting.last_login_place() == "desk 127.0.0.1"


def test_trusting_no_proxy_a_made_up_address_sent_straight_to_the_app_is_ignored(
        untrusting: Front) -> None:
    log_in(untrusting.straight, untrusting.certificate, {"X-Forwarded-For": MADE_UP})
    assert untrusting.last_login_place() == f"desk {DESK}"


@pytest.mark.parametrize(("trusted", "seen"), [(1, DESK), (0, "127.0.0.1")])
def test_the_terminal_app_believes_as_many_proxies_as_the_registry(tmp_path: Path, trusted: int,
                                                                  seen: str) -> None:
    """The kiosk terminal, behind a proxy of its own, records a librarian's take-over at
    the kiosk with the address the same way (kiosk.registry_setup)."""
    app = build_app(tmp_path, TRUSTED_PROXIES=trusted)
    addresses: list[str | None] = []
    app.before_request(lambda: addresses.append(request.remote_addr))
    app.test_client().get("/", headers={"X-Forwarded-For": DESK},
                          environ_base={"REMOTE_ADDR": "127.0.0.1"})
    app.extensions["registry_service"].store.engine.dispose()
    assert addresses == [seen]


RANGE = "TRUSTED_PROXIES must be a whole number from 0 (no proxy in front) to 5, got"


@pytest.mark.parametrize(("value", "reason"), [
    ("-1", f"{RANGE} -1"),
    ("9", f"{RANGE} 9"),
    ("one", "KIOSK_TRUSTED_PROXIES: invalid literal for int() with base 10: 'one'"),
])
def test_a_bad_trusted_proxies_stops_the_start_with_its_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, reason: str) -> None:
    monkeypatch.setenv("KIOSK_TRUSTED_PROXIES", value)
    with pytest.raises(SystemExit) as stopped:
        create_app({"SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}"},
                   instance_path=str(tmp_path))
    assert str(stopped.value) == reason


def test_a_number_written_as_text_in_kiosk_cfg_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kiosk.cfg").write_text('TRUSTED_PROXIES = "1"\n')
    with pytest.raises(SystemExit) as stopped:
        create_app({"SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}"},
                   instance_path=str(tmp_path))
    assert str(stopped.value) == f"{RANGE} '1'"
