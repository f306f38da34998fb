"""`kiosk registry doctor` against the real PostgreSQL: the shipped settings fit its
max_connections, and workers past it fail with the sentence that says what to change, read
from the service's own settings file as the service reads it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from kiosk.cli import main

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("clean_kiosk_environment")]


def doctor(*args: str) -> Result:
    return CliRunner().invoke(main, ["registry", "doctor", *args])


def rows(result: Result) -> dict[str, tuple[str, str]]:
    """{check: (status, detail)} of the table (its header line left out)."""
    found = {}
    for line in result.output.splitlines()[1:]:
        check, status, detail = line.split(maxsplit=2)
        found[check] = (status, detail)
    return found


@pytest.fixture
def registry_url(create_database, tmp_path: Path, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KIOSK_INSTANCE_PATH", str(tmp_path / "instance"))
    url = create_database()
    upgraded = CliRunner().invoke(main, ["registry", "upgrade", "--database-url", url])
    assert upgraded.exit_code == 0, upgraded.output
    return url


def test_the_shipped_settings_fit_the_servers_connections(registry_url: str) -> None:
    result = doctor("--database-url", registry_url)
    assert result.exit_code == 0, result.output
    found = rows(result)
    assert found["config"][0] == "OK" and found["database"][0] == "OK"
    assert found["connections"][0] == "OK", found["connections"]
    assert found["connections"][1].startswith(
        "19 connections at full load (2 workers × (4 + 4) + 3 for housekeeping and a command "
        "by hand); PostgreSQL accepts ")


def test_workers_past_what_the_server_accepts_fail_and_say_what_to_change(  # type: ignore[no-untyped-def]
        registry_url: str, tmp_path: Path) -> None:
    with psycopg.connect(registry_url) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
    workers = (limit - reserved) // 100 + 1  # with 50 + 50 each: one worker too many
    settings = tmp_path / "registry.env"
    settings.write_text(f"KIOSK_DATABASE_URL={registry_url}\nKIOSK_WORKERS={workers}\n"
                        "KIOSK_DATABASE_POOL_SIZE=50\nKIOSK_DATABASE_MAX_OVERFLOW=50\n",
                        encoding="utf-8")
    result = doctor("--env-file", str(settings))
    assert result.exit_code == 1, result.output
    status, detail = rows(result)["connections"]
    assert status == "FAIL"
    assert detail.startswith(f"{workers * 100 + 3} connections at full load ({workers} "
                             "workers × (50 + 50) + 3 ")
    assert f"PostgreSQL accepts {limit - reserved} (max_connections {limit} − " in detail
    assert "Lower KIOSK_WORKERS, KIOSK_DATABASE_POOL_SIZE or KIOSK_DATABASE_MAX_OVERFLOW" in detail
    assert rows(result)["database"][0] == "OK"  # only the connections are wrong


def test_a_database_without_the_registry_fails_saying_to_make_it(create_database) -> None:  # type: ignore[no-untyped-def]
    result = doctor("--database-url", create_database())
    assert result.exit_code == 1
    assert rows(result)["database"] == (
        "FAIL", "no registry in it yet: run `kiosk registry init` (or `upgrade`)")


def test_a_registry_without_its_shared_secret_key_fails(registry_url: str, tmp_path: Path) -> None:
    settings = tmp_path / "registry.env"
    settings.write_text(f"KIOSK_DATABASE_URL={registry_url}\nKIOSK_SEED_DEMO=false\n",
                        encoding="utf-8")
    result = doctor("--env-file", str(settings))
    assert result.exit_code == 1, result.output
    assert rows(result)["secret"][0] == "FAIL"
    assert "KIOSK_SECRET_KEY" in rows(result)["secret"][1]
    with settings.open("a", encoding="utf-8") as f:
        f.write("KIOSK_SECRET_KEY=" + "k" * 48 + "\n")
    result = doctor("--env-file", str(settings))
    assert result.exit_code == 0, result.output
    assert rows(result)["secret"] == ("OK", "from the settings")
