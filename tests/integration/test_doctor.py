"""`kiosk doctor`: green against a healthy registry on loopback, red (exit 1, with the reason)
for a revoked token, an unreachable registry, an unknown library code; the embedded default."""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from kiosk import doctor as checks
from kiosk.app import create_app
from kiosk.catalogs import compile_catalogues
from kiosk.cli import main
from kiosk.config import SHARED_SECRET_KEY_MISSING
from kiosk.registry.demo_member_system import DEMO_CARDS, DEMO_LOGIN, DemoMemberSystem
from kiosk.registry.member_system import MemberSystemConfig
from tests.support.factories import build_app
from tests.support.live_server import serve
from tests.support.scim_server import start_platform, token_file

pytestmark = pytest.mark.usefixtures("clean_kiosk_environment")


def doctor(instance: Path, *args: str, **env: str) -> Result:
    return CliRunner().invoke(main, ["doctor", "--instance-path", str(instance), *args],
                              env={f"KIOSK_{k}": v for k, v in env.items()})


def rows(result: Result) -> dict[str, tuple[str, str]]:
    """check → (status, detail) from the printed table (stdout: --token's warning goes to
    stderr)."""
    out = {}
    for line in result.stdout.splitlines()[1:]:
        name, status, detail = line.split(None, 2)
        out[name] = (status, detail)
    return out


class Registry:
    def __init__(self, app: Flask, url: str):
        self.app, self.url = app, url
        self.service = app.extensions["registry_service"]
        self.token, self.terminal = self.service.add_terminal("ANT-PERMEKE", "doctor test", "test")


@pytest.fixture
def registry(db_url, tmp_path: Path) -> Iterator[Registry]:  # type: ignore[no-untyped-def]
    """A registry app (SQLite, and PostgreSQL where it answers) served on loopback."""
    app = build_app(tmp_path / "registry", registry=True, DATABASE_URL=db_url())
    with serve(app) as url:
        yield Registry(app, url)
    app.extensions["registry_service"].store.engine.dispose()


@pytest.fixture
def terminal_doctor(registry: Registry, tmp_path: Path) -> Callable[..., Result]:
    def run(*args: str, **env: str) -> Result:
        return doctor(tmp_path / "terminal", "--registry-url", registry.url,
                      "--token", registry.token, *args, **env)
    return run


def test_green_against_a_registry_on_loopback(terminal_doctor, registry) -> None:  # type: ignore[no-untyped-def]
    result = terminal_doctor(LIBRARY_CODE="ANT-PERMEKE")
    assert result.exit_code == 0, result.output
    table = rows(result)
    assert {name: status for name, (status, _) in table.items()} == {
        "config": "OK", "secret": "SKIP", "ca": "SKIP", "proxy": "OK", "registry": "OK",
        "token": "OK", "library": "OK", "migrations": "OK", "translations": "OK", "clock": "OK",
        "disk": "OK"}, result.output
    assert registry.url in table["registry"][1]
    assert "27 libraries" in table["token"][1]


def test_revoked_token_is_red(terminal_doctor, registry) -> None:  # type: ignore[no-untyped-def]
    registry.service.revoke_terminal(registry.terminal.id, "test")
    result = terminal_doctor()
    assert result.exit_code == 1
    assert rows(result)["token"] == ("FAIL", "token revoked (issue a new one: kiosk registry "
                                             "add-terminal)")
    assert rows(result)["registry"][0] == "OK"  # reachable: it is the token


def test_unknown_token_is_red(terminal_doctor, registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = doctor(tmp_path, "--registry-url", registry.url + "/api/v1/", "--token", "kt_nope")
    assert result.exit_code == 1
    assert rows(result)["token"][0] == "FAIL"
    assert "not accepted" in rows(result)["token"][1]


def test_unknown_library_code_is_red(terminal_doctor) -> None:  # type: ignore[no-untyped-def]
    result = terminal_doctor(LIBRARY_CODE="NOPE-NOWHERE")
    assert result.exit_code == 1
    assert rows(result)["library"] == (
        "FAIL", "LIBRARY_CODE 'NOPE-NOWHERE' is not a library in the registry")


def test_unreachable_registry_is_red(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on (bound, then released)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = doctor(tmp_path, "--registry-url", f"http://127.0.0.1:{port}", "--token", "kt_x")
    assert result.exit_code == 1
    status, detail = rows(result)["registry"]
    assert status == "FAIL" and "unreachable" in detail and "connection refused" in detail
    assert rows(result)["token"][0] == "SKIP"


def test_bad_config_is_red_with_the_start_up_reason(tmp_path: Path) -> None:
    result = doctor(tmp_path, IDLE_COUNTDOWN_SECONDS="5")
    assert result.exit_code == 1
    assert rows(result)["config"] == (
        "FAIL", "IDLE_COUNTDOWN_SECONDS must be at least 20 (WCAG 2.2.1), got 5")


def test_embedded_default_green_with_migrations_current(tmp_path: Path) -> None:
    app = create_app({"SECRET_KEY": "x"}, instance_path=str(tmp_path))  # migrates and seeds
    app.extensions["registry_service"].store.engine.dispose()
    result = doctor(tmp_path, LIBRARY_CODE="MUN-MUNTPUNT")
    assert result.exit_code == 0, result.output
    table = rows(result)
    assert table["migrations"][0] == "OK" and "current" in table["migrations"][1]
    assert table["library"] == ("OK", "MUN-MUNTPUNT is a library in the registry")
    assert table["registry"][1].startswith("embedded")


@pytest.mark.postgres
def test_embedded_on_postgres_green(tmp_path: Path, create_database) -> None:  # type: ignore[no-untyped-def]
    url = create_database()
    app = create_app({"SECRET_KEY": "x", "DATABASE_URL": url}, instance_path=str(tmp_path))
    app.extensions["registry_service"].store.engine.dispose()
    result = doctor(tmp_path, DATABASE_URL=url)
    assert result.exit_code == 0, result.output
    assert rows(result)["migrations"][0] == "OK"


def test_embedded_schema_behind_is_red_without_auto_migrate(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "registry.sqlite3").close()  # a database with no migrations
    result = doctor(tmp_path, AUTO_MIGRATE="false")
    assert result.exit_code == 1
    assert rows(result)["migrations"][0] == "FAIL"
    assert "kiosk registry upgrade" in rows(result)["migrations"][1]
    # with AUTO_MIGRATE (the embedded default) the next start fixes it: a warning
    assert doctor(tmp_path).exit_code == 0


def test_env_file_is_what_the_service_runs_with(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Branch IT runs `kiosk doctor --env-file /etc/kiosk/terminal.env` in a shell that has
    none of the service's variables: the file alone gives registry, token, library and the
    instance folder."""
    instance = tmp_path / "state"
    env_file = tmp_path / "terminal.env"
    env_file.write_text("\ufeff# written by the installer\n\n"
                        f"KIOSK_REGISTRY_URL={registry.url}\n"
                        f'KIOSK_REGISTRY_TOKEN="{registry.token}"\n'
                        "KIOSK_LIBRARY_CODE = ANT-PERMEKE\n"
                        f"KIOSK_INSTANCE_PATH={instance}\n")
    result = CliRunner().invoke(main, ["doctor", "--env-file", str(env_file)], env={})
    assert result.exit_code == 0, result.output
    table = rows(result)
    assert registry.url in table["registry"][1]
    assert table["library"] == ("OK", "ANT-PERMEKE is a library in the registry")
    assert str(instance) in table["disk"][1]


@pytest.mark.parametrize(("content", "reason"), [
    ("KIOSK_REGISTRY_URL=https://registry.example.be\nREGISTRY_TOKEN=kt_x\n",
     "line 2: expected KIOSK_<SETTING>=value"),
    ("KIOSK_IDLE_COUNTDOWN_SECONDS=5\n", "IDLE_COUNTDOWN_SECONDS must be at least 20"),
    (None, "No such file or directory"),
])
def test_a_bad_env_file_is_red_with_its_reason(tmp_path: Path, content: str | None,
                                               reason: str) -> None:
    env_file = tmp_path / "terminal.env"
    if content is not None:
        env_file.write_text(content)
    result = doctor(tmp_path, "--env-file", str(env_file))
    assert result.exit_code == 1
    status, detail = rows(result)["config"]
    assert status == "FAIL" and reason in detail, result.output


# --- Single checks --------------------------------------------------------------------------


def test_clock_skew_warns_past_a_minute_and_fails_past_five() -> None:
    now = 1_800_000_000.0
    assert checks.check_clock(formatdate(now, usegmt=True), now).status == "OK"
    late = checks.check_clock(formatdate(now - 120, usegmt=True), now)
    assert late.status == "WARN" and "-120 s" in late.detail
    far = checks.check_clock(formatdate(now + 600, usegmt=True), now)
    assert far.status == "FAIL" and "+600 s" in far.detail and "NTP" in far.detail
    assert checks.check_clock(None, now).status == "WARN"


def test_translations_missing_or_stale(tmp_path: Path) -> None:
    for lang in ("nl", "fr", "en"):
        folder = tmp_path / lang / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.po").write_text('msgid ""\nmsgstr ""\n')
    compile_catalogues(tmp_path)
    assert checks.check_translations(tmp_path).status == "OK"
    po = tmp_path / "fr" / "LC_MESSAGES" / "messages.po"
    later = po.stat().st_mtime + 10
    os.utime(po, (later, later))  # as pip installs: the .mo written a moment before its .po
    assert checks.check_translations(tmp_path).status == "OK"
    po.write_text('msgid ""\nmsgstr ""\n\nmsgid "Log in"\nmsgstr "Se connecter"\n')
    os.utime(po, (later, later))
    stale = checks.check_translations(tmp_path)
    assert stale.status == "WARN" and "fr: messages.mo differs from messages.po" in stale.detail
    (tmp_path / "nl" / "LC_MESSAGES" / "messages.mo").unlink()
    (tmp_path / "nl" / "LC_MESSAGES" / "messages.po").unlink()
    assert checks.check_translations(tmp_path).status == "FAIL"


def test_disk_fails_under_the_minimum(tmp_path: Path) -> None:
    assert checks.check_disk(tmp_path / "not-made-yet").status == "OK"
    low = checks.check_disk(tmp_path, minimum=1 << 60)
    assert low.status == "FAIL" and "under" in low.detail


def test_embedded_doctor_tells_whether_the_member_system_and_the_academy_answer(
        tmp_path: Path) -> None:
    """Each link of an embedded registry: OK while it answers, WARN (exit 0: the kiosk still
    serves) once it does not, with the reason."""
    secret = tmp_path / "sip.secret"
    secret.write_text(DEMO_LOGIN[1], encoding="utf-8")
    platform = start_platform()
    academy = {"ACADEMY_SCIM_URL": platform.url,
               "ACADEMY_SCIM_TOKEN_FILE": token_file(tmp_path)}
    app = create_app({"SECRET_KEY": "x"}, instance_path=str(tmp_path))
    service = app.extensions["registry_service"]
    try:
        with DemoMemberSystem(DEMO_CARDS, login=DEMO_LOGIN) as system:
            service.members.configure("MUN", MemberSystemConfig(
                host="127.0.0.1", port=system.port, login_user=DEMO_LOGIN[0],
                password_file=str(secret)), actor="test")
            green = rows(doctor(tmp_path, LIBRARY_CODE="MUN-MUNTPUNT", **academy))
        platform.stop()
        red = doctor(tmp_path, LIBRARY_CODE="MUN-MUNTPUNT", **academy)
    finally:
        service.store.engine.dispose()
        platform.stop()
    assert green["members"][0] == "OK" and "log-in accepted" in green["members"][1]
    assert green["academy"][0] == "OK" and "answers" in green["academy"][1]
    assert red.exit_code == 0, red.output
    assert rows(red)["members"][0] == "WARN" and "MUN" in rows(red)["members"][1]
    assert rows(red)["academy"][0] == "WARN"
    assert DEMO_LOGIN[1] not in red.output


# --- A registry host's settings -------------------------------------------------------------

REGISTRY_ENV = Path(__file__).resolve().parents[2] / "deploy" / "linux" / "registry.env.example"


@pytest.mark.parametrize(("key", "status"), [("", "FAIL"), ("the-same-on-every-host", "OK")])
def test_a_registry_hosts_settings_without_their_secret_key_are_red(
        tmp_path: Path, key: str, status: str) -> None:
    """The shipped registry.env.example as branch IT fills it (here on SQLite): without
    KIOSK_SECRET_KEY, red with the reason `kiosk registry serve` refuses to start for."""
    env_file = tmp_path / "registry.env"
    env_file.write_text(REGISTRY_ENV.read_text(encoding="utf-8")
                        .replace("KIOSK_DATABASE_URL=postgresql://kiosk@127.0.0.1/kiosk",
                                 f"KIOSK_DATABASE_URL=sqlite:///{tmp_path / 'r.sqlite3'}")
                        .replace("KIOSK_SECRET_KEY=\n", f"KIOSK_SECRET_KEY={key}\n"))
    result = doctor(tmp_path, "--env-file", str(env_file))
    secret = rows(result)["secret"]
    assert secret[0] == status, result.output
    if status == "FAIL":
        assert result.exit_code == 1
        assert secret[1] == SHARED_SECRET_KEY_MISSING
    else:
        assert secret[1] == "from the settings"


def test_the_demo_and_a_terminal_need_no_secret_key_in_their_settings(
        terminal_doctor, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert rows(doctor(tmp_path / "demo"))["secret"] == (
        "OK", "the demo: a key made in the instance folder")
    assert rows(terminal_doctor())["secret"][0] == "SKIP"
