"""The maintenance message: set once, shown by every kiosk instead of the journey, in the
page's language, until its time is up. And the terminals' heartbeat and state for branch IT."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner

from kiosk import __version__, security
from kiosk.cli import main
from kiosk.registry.domain import RegistryError, TerminalView, terminal_state
from kiosk.registry.services import utcnow
from kiosk.serving import start_heartbeat
from tests.support.factories import build_app
from tests.support.live_server import serve

MESSAGES = {"nl": "Onderhoud van de cursussen.", "fr": "Maintenance des cours.",
            "en": "The courses are being serviced."}


def test_all_three_languages_and_a_future_end_are_required(service) -> None:
    with pytest.raises(RegistryError) as refused:
        service.set_maintenance({"nl": "Onderhoud", "fr": " ", "en": "x" * 501},
                                utcnow() - timedelta(minutes=1), actor="it")
    assert dict(refused.value.fields) == {"fr": "required", "en": "too_long",
                                          "until": "not_in_future"}
    assert service.maintenance() is None


def test_every_patron_page_gives_way_to_the_message_in_its_language(app, client,
                                                                    service) -> None:
    service.set_maintenance(MESSAGES, utcnow() + timedelta(hours=2), actor="it")
    for path, text in (("/nl/", MESSAGES["nl"]), ("/fr/courses/", MESSAGES["fr"]),
                       ("/en/login", MESSAGES["en"])):
        response = client.get(path)
        assert response.status_code == 503
        body = response.get_data(as_text=True)
        assert text in body and "Create an account" not in body
    assert "De cursuszuil is even niet beschikbaar" in client.get("/nl/").get_data(as_text=True)
    assert client.post("/visit/extend").status_code == 204  # the idle timer still works
    with client.get("/static/kiosk.css") as css:  # a file response: closed when read
        assert css.status_code == 200


def test_the_kiosk_returns_by_itself_when_the_time_is_up(app, client, service,
                                                         monkeypatch) -> None:
    service.set_maintenance(MESSAGES, utcnow() + timedelta(minutes=30), actor="it")
    assert client.get("/nl/").status_code == 503
    later = security.now() + 31 * 60
    monkeypatch.setattr(security, "now", lambda: later)
    fresh = app.test_client()  # a new visit (the old one is past its idle limit by now)
    response = fresh.get("/nl/")  # no wait for the cached message to expire
    assert response.status_code == 200 and MESSAGES["nl"] not in response.get_data(as_text=True)


def test_clearing_the_message(app, client, service) -> None:
    service.set_maintenance(MESSAGES, utcnow() + timedelta(hours=1), actor="it")
    assert client.get("/en/").status_code == 503
    service.clear_maintenance(actor="it")
    app.extensions["reference_cache"].clear()  # what 15 seconds would do
    assert client.get("/en/").status_code == 200


def test_maintenance_command(app) -> None:
    url = ["--database-url", app.config["DATABASE_URL"]]
    later = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    runner = CliRunner()
    missing = runner.invoke(main, ["registry", "maintenance", "--nl", "Dicht", "--until", later,
                                   *url])
    assert missing.exit_code == 1 and "fr: required" in missing.output
    done = runner.invoke(main, ["registry", "maintenance", "--nl", MESSAGES["nl"], "--fr",
                                MESSAGES["fr"], "--en", MESSAGES["en"], "--until", later, *url])
    assert done.exit_code == 0, done.output
    found = app.extensions["registry_service"].maintenance()
    assert found is not None and found.messages == MESSAGES
    cleared = runner.invoke(main, ["registry", "maintenance", "--clear", *url])
    assert cleared.exit_code == 0
    assert app.extensions["registry_service"].maintenance() is None


def test_terminal_states_for_branch_it() -> None:
    now = datetime(2026, 12, 2, 9, 0)
    view = TerminalView(id=1, name="Permeke 1", library_code="ANT-PERMEKE",
                        created_at=now - timedelta(days=30),
                        last_seen_at=now - timedelta(minutes=1),
                        version="kiosk-terminal/0.1.0", revoked=False)
    assert terminal_state(view, now, "0.1.0") == "online"
    assert terminal_state(view, now, "0.2.0") == "outdated"
    assert terminal_state(replace(view, version="kiosk-terminal/0.10.0"), now, "0.9.1") == "online"
    assert terminal_state(replace(view, last_seen_at=now - timedelta(minutes=6)), now,
                          "0.1.0") == "offline"
    assert terminal_state(replace(view, last_seen_at=None), now, "0.1.0") == "offline"
    assert terminal_state(replace(view, revoked=True), now, "0.1.0") == "revoked"


def test_the_terminals_page_shows_each_state(app, service, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Four PCs as branch IT finds them: one up to date, one on an old kiosk, one silent for
    an hour (and old: worth updating when it is back), one revoked."""
    from tests.support.factories import log_in_staff

    made = {name: service.add_terminal("ANT-PERMEKE", name, actor="it")
            for name in ("Up to date", "Old kiosk", "Silent", "Revoked one")}
    service.authenticate_terminal(made["Up to date"][0], f"kiosk-terminal/{__version__}")
    service.authenticate_terminal(made["Old kiosk"][0], "kiosk-terminal/0.0.1")
    an_hour_ago = utcnow() - timedelta(hours=1)
    monkeypatch.setattr(service, "clock", lambda: an_hour_ago)
    service.authenticate_terminal(made["Silent"][0], "kiosk-terminal/0.0.1")
    monkeypatch.undo()
    service.revoke_terminal(made["Revoked one"][1].id, actor="it")

    client = app.test_client()
    log_in_staff(client, "it.support")
    page = client.get("/en/staff/terminals").get_data(as_text=True)
    rows = dict(re.findall(r'<tr class="state-(\w+)">\s*<td>\d+</td><td>([^<]+)</td>', page))
    assert rows == {"online": "Up to date", "outdated": "Old kiosk", "offline": "Silent",
                    "revoked": "Revoked one"}, page
    silent = page[page.index("Silent"):page.index("Revoked one")]
    assert "kiosk-terminal/0.0.1" in silent and "badge-outdated" in silent
    assert re.search(r"<strong>1</strong> online", page) and "Revoke the token of terminal " \
        "Revoked one" not in page


def test_the_heartbeat_reports_the_terminal_even_when_nobody_uses_it(tmp_path) -> None:
    """A terminal over HTTP beats in the background: the registry sees it online, with its
    version, although no page was asked for."""
    registry_app = build_app(tmp_path / "registry", registry=True)
    service = registry_app.extensions["registry_service"]
    token, view = service.add_terminal("ANT-PERMEKE", "Permeke 1", actor="it")
    assert terminal_state(view, utcnow(), __version__) == "offline"
    with serve(registry_app) as url:
        terminal = build_app(tmp_path / "t", REGISTRY_URL=url, REGISTRY_TOKEN=token)
        stop = start_heartbeat(terminal, every=0.05)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                (seen,) = service.terminals()
                if seen.last_seen_at is not None:
                    break
                time.sleep(0.05)
        finally:
            stop.set()
    assert terminal_state(seen, utcnow(), __version__) == "online"
    assert seen.version == f"kiosk-terminal/{__version__}"
    service.store.engine.dispose()
