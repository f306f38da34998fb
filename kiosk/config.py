"""Settings: defaults here, then the instance folder's `kiosk.cfg`, then `KIOSK_*` variables."""

from __future__ import annotations

import logging
import os
import secrets
import ssl
from collections.abc import Iterable, Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .registry.days import BELGIUM
from .registry.domain import RegistryError
from .registry.store import DIRECT, MAX_OVERFLOW, POOL_SIZE, POOLERS

_log = logging.getLogger("kiosk.config")

LANGUAGES = ("nl", "fr", "en")


class Config:
    # Terminal
    DEFAULT_LANGUAGE = "nl"
    LIBRARY_CODE = ""  # the branch this terminal stands in; preselects the home library
    IDLE_WARNING_SECONDS = 60  # no input this long → "Still there?"
    IDLE_COUNTDOWN_SECONDS = 30  # WCAG 2.2.1 wants at least 20 s to answer
    SESSION_MAX_SECONDS = 30 * 60  # absolute limit of one patron's visit
    MIN_AGE = 16
    LOGIN_MAX_FAILURES = 5
    LOGIN_LOCK_MINUTES = 15
    # Registry (embedded default: in-process on SQLite in the instance folder)
    DATABASE_URL = ""
    SEED_DEMO = True
    AUTO_MIGRATE = True  # the embedded default migrates itself; `kiosk registry serve` does not
    # Test-only switch (refused unless TESTING): shows why READ COMMITTED is pinned.
    DATABASE_ISOLATION = "READ COMMITTED"
    # PostgreSQL connections each registry process keeps open, and opens beyond them in a
    # burst (see kiosk.registry.store.POOL_SIZE); "pgbouncer": DATABASE_URL is PgBouncer in
    # transaction pooling mode.
    DATABASE_POOL_SIZE = POOL_SIZE
    DATABASE_MAX_OVERFLOW = MAX_OVERFLOW
    DATABASE_POOLER = DIRECT
    # Terminal → central registry over HTTP (empty: the registry runs in this process)
    REGISTRY_URL = ""
    REGISTRY_TOKEN = ""
    REGISTRY_CONNECT_TIMEOUT = 3  # seconds to open a connection
    REGISTRY_DEADLINE = 8  # seconds a whole call may take, retries included
    # A library network's own CA (PEM), trusted beside the system's store (registry/network.py)
    REGISTRY_CA_FILE = ""
    # Seconds one kiosk page may wait for the registry, all its calls together: a registry
    # that is down, frozen or slow never holds a patron longer (kiosk.registry.request_scope).
    PAGE_BUDGET = 8
    # E-mail notices to patrons through this SMTP server (registry side). Empty SMTP_HOST:
    # mail is off and notices are not even queued.
    SMTP_HOST = ""
    SMTP_PORT = 587
    SMTP_SECURITY = "starttls"  # starttls | ssl | none
    SMTP_USERNAME = ""  # empty: no log-in
    SMTP_PASSWORD = ""
    SMTP_TIMEOUT = 10  # seconds to connect and for each answer of the server
    MAIL_FROM = ""  # e.g. "Online leren met de bib <noreply@bib.example.be>"
    # The registry's address as patrons reach it from home, for links in e-mails (the stop
    # link of the new-course e-mails), e.g. https://kiosk-registry.example.be. Empty: those
    # e-mails are not offered.
    PUBLIC_URL = ""
    # Courses published within this many minutes go out in one e-mail per patron.
    ALERTS_SETTLE_MINUTES = 10
    # The academy's platform over SCIM 2.0 (registry side, kiosk/registry/academy.py). Empty
    # ACADEMY_SCIM_URL: the link is off and nothing is queued.
    ACADEMY_SCIM_URL = ""  # e.g. https://academy.example.be/scim/v2
    ACADEMY_SCIM_TOKEN_FILE = ""  # a file holding the bearer token (never in the config)
    ACADEMY_TIMEOUT = 10  # seconds to connect and for each answer of the platform
    # Served over HTTPS (directly or behind a TLS proxy): Secure, "__Host-" session cookie, HSTS
    HTTPS = False
    # Reverse proxies in front of this app whose X-Forwarded-For/-Proto/-Host are believed
    # (nginx: 1). 0: none, so a client cannot make up its address for the audit log.
    TRUSTED_PROXIES = 0
    # /metrics (Prometheus text format, kiosk/metrics.py) answers only a scraper that sends
    # this bearer token; empty: there is no /metrics (404).
    METRICS_TOKEN = ""
    # Logs: JSON lines (kiosk/logs.py); a file rotates at LOG_MAX_BYTES, keeping LOG_BACKUPS
    LOG_FILE = ""  # empty: stderr (a service manager collects it)
    LOG_MAX_BYTES = 5 * 1024 * 1024
    LOG_BACKUPS = 5
    LOG_LEVEL = "INFO"
    # Flask
    SECRET_KEY = ""
    SESSION_COOKIE_NAME = "kiosk_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    MAX_CONTENT_LENGTH = 64 * 1024
    WTF_CSRF_TIME_LIMIT = SESSION_MAX_SECONDS
    TEMPLATES_AUTO_RELOAD = False
    BABEL_DEFAULT_TIMEZONE = BELGIUM.key  # flask_babel's format_* on patron pages


def _cast(value: str, default: Any) -> Any:
    """Environment values keep the type of the default (no JSON guessing: a numeric secret
    stays a string)."""
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if isinstance(default, int):
        return int(value)
    return value


def instance_folder(explicit: str | None = None) -> str | None:
    """The instance folder (kiosk.cfg, secret key, embedded database): an explicit one, else
    KIOSK_INSTANCE_PATH (a service points it at its state directory), else Flask's default."""
    return explicit or os.environ.get("KIOSK_INSTANCE_PATH") or None


# The standard proxy variables a library network may need (kiosk/registry/network.py), in
# either case: an environment file may set them beside the KIOSK_* settings.
PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """KIOSK_* settings and proxy variables (PROXY_VARIABLES) from a systemd-style environment
    file (`KEY=value` lines, `#` comments, optional quotes): the file the service loads, so
    `kiosk doctor --env-file` checks exactly what the service runs with. Refuses anything
    else with its line number."""
    found: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # Windows editors add a BOM
    except OSError as exc:
        raise SystemExit(f"{path}: {exc.strerror or exc}") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        known = key.startswith("KIOSK_") or key.lower() in PROXY_VARIABLES
        if not sep or not known or not key.replace("_", "").isalnum():
            raise SystemExit(f"{path}, line {number}: expected KIOSK_<SETTING>=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key] = value
    return found


def from_environment(environ: os._Environ[str] | dict[str, str] = os.environ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in dir(Config):
        if key.isupper() and f"KIOSK_{key}" in environ:
            raw = environ[f"KIOSK_{key}"]
            try:
                out[key] = _cast(raw, getattr(Config, key))
            except ValueError as exc:
                raise SystemExit(f"KIOSK_{key}: {exc}") from None
    return out


# Why a registry outside the demo refuses to start (`kiosk registry serve`) and `kiosk doctor`
# fails without SECRET_KEY in its settings: a key made in the instance folder is this host's
# alone, and a staff log-in signed by one registry host would be refused by the next.
SHARED_SECRET_KEY_MISSING = (
    "the registry needs its secret key in its settings (KIOSK_SECRET_KEY in "
    "/etc/kiosk/registry.env), the same on every registry host: staff log-ins and forms are "
    "signed with it, and a key made by one host is not known to another. Make one with: "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'")


def instance_secret_key(instance_path: Path) -> str:
    """A secret key made on first run and kept in the instance folder (mode 0600)."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def apply_https(config: dict[str, Any]) -> None:
    """Over HTTPS the session cookie is Secure and `__Host-` prefixed: only this host, only
    over TLS, not settable by a sibling subdomain (a library's other web apps)."""
    if config["HTTPS"]:
        config["SESSION_COOKIE_SECURE"] = True
        config["SESSION_COOKIE_PATH"] = "/"
        config["SESSION_COOKIE_DOMAIN"] = False  # __Host- forbids a Domain attribute
        if not config["SESSION_COOKIE_NAME"].startswith("__Host-"):
            config["SESSION_COOKIE_NAME"] = "__Host-" + config["SESSION_COOKIE_NAME"]
        config["PREFERRED_URL_SCHEME"] = "https"


# Kinds of the settings a kiosk.cfg can get wrong (Python syntax: `HTTPS = "false"` is a
# truthy string); the environment is already cast by `_cast`.
_WHOLE_NUMBERS = ("IDLE_WARNING_SECONDS", "IDLE_COUNTDOWN_SECONDS", "SESSION_MAX_SECONDS",
                  "MIN_AGE", "LOGIN_MAX_FAILURES", "LOGIN_LOCK_MINUTES", "SMTP_PORT",
                  "ALERTS_SETTLE_MINUTES",
                  "LOG_MAX_BYTES", "LOG_BACKUPS")
# Whole numbers that may be 0, checked with their own bounds.
_COUNTS = ("DATABASE_POOL_SIZE", "DATABASE_MAX_OVERFLOW")
_NUMBERS = ("REGISTRY_CONNECT_TIMEOUT", "REGISTRY_DEADLINE", "PAGE_BUDGET", "SMTP_TIMEOUT",
            "ACADEMY_TIMEOUT")
_FLAGS = ("SEED_DEMO", "AUTO_MIGRATE", "HTTPS")
_TEXTS = ("DEFAULT_LANGUAGE", "LIBRARY_CODE", "DATABASE_URL", "REGISTRY_URL", "REGISTRY_TOKEN",
          "SMTP_HOST", "SMTP_SECURITY", "SMTP_USERNAME", "SMTP_PASSWORD", "MAIL_FROM",
          "LOG_FILE", "LOG_LEVEL", "ACADEMY_SCIM_URL", "ACADEMY_SCIM_TOKEN_FILE",
          "REGISTRY_CA_FILE", "METRICS_TOKEN",
          "DATABASE_POOLER", "PUBLIC_URL")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MIN_LOG_BYTES = 64 * 1024  # smaller, a busy morning rotates the evidence away (tests: less)
SMTP_SECURITY = ("starttls", "ssl", "none")
MIN_COUNTDOWN = 20  # WCAG 2.2.1: at least 20 s to answer "Are you still there?"
DATABASE_DRIVERS = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")
MAX_TRUSTED_PROXIES = 5  # more proxies in a row than this is a typo, not a network
MIN_METRICS_TOKEN = 32  # token_urlsafe(32) makes 43: long enough that guessing is hopeless
MAX_POOL = 50  # connections of one process: more is a typo (each costs PostgreSQL memory)


def check(config: Mapping[str, Any]) -> None:
    """Refuse at start what would otherwise fail later in front of a patron.

    Every refusal is a SystemExit with a one-line reason naming the setting. The token and
    the library code need the registry: `check_registry_at_start` and `kiosk doctor`.
    """
    _check_types(config)
    if config["DEFAULT_LANGUAGE"] not in LANGUAGES:
        raise SystemExit(f"DEFAULT_LANGUAGE must be one of {', '.join(LANGUAGES)}, "
                         f"got {config['DEFAULT_LANGUAGE']!r}")
    _check_timings(config)
    if not config.get("TESTING") and config["DATABASE_ISOLATION"] != "READ COMMITTED":
        raise SystemExit("DATABASE_ISOLATION may only change in tests")
    _check_registry_url(config)
    _check_public_url(config["PUBLIC_URL"])
    _check_ca_file(config["REGISTRY_CA_FILE"])
    _check_trusted_proxies(config["TRUSTED_PROXIES"])
    _check_database_url(config["DATABASE_URL"])
    _check_database_pool(config)
    _check_mail(config)
    _check_academy(config)
    _check_metrics_token(config["METRICS_TOKEN"])
    _check_logs(config)


def _check_types(config: Mapping[str, Any]) -> None:
    for key in _WHOLE_NUMBERS + _NUMBERS:
        value = config[key]
        kinds: tuple[type, ...] = (int,) if key in _WHOLE_NUMBERS else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = "a whole number" if key in _WHOLE_NUMBERS else "a number"
            raise SystemExit(f"{key} must be {kind}, got {value!r}")
    for key in _COUNTS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise SystemExit(f"{key} must be a whole number, got {value!r}")
    for key in _FLAGS:
        if not isinstance(config[key], bool):
            raise SystemExit(f"{key} must be True or False, got {config[key]!r}")
    for key in _TEXTS:
        if not isinstance(config[key], str):
            raise SystemExit(f"{key} must be text, got {config[key]!r}")


def _check_timings(config: Mapping[str, Any]) -> None:
    for key in _WHOLE_NUMBERS + _NUMBERS:
        if config[key] <= 0:
            raise SystemExit(f"{key} must be a positive number, got {config[key]!r}")
    # Tests shorten the dialog to seconds; a real kiosk must leave time to answer it.
    if config["IDLE_COUNTDOWN_SECONDS"] < MIN_COUNTDOWN and not config.get("TESTING"):
        raise SystemExit(f"IDLE_COUNTDOWN_SECONDS must be at least {MIN_COUNTDOWN} "
                         f"(WCAG 2.2.1), got {config['IDLE_COUNTDOWN_SECONDS']}")
    # Otherwise the absolute limit wipes a visit before (or while) the dialog warns of it.
    idle = config["IDLE_WARNING_SECONDS"] + config["IDLE_COUNTDOWN_SECONDS"]
    if idle > config["SESSION_MAX_SECONDS"]:
        raise SystemExit(f"IDLE_WARNING_SECONDS + IDLE_COUNTDOWN_SECONDS ({idle} s) must not "
                         f"exceed SESSION_MAX_SECONDS ({config['SESSION_MAX_SECONDS']} s)")


def _check_public_url(url: str) -> None:
    """The registry's address for links in e-mails: empty, or http(s)://host[:port][/path]."""
    url = url.strip()
    if not url:
        return
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query \
            or parsed.fragment:
        raise SystemExit(f"PUBLIC_URL must be http(s)://host[:port][/path], got {url!r}")


def _check_registry_url(config: Mapping[str, Any]) -> None:
    url, token = config["REGISTRY_URL"].strip(), config["REGISTRY_TOKEN"].strip()
    if not url:
        if token:  # a forgotten URL would silently run a private registry on this PC
            raise SystemExit("REGISTRY_TOKEN is set but REGISTRY_URL is empty "
                             "(this terminal would run its own registry)")
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SystemExit(f"REGISTRY_URL must start with http:// or https://, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise SystemExit(f"REGISTRY_URL has a bad port: {url!r}") from None
    if not parts.hostname:
        raise SystemExit(f"REGISTRY_URL has no host: {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise SystemExit("REGISTRY_URL must be scheme://host[:port][/path] (no query, "
                         "fragment or credentials)")
    if not token:
        raise SystemExit("REGISTRY_URL needs REGISTRY_TOKEN (from `kiosk registry add-terminal`)")


def _check_ca_file(path: str) -> None:
    """A CA file that cannot be used would fail every registry call, not the start."""
    if not path.strip():
        return
    try:
        ssl.create_default_context(cafile=path.strip())
    except OSError as exc:  # ssl.SSLError (no certificate in it) is an OSError too
        why = "no PEM certificate in it" if isinstance(exc, ssl.SSLError) else exc.strerror
        raise SystemExit(f"REGISTRY_CA_FILE {path}: {why}") from None


def _check_trusted_proxies(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value <= MAX_TRUSTED_PROXIES:
        raise SystemExit(f"TRUSTED_PROXIES must be a whole number from 0 (no proxy in front) "
                         f"to {MAX_TRUSTED_PROXIES}, got {value!r}")


def _check_academy(config: Mapping[str, Any]) -> None:
    """The SCIM link, checked only when it is on (ACADEMY_SCIM_URL set): a URL, and a token
    file that can be read (its content is never shown)."""
    url = config["ACADEMY_SCIM_URL"].strip()
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.username or parts.password:
        raise SystemExit(f"ACADEMY_SCIM_URL must be http(s)://host[:port]/path, got {url!r}")
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not loopback:
        raise SystemExit("ACADEMY_SCIM_URL must use https:// (the token would travel in "
                         "clear text)")
    token_file = config["ACADEMY_SCIM_TOKEN_FILE"].strip()
    if not token_file:
        raise SystemExit("ACADEMY_SCIM_URL needs ACADEMY_SCIM_TOKEN_FILE (a file holding "
                         "the platform's bearer token)")
    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SystemExit(f"ACADEMY_SCIM_TOKEN_FILE cannot be read: {exc.strerror}") from None
    if not token:
        raise SystemExit("ACADEMY_SCIM_TOKEN_FILE is empty")


def _check_metrics_token(token: str) -> None:
    """A token that a scraper sends in a header: printable ASCII, no spaces, and too long to
    guess (/metrics may be reached through the public TLS front). The value is never shown."""
    if not token:
        return
    if not all("!" <= ch <= "~" for ch in token):
        raise SystemExit("METRICS_TOKEN must be printable ASCII without spaces")
    if len(token) < MIN_METRICS_TOKEN:
        raise SystemExit(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN} characters; "
                         "make one with: python3 -c 'import secrets; "
                         "print(secrets.token_urlsafe(32))'")


def _check_mail(config: Mapping[str, Any]) -> None:
    """The SMTP settings, checked only when mail is on (SMTP_HOST set)."""
    host = config["SMTP_HOST"].strip()
    if not host:
        return
    if any(c in host for c in " /:@") or host != config["SMTP_HOST"]:
        raise SystemExit(f"SMTP_HOST must be a host name or address (the port goes in "
                         f"SMTP_PORT), got {config['SMTP_HOST']!r}")
    if config["SMTP_PORT"] > 65535:
        raise SystemExit(f"SMTP_PORT must be at most 65535, got {config['SMTP_PORT']}")
    if config["SMTP_SECURITY"] not in SMTP_SECURITY:
        raise SystemExit(f"SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY)}, "
                         f"got {config['SMTP_SECURITY']!r}")
    if bool(config["SMTP_USERNAME"]) != bool(config["SMTP_PASSWORD"]):
        raise SystemExit("SMTP_USERNAME and SMTP_PASSWORD go together (set both or neither)")
    loopback = host in ("localhost", "127.0.0.1", "::1")
    if config["SMTP_USERNAME"] and config["SMTP_SECURITY"] == "none" and not loopback:
        raise SystemExit("SMTP_SECURITY none would send SMTP_PASSWORD in clear text: "
                         "use starttls or ssl")
    address = parseaddr(config["MAIL_FROM"])[1]
    if not config["MAIL_FROM"].strip():
        raise SystemExit("SMTP_HOST needs MAIL_FROM (the sender's address, e.g. "
                         "noreply@bib.example.be)")
    if "@" not in address or any(c.isspace() for c in address):
        raise SystemExit(f"MAIL_FROM must be an e-mail address, got {config['MAIL_FROM']!r}")


def _check_logs(config: Mapping[str, Any]) -> None:
    """A log file that cannot be written would fail the first request, not the start."""
    if config["LOG_LEVEL"].strip().upper() not in LOG_LEVELS:
        raise SystemExit(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                         f"got {config['LOG_LEVEL']!r}")
    if config["LOG_MAX_BYTES"] < MIN_LOG_BYTES and not config.get("TESTING"):
        raise SystemExit(f"LOG_MAX_BYTES must be at least {MIN_LOG_BYTES} "
                         f"(64 KiB), got {config['LOG_MAX_BYTES']}")
    path = config["LOG_FILE"].strip()
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise SystemExit(f"LOG_FILE must be a file, {path} is a folder")
    existing = target.parent  # the start makes missing folders: the nearest one must be ours
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SystemExit(f"LOG_FILE {path}: {existing} is not a folder")
    writable = os.access(target, os.W_OK) if target.exists() else os.access(existing, os.W_OK)
    if not writable:
        raise SystemExit(f"LOG_FILE {path}: no permission to write there")


def _check_database_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # never echo it: it may hold a password
        raise SystemExit("DATABASE_URL is not a database URL "
                         "(e.g. postgresql://kiosk@db/kiosk or sqlite:///path)") from None
    if parsed.drivername not in DATABASE_DRIVERS:
        raise SystemExit(f"DATABASE_URL must be sqlite or postgresql, got {parsed.drivername!r}")
    if parsed.drivername == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        if not folder.is_dir():  # SQLite would only say "unable to open database file"
            raise SystemExit(f"DATABASE_URL: folder {folder} does not exist")


def _check_database_pool(config: Mapping[str, Any]) -> None:
    if not 1 <= config["DATABASE_POOL_SIZE"] <= MAX_POOL:
        raise SystemExit(f"DATABASE_POOL_SIZE must be a whole number from 1 to {MAX_POOL}, "
                         f"got {config['DATABASE_POOL_SIZE']!r}")
    if not 0 <= config["DATABASE_MAX_OVERFLOW"] <= MAX_POOL:
        raise SystemExit(f"DATABASE_MAX_OVERFLOW must be a whole number from 0 to {MAX_POOL}, "
                         f"got {config['DATABASE_MAX_OVERFLOW']!r}")
    if config["DATABASE_POOLER"] not in POOLERS:
        raise SystemExit(f"DATABASE_POOLER must be {' or '.join(POOLERS)} (PgBouncer in "
                         f"transaction pooling mode), got {config['DATABASE_POOLER']!r}")


def library_codes(institutions: Iterable[Any]) -> set[str]:
    return {library.code for institution in institutions for library in institution.libraries}


def check_registry_at_start(config: Mapping[str, Any], registry: Any) -> None:
    """LIBRARY_CODE and, over HTTP, REGISTRY_TOKEN against the registry, at start: one
    authenticated call. A token the registry refuses (revoked, unknown) or a library it does
    not know stops the start with its one-line reason. A registry that does not answer does
    not: the terminal starts, says so calmly to patrons and retries (it may be the network
    coming up after the PC). A registry with no libraries yet has nothing to check against."""
    code, url = config["LIBRARY_CODE"], config.get("REGISTRY_URL")
    if not code and not url:
        return
    try:
        codes = library_codes(registry.institutions())
    except RegistryError as error:
        if error.code == "terminal_revoked":
            raise SystemExit("REGISTRY_TOKEN was revoked at the registry (issue a new one: "
                             "kiosk registry add-terminal)") from None
        if error.code == "terminal_unauthorized":
            raise SystemExit(f"REGISTRY_TOKEN is not accepted by the registry at {url}") from None
        _log.warning("registry not reachable at start (%s): token and LIBRARY_CODE not "
                     "checked; the kiosk retries", error.code)
        return
    if code and codes and code not in codes:
        raise SystemExit(f"LIBRARY_CODE {code!r} is not a library in the registry")
