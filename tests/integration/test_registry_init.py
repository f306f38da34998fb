"""`kiosk registry init`: a real registry started from the coordinator's programme file, with
its first coordinator and nothing of the demo; a wrong file or password changes nothing."""

from __future__ import annotations

from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from kiosk import cli
from kiosk.app import create_registry_app
from kiosk.cli import main
from kiosk.registry.programme_file import template_text
from kiosk.registry.store import Institution, Library, Programme, Staff, make_engine

pytestmark = pytest.mark.usefixtures("clean_kiosk_environment")

PASSWORD = "een lang geheim wachtwoord"


@pytest.fixture
def programme(tmp_path: Path) -> Path:
    path = tmp_path / "programme.json"
    path.write_text(template_text(), encoding="utf-8")
    return path


def kiosk(url: str, *args: str, input: str | None = None) -> Result:  # noqa: A002
    return CliRunner().invoke(main, ["registry", *args[:1], "--database-url", url, *args[1:]],
                              input=input)


def init(url: str, programme: Path, *more: str, input: str | None = None) -> Result:  # noqa: A002
    return kiosk(url, "init", str(programme), "--coordinator", "an.peeters",
                 "--coordinator-name", "An Peeters", *more, input=input)


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {table.__name__: conn.scalar(select(func.count()).select_from(table)) or 0
                    for table in (Programme, Institution, Library, Staff)}
    finally:
        engine.dispose()


def test_a_new_registry_gets_the_programme_and_its_coordinator_and_no_demo(
        db_url, programme: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = db_url()
    made = init(url, programme, input=f"{PASSWORD}\n{PASSWORD}\n")  # typed twice
    assert made.exit_code == 0, made.output
    assert "Registry ready: 2 institution(s), 3 library(ies), 3 categories, 1 course(s), " \
        "cap 1,000" in made.output
    assert PASSWORD not in made.output
    assert counts(url) == {"Programme": 1, "Institution": 2, "Library": 3, "Staff": 1}

    app = create_registry_app({"DATABASE_URL": url, "SECRET_KEY": "x", "TESTING": True,
                               "WTF_CSRF_ENABLED": False}, instance_path=str(tmp_path))
    client = app.test_client()
    demo = client.post("/en/staff/login", data={"username": "coordinator",
                                                 "password": "demo-coordinator"})
    assert demo.status_code != 302  # no demo account in a real registry
    real = client.post("/en/staff/login", data={"username": "an.peeters", "password": PASSWORD})
    assert real.status_code == 302, real.get_data(as_text=True)
    audit = client.get("/nl/staff/audit").get_data(as_text=True)
    assert "de eerste start van het register" in audit  # who made the account, in words
    app.extensions["registry_service"].store.engine.dispose()

    again = init(url, programme, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert again.exit_code == 1 and "already holds a programme: nothing was changed" in \
        again.output
    refused = kiosk(url, "upgrade", "--demo-data")
    assert refused.exit_code == 1 and "only fills a new, empty registry" in refused.output
    assert counts(url) == {"Programme": 1, "Institution": 2, "Library": 3, "Staff": 1}


def test_a_wrong_file_or_password_changes_nothing(programme: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    programme.write_text(template_text().replace('"2109"', '"21a9"'), encoding="utf-8")
    wrong = init(url, programme, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert wrong.exit_code == 1
    assert "was not loaded, nothing was changed" in wrong.output
    assert "\"card_prefix\" must be 4 digits" in wrong.output
    assert not (tmp_path / "r.sqlite3").exists()

    programme.write_text(template_text(), encoding="utf-8")
    short = tmp_path / "password"
    short.write_text("short\n", encoding="utf-8")
    refused = init(url, programme, "--password-file", str(short))
    assert refused.exit_code == 1
    assert "the password must have at least 12 characters. Nothing was changed." in \
        refused.output
    assert not (tmp_path / "r.sqlite3").exists()

    made = init(url, programme, "--password-file", "-", input=PASSWORD + "\n")  # a pipe
    assert made.exit_code == 0, made.output


def test_the_template_is_written_once_and_never_over_a_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    target = tmp_path / "mine.json"
    assert kiosk(url, "init", "--write-template", str(target)).exit_code == 0
    assert target.read_text(encoding="utf-8") == template_text()
    target.write_text("{}", encoding="utf-8")
    again = kiosk(url, "init", "--write-template", str(target))
    assert again.exit_code == 1 and "exists: not overwritten" in again.output
    assert target.read_text(encoding="utf-8") == "{}"


def test_registry_commands_run_with_the_service_env_file(programme: Path, tmp_path: Path) -> None:
    env = tmp_path / "registry.env"
    database = tmp_path / "svc.sqlite3"
    env.write_text(f"# as /etc/kiosk/registry.env\nKIOSK_DATABASE_URL=sqlite:///{database}\n",
                   encoding="utf-8")
    made = CliRunner().invoke(main, ["registry", "init", str(programme), "--env-file", str(env),
                                     "--coordinator", "an.peeters", "--coordinator-name", "An",
                                     "--password-file", "-"], input=PASSWORD + "\n")
    assert made.exit_code == 0, made.output
    assert database.exists()
    listed = CliRunner().invoke(main, ["registry", "staff", "--env-file", str(env)])
    assert "an.peeters" in listed.output
    missing = CliRunner().invoke(main, ["registry", "staff", "--env-file", str(tmp_path / "no")])
    assert missing.exit_code == 1


def test_every_registry_command_takes_the_env_file() -> None:
    def commands(group: click.Group, path: str) -> list[tuple[str, click.Command]]:
        found = []
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += commands(command, f"{path} {name}")
            else:
                found.append((f"{path} {name}", command))
        return found

    registry = main.commands["registry"]
    assert isinstance(registry, click.Group)
    without = [name for name, command in commands(registry, "registry")
               if "--env-file" not in {o for p in command.params for o in p.opts}]
    assert not without


def test_the_registry_server_refuses_to_start_without_its_shared_secret_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    monkeypatch.setattr(cli, "serve", lambda *args, **kwargs: served.append("served"))
    monkeypatch.setenv("KIOSK_INSTANCE_PATH", str(tmp_path / "instance"))
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    assert kiosk(url, "upgrade").exit_code == 0
    refused = kiosk(url, "serve")
    assert refused.exit_code == 1 and "needs its secret key in its settings" in refused.output
    assert served == []
    monkeypatch.setenv("KIOSK_SECRET_KEY", "the-same-on-every-host")
    assert kiosk(url, "serve").exit_code == 0 and served == ["served"]


@pytest.mark.postgres
def test_a_registry_command_leaves_no_connection_open_when_it_ends(
        create_database, postgres_admin: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """On a shared PostgreSQL every command's connections close with it, succeeded or
    refused: not when the garbage collector gets to them, nor past PostgreSQL's limit."""
    monkeypatch.setenv("KIOSK_INSTANCE_PATH", str(tmp_path / "instance"))
    url = create_database()
    name = url.rsplit("/", 1)[1]
    assert kiosk(url, "upgrade", "--demo-data").exit_code == 0
    for args in (("add-terminal", "--library", "ANT-PERMEKE", "--name", "PC 1"),
                 ("set-cap", "30", "--reason", "fewer licences"),
                 ("add-terminal", "--library", "NO-SUCH-LIBRARY", "--name", "PC 2")):
        kiosk(url, *args)
        with psycopg.connect(postgres_admin) as admin:
            left = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                 (name,)).fetchone()
        assert left == (0,), f"{args[0]} left {left[0]} connection(s) open"
