"""`kiosk registry academy send | sync [--dry-run] | export --csv`, against a real SCIM
platform on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from kiosk.academy_demo import ScimTestServer
from kiosk.cli import main
from tests.support.factories import add_patron
from tests.support.scim_server import start_platform, token_file


@pytest.fixture
def platform() -> Iterator[ScimTestServer]:
    server = start_platform()
    yield server
    server.stop()


def test_the_academy_commands_send_sync_and_export(app, service, platform, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = ["--database-url", app.config["DATABASE_URL"]]
    env = {"KIOSK_ACADEMY_SCIM_URL": platform.url,
           "KIOSK_ACADEMY_SCIM_TOKEN_FILE": token_file(tmp_path)}
    off = CliRunner().invoke(main, ["registry", "academy", "send", *url])
    assert off.exit_code == 1 and "ACADEMY_SCIM_URL is not set" in off.output

    service.academy.enabled = True
    for _ in range(2):
        _card, token = add_patron(service)
        service.claim(token, "excel-basics")
    sent = CliRunner(env=env).invoke(main, ["registry", "academy", "send", *url])
    assert sent.exit_code == 0, sent.output
    assert "Synced 2 patron(s), 2 changed on the platform; 0 waiting, 0 given up." in sent.output

    platform.storage.resources = []  # drift: the platform lost everyone
    dry = CliRunner(env=env).invoke(main, ["registry", "academy", "sync", "--dry-run", *url])
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("Would change: 2 created,") and platform.users() == []
    fixed = CliRunner(env=env).invoke(main, ["registry", "academy", "sync", *url])
    assert fixed.exit_code == 0 and fixed.output.startswith("Changed: 2 created,")
    assert len(platform.users()) == 2

    out = tmp_path / "holders.csv"
    exported = CliRunner().invoke(main, ["registry", "academy", "export", "--csv", str(out),
                                         *url])
    assert exported.exit_code == 0 and "Wrote 2 seat holder(s)" in exported.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    assert out.stat().st_mode & 0o077 == 0  # personal data: the owner's only

    platform.stop()
    down = CliRunner(env={**env, "KIOSK_ACADEMY_TIMEOUT": "1"}).invoke(
        main, ["registry", "academy", "sync", *url])
    assert down.exit_code == 1 and "the academy's platform: " in down.output
