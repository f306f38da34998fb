"""Start-up refuses a bad configuration with a one-line reason (SystemExit), whatever its
source: create_app overrides, KIOSK_* variables or the instance kiosk.cfg."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.app import create_app

LANGS = "nl, fr, en"
URL = "https://registry.example.be"


def _case(source: str, settings: dict[str, object], message: str, id: str):  # type: ignore[no-untyped-def]  # noqa: A002
    return pytest.param(source, settings, message, id=id)


CASES = [
    # language
    _case("override", {"DEFAULT_LANGUAGE": "de"},
          f"DEFAULT_LANGUAGE must be one of {LANGS}, got 'de'", "language-unsupported"),
    _case("cfg", {"DEFAULT_LANGUAGE": "NL"},
          f"DEFAULT_LANGUAGE must be one of {LANGS}, got 'NL'", "language-uppercase-in-cfg"),
    # kinds: kiosk.cfg is Python, so a quoted number or flag is text
    _case("cfg", {"IDLE_WARNING_SECONDS": "60"},
          "IDLE_WARNING_SECONDS must be a whole number, got '60'", "warning-text-in-cfg"),
    _case("cfg", {"HTTPS": "false"},
          "HTTPS must be True or False, got 'false'", "https-text-in-cfg"),
    _case("cfg", {"LIBRARY_CODE": 12},
          "LIBRARY_CODE must be text, got 12", "library-code-number-in-cfg"),
    _case("env", {"MIN_AGE": "sixteen"},
          "KIOSK_MIN_AGE: invalid literal for int() with base 10: 'sixteen'", "min-age-env-text"),
    _case("env", {"SEED_DEMO": "maybe"},
          "KIOSK_SEED_DEMO: expected true or false, got 'maybe'", "seed-demo-env-not-flag"),
    # timings and limits
    _case("override", {"IDLE_WARNING_SECONDS": 0},
          "IDLE_WARNING_SECONDS must be a positive number, got 0", "warning-zero"),
    _case("override", {"SESSION_MAX_SECONDS": -5},
          "SESSION_MAX_SECONDS must be a positive number, got -5", "session-max-negative"),
    _case("env", {"IDLE_COUNTDOWN_SECONDS": "0"},
          "IDLE_COUNTDOWN_SECONDS must be a positive number, got 0", "countdown-zero-env"),
    _case("override", {"IDLE_COUNTDOWN_SECONDS": 10},
          "IDLE_COUNTDOWN_SECONDS must be at least 20 (WCAG 2.2.1), got 10", "countdown-under-20"),
    _case("override", {"IDLE_WARNING_SECONDS": 1800},
          "IDLE_WARNING_SECONDS + IDLE_COUNTDOWN_SECONDS (1830 s) must not exceed "
          "SESSION_MAX_SECONDS (1800 s)", "warning-longer-than-session"),
    _case("override", {"SESSION_MAX_SECONDS": 60},
          "IDLE_WARNING_SECONDS + IDLE_COUNTDOWN_SECONDS (90 s) must not exceed "
          "SESSION_MAX_SECONDS (60 s)", "session-shorter-than-idle-dialog"),
    _case("override", {"MIN_AGE": 0}, "MIN_AGE must be a positive number, got 0", "min-age-zero"),
    _case("override", {"LOGIN_MAX_FAILURES": 0},
          "LOGIN_MAX_FAILURES must be a positive number, got 0", "login-failures-zero"),
    _case("override", {"LOGIN_LOCK_MINUTES": -1},
          "LOGIN_LOCK_MINUTES must be a positive number, got -1", "lock-minutes-negative"),
    _case("override", {"REGISTRY_DEADLINE": 0},
          "REGISTRY_DEADLINE must be a positive number, got 0", "deadline-zero"),
    _case("cfg", {"REGISTRY_CONNECT_TIMEOUT": -0.5},
          "REGISTRY_CONNECT_TIMEOUT must be a positive number, got -0.5", "connect-negative"),
    _case("override", {"DATABASE_ISOLATION": "REPEATABLE READ"},
          "DATABASE_ISOLATION may only change in tests", "isolation-changed"),
    # the central registry
    _case("override", {"REGISTRY_URL": "ftp://registry.example.be", "REGISTRY_TOKEN": "kt_x"},
          "REGISTRY_URL must start with http:// or https://, got 'ftp://registry.example.be'",
          "registry-url-ftp"),
    _case("env", {"REGISTRY_URL": "registry.example.be", "REGISTRY_TOKEN": "kt_x"},
          "REGISTRY_URL must start with http:// or https://, got 'registry.example.be'",
          "registry-url-no-scheme"),
    _case("override", {"REGISTRY_URL": "https://", "REGISTRY_TOKEN": "kt_x"},
          "REGISTRY_URL has no host: 'https://'", "registry-url-no-host"),
    _case("override", {"REGISTRY_URL": "https://:8000/api/v1", "REGISTRY_TOKEN": "kt_x"},
          "REGISTRY_URL has no host: 'https://:8000/api/v1'", "registry-url-port-no-host"),
    _case("override", {"REGISTRY_URL": f"{URL}:99999", "REGISTRY_TOKEN": "kt_x"},
          f"REGISTRY_URL has a bad port: '{URL}:99999'", "registry-url-bad-port"),
    _case("override", {"REGISTRY_URL": f"{URL}/?token=kt_x", "REGISTRY_TOKEN": "kt_x"},
          "REGISTRY_URL must be scheme://host[:port][/path] (no query, fragment or "
          "credentials)", "registry-url-query"),
    _case("env", {"REGISTRY_URL": URL},
          "REGISTRY_URL needs REGISTRY_TOKEN (from `kiosk registry add-terminal`)",
          "registry-url-without-token"),
    _case("override", {"REGISTRY_URL": URL, "REGISTRY_TOKEN": "   "},
          "REGISTRY_URL needs REGISTRY_TOKEN (from `kiosk registry add-terminal`)",
          "registry-token-blank"),
    _case("env", {"REGISTRY_TOKEN": "kt_x"},
          "REGISTRY_TOKEN is set but REGISTRY_URL is empty (this terminal would run its own "
          "registry)", "registry-token-without-url"),
    # the registry database
    _case("override", {"DATABASE_URL": "kiosk@db/kiosk"},
          "DATABASE_URL is not a database URL (e.g. postgresql://kiosk@db/kiosk or "
          "sqlite:///path)", "database-url-garbage"),
    _case("env", {"DATABASE_URL": "postgresql://kiosk:s3cret@db:notaport/kiosk"},
          "DATABASE_URL is not a database URL (e.g. postgresql://kiosk@db/kiosk or "
          "sqlite:///path)", "database-url-bad-port-password-not-echoed"),
    _case("override", {"DATABASE_URL": "mysql://kiosk@db/kiosk"},
          "DATABASE_URL must be sqlite or postgresql, got 'mysql'", "database-url-mysql"),
    _case("override", {"DATABASE_URL": "sqlite:////nonexistent-kiosk-folder/registry.sqlite3"},
          "DATABASE_URL: folder /nonexistent-kiosk-folder does not exist",
          "database-url-sqlite-folder-missing"),
    _case("env", {"DATABASE_POOL_SIZE": "0"},
          "DATABASE_POOL_SIZE must be a whole number from 1 to 50, got 0", "pool-size-zero"),
    _case("cfg", {"DATABASE_POOL_SIZE": "4"},
          "DATABASE_POOL_SIZE must be a whole number, got '4'", "pool-size-text-in-cfg"),
    _case("override", {"DATABASE_MAX_OVERFLOW": -1},
          "DATABASE_MAX_OVERFLOW must be a whole number from 0 to 50, got -1",
          "max-overflow-negative"),
    _case("env", {"DATABASE_MAX_OVERFLOW": "200"},
          "DATABASE_MAX_OVERFLOW must be a whole number from 0 to 50, got 200",
          "max-overflow-typo"),
    _case("env", {"DATABASE_POOLER": "pgpool"},
          "DATABASE_POOLER must be none or pgbouncer (PgBouncer in transaction pooling "
          "mode), got 'pgpool'", "pooler-unknown"),
    # e-mail notices (checked only when SMTP_HOST is set)
    _case("override", {"SMTP_HOST": "smtp.example.be:587", "MAIL_FROM": "bib@example.be"},
          "SMTP_HOST must be a host name or address (the port goes in SMTP_PORT), got "
          "'smtp.example.be:587'", "smtp-host-with-port"),
    _case("env", {"SMTP_HOST": "smtp.example.be", "SMTP_PORT": "0",
                  "MAIL_FROM": "bib@example.be"},
          "SMTP_PORT must be a positive number, got 0", "smtp-port-zero"),
    _case("override", {"SMTP_HOST": "smtp.example.be", "SMTP_PORT": 70000,
                       "MAIL_FROM": "bib@example.be"},
          "SMTP_PORT must be at most 65535, got 70000", "smtp-port-too-big"),
    _case("cfg", {"SMTP_HOST": "smtp.example.be", "SMTP_PORT": "587"},
          "SMTP_PORT must be a whole number, got '587'", "smtp-port-text-in-cfg"),
    _case("override", {"SMTP_HOST": "smtp.example.be", "SMTP_SECURITY": "tls",
                       "MAIL_FROM": "bib@example.be"},
          "SMTP_SECURITY must be one of starttls, ssl, none, got 'tls'", "smtp-security-unknown"),
    _case("override", {"SMTP_HOST": "smtp.example.be", "SMTP_USERNAME": "bib",
                       "MAIL_FROM": "bib@example.be"},
          "SMTP_USERNAME and SMTP_PASSWORD go together (set both or neither)",
          "smtp-username-without-password"),
    _case("override", {"SMTP_HOST": "smtp.example.be", "SMTP_SECURITY": "none",
                       "SMTP_USERNAME": "bib", "SMTP_PASSWORD": "s3cret",
                       "MAIL_FROM": "bib@example.be"},
          "SMTP_SECURITY none would send SMTP_PASSWORD in clear text: use starttls or ssl",
          "smtp-password-in-clear"),
    _case("env", {"SMTP_HOST": "smtp.example.be"},
          "SMTP_HOST needs MAIL_FROM (the sender's address, e.g. noreply@bib.example.be)",
          "smtp-without-mail-from"),
    _case("override", {"SMTP_HOST": "smtp.example.be", "MAIL_FROM": "Online leren met de bib"},
          "MAIL_FROM must be an e-mail address, got 'Online leren met de bib'",
          "mail-from-no-address"),
    _case("cfg", {"SMTP_TIMEOUT": 0}, "SMTP_TIMEOUT must be a positive number, got 0",
          "smtp-timeout-zero"),
    # /metrics' bearer token (never echoed)
    _case("env", {"METRICS_TOKEN": "s3cret"},
          "METRICS_TOKEN must be at least 32 characters; make one with: python3 -c 'import "
          "secrets; print(secrets.token_urlsafe(32))'", "metrics-token-short"),
    _case("override", {"METRICS_TOKEN": "s3cret " + "x" * 40},
          "METRICS_TOKEN must be printable ASCII without spaces", "metrics-token-space"),
    # logs
    _case("cfg", {"LOG_MAX_BYTES": "5MB"}, "LOG_MAX_BYTES must be a whole number, got '5MB'",
          "log-max-bytes-text-in-cfg"),
    _case("override", {"LOG_MAX_BYTES": 1000},
          "LOG_MAX_BYTES must be at least 65536 (64 KiB), got 1000", "log-max-bytes-tiny"),
    _case("env", {"LOG_BACKUPS": "0"}, "LOG_BACKUPS must be a positive number, got 0",
          "log-backups-zero"),
    _case("override", {"LOG_LEVEL": "VERBOSE"},
          "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'VERBOSE'", "log-level"),
    _case("override", {"LOG_FILE": "/etc/hostname/logs/terminal.log"},
          "LOG_FILE /etc/hostname/logs/terminal.log: /etc/hostname is not a folder",
          "log-file-under-a-file"),
    _case("env", {"LOG_FILE": "/tmp"}, "LOG_FILE must be a file, /tmp is a folder",
          "log-file-is-a-folder"),
    # the library: checked against the embedded registry at start
    _case("override", {"LIBRARY_CODE": "NOPE-NOWHERE"},
          "LIBRARY_CODE 'NOPE-NOWHERE' is not a library in the registry", "library-code-unknown"),
]


@pytest.fixture(autouse=True)
def _no_kiosk_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own KIOSK_* variables must not leak into the table."""
    import os

    for key in list(os.environ):
        if key.startswith("KIOSK_"):
            monkeypatch.delenv(key)


def _base(tmp_path: Path) -> dict[str, object]:
    # Deliberately not TESTING: the refusals a real start meets.
    return {"SECRET_KEY": "test-secret", "DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}"}


def _start(tmp_path: Path, source: str, settings: dict[str, object],
           monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    overrides = _base(tmp_path)
    if source == "override":
        overrides.update(settings)
    elif source == "env":
        for key, value in settings.items():
            overrides.pop(key, None)
            monkeypatch.setenv(f"KIOSK_{key}", str(value))
    else:  # the instance folder's kiosk.cfg, read before the environment and the overrides
        lines = [f"{key} = {value!r}" for key, value in settings.items()]
        (tmp_path / "kiosk.cfg").write_text("\n".join(lines) + "\n")
    return create_app(overrides, instance_path=str(tmp_path))


@pytest.mark.parametrize(("source", "settings", "message"), CASES)
def test_bad_config_is_refused_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             source: str, settings: dict[str, object],
                                             message: str) -> None:
    with pytest.raises(SystemExit) as refused:
        _start(tmp_path, source, settings, monkeypatch)
    reason = str(refused.value)
    assert reason == message
    assert "\n" not in reason
    assert "s3cret" not in reason


@pytest.mark.parametrize(("source", "settings"), [
    pytest.param("override", {}, id="defaults"),
    pytest.param("cfg", {"DEFAULT_LANGUAGE": "fr", "LIBRARY_CODE": "ANT-PERMEKE",
                         "IDLE_WARNING_SECONDS": 90, "IDLE_COUNTDOWN_SECONDS": 20,
                         "SESSION_MAX_SECONDS": 110, "HTTPS": True}, id="cfg-edges"),
    pytest.param("env", {"REGISTRY_URL": "http://127.0.0.1:9/api/v1", "REGISTRY_TOKEN": "kt_x",
                         "REGISTRY_DEADLINE": "5"}, id="terminal-no-network-at-start"),
    pytest.param("cfg", {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": 2525, "SMTP_SECURITY": "none",
                         "SMTP_USERNAME": "bib", "SMTP_PASSWORD": "s3cret",
                         "MAIL_FROM": "Online leren met de bib <noreply@bib.example.be>"},
                 id="mail-on-loopback-relay"),
    pytest.param("env", {"DATABASE_POOL_SIZE": "1", "DATABASE_MAX_OVERFLOW": "0",
                         "DATABASE_POOLER": "pgbouncer"}, id="smallest-pool-behind-pgbouncer"),
])
def test_good_config_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                            settings: dict[str, object]) -> None:
    app = _start(tmp_path, source, settings, monkeypatch)
    assert app.config["DEFAULT_LANGUAGE"] in ("nl", "fr")
    if "REGISTRY_URL" not in settings:
        assert app.test_client().get("/").status_code in (200, 302)
        app.extensions["registry_service"].store.engine.dispose()


def test_kiosk_instance_path_chooses_the_instance_folder(tmp_path, monkeypatch) -> None:
    """A service points the instance folder (secret key, kiosk.cfg) at its state directory."""
    folder = tmp_path / "state"
    (folder).mkdir()
    (folder / "kiosk.cfg").write_text('DEFAULT_LANGUAGE = "fr"\n')
    monkeypatch.setenv("KIOSK_INSTANCE_PATH", str(folder))
    app = create_app({"TESTING": True})
    assert app.instance_path == str(folder)
    assert app.config["DEFAULT_LANGUAGE"] == "fr"  # its kiosk.cfg was read
    assert (folder / "secret_key").exists() and (folder / "registry.sqlite3").exists()


def test_a_log_file_we_may_not_write_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may write anywhere, so the refusal is shown with `os.access` answering as it does
    for the kiosk's own user in a folder it does not own (C:\\Kiosk, /var/log)."""
    import os

    folder = tmp_path / "logs"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == folder
                        else real_access(p, mode))
    with pytest.raises(SystemExit, match=r"^LOG_FILE .*terminal\.log: no permission to write "
                                         r"there$"):
        _start(tmp_path, "override", {"LOG_FILE": str(folder / "terminal.log")}, monkeypatch)


# --- Against a registry on loopback: the token and the library, at start -------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.support.factories import build_app
    from tests.support.live_server import serve

    app = build_app(tmp_path_factory.mktemp("registry"), registry=True)
    service = app.extensions["registry_service"]
    with serve(app) as url:
        yield url, service
    service.store.engine.dispose()


def _terminal_env(registry, token: str | None = None, **extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    url, service = registry
    if token is None:
        token, _ = service.add_terminal("ANT-PERMEKE", "start-up test", "test")
    return {"REGISTRY_URL": url, "REGISTRY_TOKEN": token, **extra}


def test_start_refuses_a_revoked_token(tmp_path, monkeypatch, registry) -> None:  # type: ignore[no-untyped-def]
    url, service = registry
    token, terminal = service.add_terminal("ANT-PERMEKE", "revoked at start", "test")
    service.revoke_terminal(terminal.id, "test")
    with pytest.raises(SystemExit) as refused:
        _start(tmp_path, "env", _terminal_env(registry, token), monkeypatch)
    assert str(refused.value) == ("REGISTRY_TOKEN was revoked at the registry (issue a new one: "
                                  "kiosk registry add-terminal)")


def test_start_refuses_a_token_the_registry_does_not_know(tmp_path, monkeypatch, registry) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as refused:
        _start(tmp_path, "cfg", _terminal_env(registry, "kt_never-issued"), monkeypatch)
    assert str(refused.value) == (f"REGISTRY_TOKEN is not accepted by the registry at "
                                  f"{registry[0]}")
    assert "kt_never" not in str(refused.value)


def test_start_refuses_an_unknown_library(tmp_path, monkeypatch, registry) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as refused:
        _start(tmp_path, "env", _terminal_env(registry, LIBRARY_CODE="ANT-NOWHERE"), monkeypatch)
    assert str(refused.value) == "LIBRARY_CODE 'ANT-NOWHERE' is not a library in the registry"


def test_start_with_a_good_token_and_library(tmp_path, monkeypatch, registry) -> None:  # type: ignore[no-untyped-def]
    app = _start(tmp_path, "env", _terminal_env(registry, LIBRARY_CODE="ANT-PERMEKE"),
                 monkeypatch)
    assert app.test_client().get("/nl/").status_code == 200
