"""How a terminal reaches its central registry on a library's network: the certificate
authorities it trusts and the HTTPS proxy it goes through. The terminal's client
(`kiosk.registry.http_client`) and `kiosk doctor` both use this, so doctor probes the registry
the way the terminal does and reports what it uses.

Trust: the operating system's store (through truststore: Windows' and macOS's own store, the
distribution's bundle on Linux), plus `REGISTRY_CA_FILE` when set (a library network's own
CA, in PEM). A Linux machine with no CA bundle at all falls back to certifi's, the list
requests ships with. Nothing of requests' own (certifi, `REQUESTS_CA_BUNDLE`) is added.

Proxy: the standard variables as requests reads them (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`,
upper or lower case; on Windows, the system's proxy settings when no variable is set). A
registry on this machine (localhost, 127.0.0.0/8, ::1) is always reached directly.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from urllib.request import getproxies

import certifi
import requests
import truststore
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, select_proxy

# Where Linux distributions keep the system's CA bundle when OpenSSL's own default is not
# there (the same places truststore looks).
_LINUX_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # Fedora, RHEL
    "/etc/pki/tls/cert.pem",
    "/etc/ssl/cert.pem",  # Alpine, Arch
    "/etc/ssl/ca-bundle.pem",  # SUSE
)


def system_store() -> str | None:
    """The operating system's trust store, named for a report; None when there is none."""
    if sys.platform == "win32":
        return "the Windows certificate store"
    if sys.platform == "darwin":
        return "the macOS keychain"
    paths = ssl.get_default_verify_paths()
    if paths.cafile:
        return paths.cafile
    if paths.capath and os.path.isdir(paths.capath) and any(
            name.endswith(".0") for name in os.listdir(paths.capath)):
        return paths.capath
    return next((path for path in _LINUX_BUNDLES if os.path.isfile(path)), None)


def ssl_context(ca_file: str = "") -> ssl.SSLContext:
    """What the terminal trusts: the system store (or certifi's list without one) and
    `ca_file`. Raises OSError or ssl.SSLError for a CA file that cannot be used."""
    context: ssl.SSLContext
    if system_store() is not None:
        context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    if ca_file.strip():
        context.load_verify_locations(cafile=ca_file.strip())
    return context


def trust_report(ca_file: str = "") -> str:
    """Which CAs the terminal trusts, in words."""
    store = system_store()
    base = (f"the system's trust store ({store})" if store is not None
            else f"the bundled certifi list ({certifi.where()}): no system trust store found")
    return f"{base} + {ca_file.strip()}" if ca_file.strip() else base


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Route:
    """How calls to one URL go: through `proxy` (a URL, None: directly), and why."""

    proxy: str | None
    why: str

    def shown(self) -> str:
        """The proxy without its credentials, for logs and doctor."""
        if self.proxy is None:
            return "none"
        parts = urlsplit(self.proxy if "://" in self.proxy else f"http://{self.proxy}")
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def route(url: str) -> Route:
    """The proxy for `url` from the standard variables (or Windows' settings), never for a
    registry on this machine. Read once per client: a service's environment does not change."""
    host = urlsplit(url).hostname or ""
    if is_loopback(host):
        return Route(None, "the registry is on this machine")
    proxy = select_proxy(url, get_environ_proxies(url, no_proxy=None))
    if proxy:
        return Route(proxy, _proxy_source(urlsplit(url).scheme))
    if select_proxy(url, getproxies()):
        return Route(None, f"NO_PROXY matches {host}")
    return Route(None, "no proxy set")


def _proxy_source(scheme: str) -> str:
    for name in (f"{scheme}_proxy", "all_proxy"):
        for variable in (name, name.upper()):
            if os.environ.get(variable):
                return variable
    return "the system's proxy settings"


def route_report(url: str) -> str:
    chosen = route(url)
    if chosen.proxy is None:
        return f"none ({chosen.why})"
    return f"{chosen.shown()} (from {chosen.why})"


class TrustingAdapter(HTTPAdapter):
    """A requests adapter whose TLS trusts exactly `context` (towards the registry and an
    HTTPS proxy alike): requests would otherwise add certifi's bundle to any context."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self.ssl_context = context  # before super().__init__, which makes the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, ssl_context=self.ssl_context, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        kwargs.setdefault("ssl_context", self.ssl_context)
        kwargs.setdefault("proxy_ssl_context", self.ssl_context)
        return super().proxy_manager_for(proxy, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


def configure(session: requests.Session, url: str, adapter: TrustingAdapter) -> Route:
    """`session` set to reach `url` as the terminal does: `adapter` for both schemes, the
    route's proxy and nothing else from the environment (no ~/.netrc, no REQUESTS_CA_BUNDLE)."""
    chosen = route(url)
    session.trust_env = False
    session.proxies = {"http": chosen.proxy, "https": chosen.proxy} if chosen.proxy else {}
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return chosen


def session_for(url: str, ca_file: str = "") -> requests.Session:
    """A plain session as the terminal reaches `url` (doctor's unauthenticated probes)."""
    session = requests.Session()
    configure(session, url, TrustingAdapter(ssl_context(ca_file)))
    return session


_HOSTNAME_MISMATCH = 62  # OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH


def certificate_refusal(exc: BaseException) -> str | None:
    """Why the registry's certificate was refused, in words, when that is what `exc` (as
    requests or urllib3 raised it) comes down to; None for any other failure (other TLS
    errors too: a socket cut at the deadline mid-handshake is an outage, not a setting)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            if current.verify_code == _HOSTNAME_MISMATCH:
                return (f"the registry's certificate is for another name "
                        f"({current.verify_message}): check the host in REGISTRY_URL")
            return (f"the registry's certificate is not trusted ({current.verify_message}): "
                    f"set REGISTRY_CA_FILE to the CA file of the library network")
        todo += [*current.args, getattr(current, "reason", None), current.__cause__,
                 current.__context__]
    return None
