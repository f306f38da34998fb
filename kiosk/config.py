"""Settings: defaults here, then the instance folder's `kiosk.cfg`, then `KIOSK_*` variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

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
    # Test-only switches (refused unless TESTING): prove the guard and the isolation matter.
    REGISTRY_GUARD = True
    DATABASE_ISOLATION = "READ COMMITTED"
    # Terminal → central registry over HTTP (empty: the registry runs in this process)
    REGISTRY_URL = ""
    REGISTRY_TOKEN = ""
    REGISTRY_CONNECT_TIMEOUT = 3  # seconds to open a connection
    REGISTRY_DEADLINE = 8  # seconds a whole call may take, retries included
    # Served over HTTPS (directly or behind a TLS proxy): Secure, "__Host-" session cookie, HSTS
    HTTPS = False
    # Flask
    SECRET_KEY = ""
    SESSION_COOKIE_NAME = "kiosk_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    MAX_CONTENT_LENGTH = 64 * 1024
    WTF_CSRF_TIME_LIMIT = SESSION_MAX_SECONDS
    TEMPLATES_AUTO_RELOAD = False
    BABEL_DEFAULT_TIMEZONE = "Europe/Brussels"


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


def check(config: dict[str, Any]) -> None:
    """Refuse at start what would otherwise fail later in front of a patron."""
    if config["DEFAULT_LANGUAGE"] not in LANGUAGES:
        raise SystemExit(f"DEFAULT_LANGUAGE must be one of {', '.join(LANGUAGES)}")
    if config["IDLE_COUNTDOWN_SECONDS"] < 20 and not config.get("TESTING"):
        raise SystemExit("IDLE_COUNTDOWN_SECONDS must be at least 20 (WCAG 2.2.1)")
    if not config.get("TESTING") and (
        not config["REGISTRY_GUARD"] or config["DATABASE_ISOLATION"] != "READ COMMITTED"
    ):
        raise SystemExit("REGISTRY_GUARD and DATABASE_ISOLATION may only change in tests")
    for key in ("IDLE_WARNING_SECONDS", "SESSION_MAX_SECONDS", "MIN_AGE"):
        if config[key] <= 0:
            raise SystemExit(f"{key} must be a positive number")
