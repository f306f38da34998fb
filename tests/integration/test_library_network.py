"""A terminal on a library's network (issue #14 item 6): the registry's certificate is issued
by the network's own CA, and the way out is an HTTPS proxy. A real registry app served over
TLS on loopback with a certificate of a CA made here, and a real CONNECT proxy on loopback:
the terminal trusts that CA only when told to (REGISTRY_CA_FILE) or when the system's store
holds it, its registry calls go through HTTPS_PROXY, straight when NO_PROXY matches or the
registry is on this machine, and `kiosk doctor` says which CA and which proxy it uses."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import truststore
from click.testing import CliRunner
from click.testing import Result as CliResult

from kiosk.app import create_app
from kiosk.cli import main
from kiosk.config import PROXY_VARIABLES
from kiosk.registry import network
from kiosk.registry.domain import RegistryError
from kiosk.registry.http_client import HttpRegistryClient
from tests.support.factories import build_app
from tests.support.library_network import ConnectProxy, names_resolved, serve_tls
from tests.support.nginx import HOSTNAME, Certificate, make_certificate


@dataclass
class Registry:
    port: int
    token: str
    certificate: Certificate

    @property
    def by_name(self) -> str:
        """Its URL by the network's name (HOSTNAME, resolved by `names_resolved` only)."""
        return f"https://{HOSTNAME}:{self.port}"

    @property
    def on_loopback(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self, url: str, ca_file: str = "") -> HttpRegistryClient:
        return HttpRegistryClient(url, self.token, connect_timeout=2, deadline=4,
                                  ca_file=ca_file)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    folder = tmp_path_factory.mktemp("tls-registry")
    app = build_app(folder / "registry", registry=True)
    token, _ = app.extensions["registry_service"].add_terminal("ANT-PERMEKE", "network test",
                                                               "test")
    certificate = make_certificate(folder)
    with serve_tls(app, certificate) as port:
        yield Registry(port, token, certificate)
    app.extensions["registry_service"].store.engine.dispose()


@pytest.fixture(autouse=True)
def no_network_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the developer's proxy or CA variables: each test sets its own, and what a test
    sets, even through `--env-file`, is gone after it (set first, so that it is undone)."""
    names = [*PROXY_VARIABLES, *(name.upper() for name in PROXY_VARIABLES), "SSL_CERT_FILE",
             "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    server = ConnectProxy()
    yield server
    server.close()


@pytest.fixture
def network_names() -> Iterator[None]:
    with names_resolved({HOSTNAME: "127.0.0.1"}):
        yield


def libraries(client: HttpRegistryClient) -> int:
    try:
        return sum(len(institution.libraries) for institution in client.institutions())
    finally:
        client.close()


# --- The network's own certificate authority ------------------------------------------------


def test_without_the_networks_ca_a_call_fails_and_says_to_set_registry_ca_file(
        registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    client = registry.client(registry.on_loopback)
    with caplog.at_level(logging.WARNING, logger="kiosk.registry_client"), \
            pytest.raises(RegistryError) as refused:
        libraries(client)
    assert refused.value.code == "unavailable"
    reason = str(refused.value.detail["reason"])
    assert "certificate is not trusted" in reason and "REGISTRY_CA_FILE" in reason, reason
    assert any(reason in record.getMessage() for record in caplog.records), caplog.text


def test_a_certificate_for_another_name_says_to_check_the_url(registry: Registry) -> None:
    """The test's certificate names registry.test and 127.0.0.1, not localhost."""
    client = registry.client(f"https://localhost:{registry.port}",
                             ca_file=str(registry.certificate.ca))
    with pytest.raises(RegistryError) as refused:
        libraries(client)
    reason = str(refused.value.detail["reason"])
    assert "for another name" in reason and "REGISTRY_URL" in reason, reason


def test_with_the_networks_ca_in_registry_ca_file_the_call_works(registry: Registry) -> None:
    client = registry.client(registry.on_loopback, ca_file=str(registry.certificate.ca))
    assert libraries(client) == 27


def test_the_terminal_app_reads_registry_ca_file_from_its_settings(registry: Registry,
                                                                  tmp_path: Path) -> None:
    app = build_app(tmp_path, REGISTRY_URL=registry.on_loopback, REGISTRY_TOKEN=registry.token,
                    REGISTRY_CA_FILE=str(registry.certificate.ca), LIBRARY_CODE="ANT-PERMEKE")
    assert libraries(app.extensions["registry"]) == 27


def test_a_ca_added_to_the_systems_store_is_trusted_as_well(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """SSL_CERT_FILE is where OpenSSL, so the Linux system store, finds its CAs: a CA the
    machine trusts is trusted without REGISTRY_CA_FILE. requests' own bundle (certifi), which
    the terminal used alone before, does not have it: the control."""
    monkeypatch.setenv("SSL_CERT_FILE", str(registry.certificate.ca))
    assert isinstance(network.ssl_context(), truststore.SSLContext)
    assert libraries(registry.client(registry.on_loopback)) == 27
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(registry.on_loopback + "/healthz", timeout=4)


@pytest.mark.parametrize(("content", "reason"), [
    (None, "No such file or directory"),
    ("not a certificate\n", "no PEM certificate in it"),
])
def test_a_ca_file_that_cannot_be_used_stops_the_start(tmp_path: Path, content: str | None,
                                                       reason: str) -> None:
    path = tmp_path / "library-ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as stopped:
        create_app({"SECRET_KEY": "x", "REGISTRY_CA_FILE": str(path),
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}"},
                   instance_path=str(tmp_path))
    assert str(stopped.value) == f"REGISTRY_CA_FILE {path}: {reason}"


# --- The network's HTTPS proxy ---------------------------------------------------------------


@pytest.mark.usefixtures("network_names")
def test_registry_calls_go_through_https_proxy(registry: Registry, proxy: ConnectProxy,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    client = registry.client(registry.by_name, ca_file=str(registry.certificate.ca))
    assert client.route.proxy == proxy.url
    assert libraries(client) == 27
    assert [tunnel.target for tunnel in proxy.tunnels] == [f"{HOSTNAME}:{registry.port}"]


@pytest.mark.usefixtures("network_names")
def test_the_proxys_credentials_are_sent_to_it(registry: Registry, proxy: ConnectProxy,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", f"http://kiosk:s3cret@127.0.0.1:{proxy.port}")
    libraries(registry.client(registry.by_name, ca_file=str(registry.certificate.ca)))
    assert proxy.credentials() == ["kiosk:s3cret"]


@pytest.mark.usefixtures("network_names")
@pytest.mark.parametrize("no_proxy", [HOSTNAME, ".test", "intranet.example, registry.test"])
def test_no_proxy_sends_the_calls_straight(registry: Registry, proxy: ConnectProxy,
                                           monkeypatch: pytest.MonkeyPatch,
                                           no_proxy: str) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert libraries(registry.client(registry.by_name, ca_file=str(registry.certificate.ca))) \
        == 27
    assert proxy.tunnels == []


def test_a_registry_on_this_machine_is_never_reached_through_the_proxy(
        registry: Registry, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    client = registry.client(registry.on_loopback, ca_file=str(registry.certificate.ca))
    assert client.route == network.Route(None, "the registry is on this machine")
    assert libraries(client) == 27
    assert proxy.tunnels == []


@pytest.mark.usefixtures("network_names")
def test_a_proxy_that_is_down_makes_the_registry_unavailable_within_the_deadline(
        registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the tests above: the calls really depend on the proxy."""
    down = ConnectProxy()
    down.close()
    monkeypatch.setenv("HTTPS_PROXY", down.url)
    with pytest.raises(RegistryError) as refused:
        libraries(registry.client(registry.by_name, ca_file=str(registry.certificate.ca)))
    assert refused.value.code == "unavailable"


# --- kiosk doctor ------------------------------------------------------------------------------


def doctor(registry: Registry, url: str, tmp_path: Path, **env: str) -> CliResult:
    return CliRunner().invoke(main, ["doctor", "--instance-path", str(tmp_path / "terminal"),
                                     "--registry-url", url],
                              env={"KIOSK_REGISTRY_TOKEN": registry.token,
                                   **{f"KIOSK_{k}": v for k, v in env.items()}})


def rows(result: CliResult) -> dict[str, tuple[str, str]]:
    out = {}
    for line in result.stdout.splitlines()[1:]:
        name, status, detail = line.split(None, 2)
        out[name] = (status, detail)
    return out


@pytest.mark.usefixtures("clean_kiosk_environment", "network_names")
def test_doctor_says_which_ca_and_which_proxy_and_probes_through_them(
        registry: Registry, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://kiosk:s3cret@127.0.0.1:{proxy.port}")
    result = doctor(registry, registry.by_name, tmp_path,
                    REGISTRY_CA_FILE=str(registry.certificate.ca))
    assert result.exit_code == 0, result.output
    table = rows(result)
    assert table["ca"] == ("OK", f"the system's trust store ({network.system_store()}) + "
                                 f"{registry.certificate.ca}")
    assert table["proxy"] == ("OK", f"{proxy.url} (from HTTPS_PROXY)")
    assert "s3cret" not in result.output
    assert table["registry"][0] == table["token"][0] == table["migrations"][0] == "OK"
    # /healthz, the token's authenticated call, /readyz: each through the proxy
    assert len(proxy.tunnels) >= 2 and set(proxy.credentials()) == {"kiosk:s3cret"}


@pytest.mark.usefixtures("clean_kiosk_environment")
def test_doctor_without_the_ca_file_fails_and_names_the_setting(registry: Registry,
                                                                tmp_path: Path) -> None:
    result = doctor(registry, registry.on_loopback, tmp_path)
    assert result.exit_code == 1
    table = rows(result)
    assert table["proxy"] == ("OK", "none (the registry is on this machine)")
    status, detail = table["registry"]
    assert status == "FAIL" and "certificate is not trusted" in detail, detail
    assert "REGISTRY_CA_FILE" in detail


@pytest.mark.usefixtures("clean_kiosk_environment", "network_names")
def test_doctor_says_when_no_proxy_matches(registry: Registry, proxy: ConnectProxy,
                                           monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", HOSTNAME)
    result = doctor(registry, registry.by_name, tmp_path,
                    REGISTRY_CA_FILE=str(registry.certificate.ca))
    assert result.exit_code == 0, result.output
    assert rows(result)["proxy"] == ("OK", f"none (NO_PROXY matches {HOSTNAME})")
    assert proxy.tunnels == []


@pytest.mark.usefixtures("clean_kiosk_environment", "network_names")
def test_the_proxy_in_the_services_env_file_is_the_one_doctor_checks(
        registry: Registry, proxy: ConnectProxy, tmp_path: Path) -> None:
    """systemd reads HTTPS_PROXY from the terminal's env file: `--env-file` reads it too."""
    env_file = tmp_path / "terminal.env"
    env_file.write_text(f"KIOSK_REGISTRY_URL={registry.by_name}\n"
                        f"KIOSK_REGISTRY_TOKEN={registry.token}\n"
                        f"KIOSK_REGISTRY_CA_FILE={registry.certificate.ca}\n"
                        f"KIOSK_INSTANCE_PATH={tmp_path / 'terminal'}\n"
                        f"HTTPS_PROXY={proxy.url}\n"
                        "no_proxy=intranet.example\n")
    result = CliRunner().invoke(main, ["doctor", "--env-file", str(env_file)], env={})
    assert result.exit_code == 0, result.output
    assert rows(result)["proxy"] == ("OK", f"{proxy.url} (from HTTPS_PROXY)")
    assert len(proxy.tunnels) >= 2
