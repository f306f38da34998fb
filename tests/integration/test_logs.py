"""Logs: JSON lines with a request id on both apps, no personal data in them, rotation.

The journey test runs a terminal against a registry served over HTTP on loopback (as
tests/integration/test_contract.py does), both logging to files, and then reads every line of
both.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask, request
from flask.logging import default_handler

from kiosk import config, logs
from kiosk.registry.services import RegistryService
from tests.support.factories import build_app, form_data
from tests.support.live_server import serve

FIRST, LAST = "Zebulonia", "Quintavalle-Brouckaert"
EMAIL = "zebulonia.quintavalle@example.be"
SANE = re.compile(r"[A-Za-z0-9-]{8,64}")


def read_lines(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines, f"{path.name} is empty"
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    for line in parsed:
        assert {"time", "level", "logger", "message", "request_id"} <= line.keys()
        assert line["time"].endswith("Z")
    return parsed


@pytest.fixture
def over_http(tmp_path: Path) -> Iterator[tuple[Flask, str, Path, Path]]:
    """A terminal talking to a registry over HTTP on loopback, each logging to its own file."""
    registry_log, terminal_log = tmp_path / "registry.log", tmp_path / "terminal.log"
    registry = build_app(tmp_path / "registry", registry=True, LOG_FILE=str(registry_log))
    registry.config["PROPAGATE_EXCEPTIONS"] = False

    @registry.get("/api/v1/boom")
    def registry_boom() -> str:
        raise RuntimeError(f"registry failed for {EMAIL} with Bearer kt_secretterminaltoken")

    service: RegistryService = registry.extensions["registry_service"]
    token, _ = service.add_terminal("ANT-PERMEKE", "test kiosk", actor="test")
    with serve(registry) as url:
        terminal = build_app(tmp_path / "terminal", REGISTRY_URL=url, REGISTRY_TOKEN=token,
                             REGISTRY_DEADLINE=10, LIBRARY_CODE="ANT-PERMEKE",
                             LOG_FILE=str(terminal_log))
        terminal.config["PROPAGATE_EXCEPTIONS"] = False

        @terminal.get("/<lang:lang>/boom")
        def boom() -> str:
            card = request.args["card"]
            raise RuntimeError(f"failed for {EMAIL} card {card} / {card.replace(' ', '')}")

        yield terminal, url, terminal_log, registry_log
        terminal.extensions["registry"].close()
    service.store.engine.dispose()


def test_a_journey_over_http_leaves_no_personal_data_in_either_log(over_http) -> None:
    terminal, registry_url, terminal_log, registry_log = over_http
    browser = terminal.test_client()
    data = form_data(first_name=FIRST, last_name=LAST, email=EMAIL)

    created = browser.post("/en/account/new", data=data)
    assert created.status_code == 302, created.get_data(as_text=True)
    page = browser.get("/en/account/created").get_data(as_text=True)
    card = re.search(r'class="card-number"[^>]*>([\d ]+)<', page).group(1)
    digits = card.replace(" ", "")
    assert len(digits) == 13
    browser.post("/en/logout")
    wrong = browser.post("/en/login", data={"identifier": card, "password": "not it at all"})
    assert wrong.status_code == 422
    browser.post("/en/login", data={"identifier": EMAIL, "password": "wrong again"})
    assert browser.post("/en/login", data={"identifier": EMAIL, "password": data["password"]}
                        ).status_code == 302
    enrolled = browser.post("/en/courses/excel-basics/enrol")
    assert enrolled.status_code == 302
    assert FIRST in browser.get("/en/my").get_data(as_text=True)
    # A query string may carry what a patron typed: only the path is logged.
    browser.get(f"/en/courses/?q={EMAIL}&card={digits}")

    crashed = browser.get(f"/nl/boom?card={card}")  # its exception names the patron
    assert crashed.status_code == 500
    assert browser.post("/en/logout").status_code == 302
    failed = requests.get(registry_url + "/api/v1/boom", timeout=5,
                          headers={"X-Request-Id": "registry-crash-0001"})
    assert failed.status_code == 500

    terminal_lines, registry_lines = read_lines(terminal_log), read_lines(registry_log)
    for name, path in (("terminal", terminal_log), ("registry", registry_log)):
        text = path.read_text(encoding="utf-8")
        for held in (EMAIL, EMAIL.split("@")[0], FIRST, LAST, card, digits, data["password"]):
            assert held not in text, f"{held!r} in the {name} log"
        assert not re.search(r"\d{13}", text), f"an unmasked number in the {name} log"

    # Every line of a request carries its id; the crashes were logged, scrubbed.
    assert all(SANE.fullmatch(line["request_id"]) for line in terminal_lines + registry_lines)
    terminal_crash = next(line for line in terminal_lines if line["level"] == "ERROR")
    assert terminal_crash["path"] == "/nl/boom"
    assert "***@***" in terminal_crash["exception"]
    assert "**********" + digits[-3:] in terminal_crash["exception"]
    registry_crash = next(line for line in registry_lines if line["level"] == "ERROR")
    assert registry_crash["request_id"] == "registry-crash-0001"
    assert "kt_secret" not in registry_crash["exception"]
    access = [line for line in terminal_lines if line["logger"] == "kiosk.access"]
    assert {"method", "path", "status", "duration_ms"} <= access[0].keys()
    assert all("?" not in line["path"] and "?" not in line["message"] for line in access)
    assert all(line["library"] == "ANT-PERMEKE" for line in access)
    assert any(line["path"] == "/en/courses/" for line in access)

    # One patron action followed across both logs: the enrolment's id is in the registry's.
    enrol_id = enrolled.headers["X-Request-Id"]
    assert SANE.fullmatch(enrol_id)
    followed = [line for line in registry_lines if line["request_id"] == enrol_id]
    assert {line["path"] for line in followed} >= {"/api/v1/me/claims"}
    assert all(line["terminal"] and line["library"] == "ANT-PERMEKE" for line in followed)


CORPUS = [
    # (raw text, what must be gone, what must be left)
    ("mail mia.janssens+kiosk@example.be failed", "mia.janssens", "mail ***@*** failed"),
    ("Élise <élise.dubois@bib.example.be>", "dubois@", "<***@***>"),
    ("card 2000012345678 locked", "2000012345678", "card **********678 locked"),
    ("card 2000 0123 4567 8 locked", "2000 0123", "card **********678 locked"),
    ("card 2000.0123.45678 locked", "2000.0123", "card **********678 locked"),
    ("Authorization: Bearer kt_Ab3dEfGhIjKlMnOpQrStUvWxYz012345", "kt_Ab3d",
     "Authorization: Bearer ***"),
    ("terminal token kt_Ab3dEfGhIjKlMnOpQrStUvWxYz012345", "kt_Ab3d", "token kt_***"),
    ("X-Patron-Session: q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x1C", "q1W2e3",
     "X-Patron-Session: ***"),
    ("{'X-Patron-Session': 'q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x1C'}", "q1W2e3", "***"),
    ("session q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x1C expired", "q1W2e3",
     "session *** expired"),
    ("[SQL: INSERT INTO patrons (first_name) VALUES (?)]\n[parameters: ('Zebulonia',)]",
     "Zebulonia", "[parameters: ***]"),
    ("  Input should be a valid date [type=date_type, input_value='Zebulonia', "
     "input_type=str]", "Zebulonia", "input_value=***, input_type=str]"),
    ('DETAIL:  Failing row contains (12, Zebulonia, Quintavalle, 1950-04-03, 2000, nl).',
     "Zebulonia", "DETAIL:  Failing row contains (***)"),
    ("DETAIL:  Key (search_name, birth_date)=(zebulonia quintavalle, 1950-04-03) already "
     "exists.", "zebulonia", "Key (search_name, birth_date)=(***) already exists."),
    ('DETAIL:  Key (patron_id)=(12) is still referenced from table "places".', "=(12)",
     "Key (patron_id)=(***) is still referenced"),
]
KEPT = ("GET /en/courses/introduction-to-spreadsheets-for-beginners 200 "
        "id 72d5ed87-cd7e-45c3-bb01-2cc1195d1ac2 on 2024-03-27 12:00:00 took 1234 ms, "
        "12345678901234")


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("kiosk", logging.ERROR, __file__, 1, msg, args or None, None)


@pytest.mark.parametrize(("raw", "gone", "left"), CORPUS)
def test_the_scrubbing_filter_masks_the_corpus(raw: str, gone: str, left: str) -> None:
    formatter = logs.JsonFormatter()
    control = _record("%s", raw)
    assert gone in json.loads(formatter.format(control))["message"]  # nothing else removes it
    record = _record("%s", raw)
    assert logs.ScrubFilter().filter(record)
    message = json.loads(formatter.format(record))["message"]
    assert gone not in message and left in message
    assert logs.scrub(message) == message  # idempotent: a second pass changes nothing


def test_the_filter_scrubs_exception_text_and_path_and_keeps_the_rest() -> None:
    assert logs.scrub(KEPT) == KEPT  # slugs, ids, dates, durations and longer numbers stay
    try:
        raise ValueError(f"no account {form_data()['email']} card 2000 0123 4567 8")
    except ValueError:
        import sys

        record = logging.LogRecord("kiosk", logging.ERROR, __file__, 1, "crash", None,
                                   sys.exc_info())
    record.path = "/en/login/mia@example.be"
    logs.ScrubFilter().filter(record)
    line = json.loads(logs.JsonFormatter().format(record))
    assert "@example.be" not in line["exception"] and "2000 0123" not in line["exception"]
    assert "ValueError: no account ***@*** card **********678" in line["exception"]
    assert line["path"] == "/en/login/***@***"


def test_the_log_file_rotates_and_keeps_log_backups_files(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "terminal.log"
    app = build_app(tmp_path, LOG_FILE=str(log), LOG_MAX_BYTES=600, LOG_BACKUPS=2)
    client = app.test_client()
    for _ in range(40):
        assert client.get("/healthz").status_code == 200
    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["terminal.log", "terminal.log.1", "terminal.log.2"]
    for path in log.parent.iterdir():
        assert path.stat().st_size <= 600
        assert all(line["path"] == "/healthz" for line in read_lines(path))


def test_several_apps_in_one_process_add_no_handler_twice(tmp_path: Path) -> None:
    log = tmp_path / "shared.log"
    apps = [build_app(tmp_path, LOG_FILE=str(log)) for _ in range(3)]
    quiet = build_app(tmp_path, LOG_FILE=str(log), LOG_LEVEL="WARNING")
    kiosk_logger = logging.getLogger("kiosk")
    routers = [h for h in kiosk_logger.handlers if isinstance(h, logs._Router)]
    assert len(routers) == 1 and default_handler not in kiosk_logger.handlers
    assert not kiosk_logger.propagate  # waitress's basicConfig() would print each line twice
    apps[1].test_client().get("/healthz")
    quiet.test_client().get("/healthz")  # below its level: no access line
    assert len(read_lines(log)) == 1


def test_log_settings_come_from_the_environment() -> None:
    env = {"KIOSK_LOG_FILE": "/var/log/kiosk/terminal.log", "KIOSK_LOG_MAX_BYTES": "1000",
           "KIOSK_LOG_BACKUPS": "3", "KIOSK_LOG_LEVEL": "WARNING"}
    assert config.from_environment(env) == {"LOG_FILE": "/var/log/kiosk/terminal.log",
                                            "LOG_MAX_BYTES": 1000, "LOG_BACKUPS": 3,
                                            "LOG_LEVEL": "WARNING"}


@pytest.mark.parametrize("bad", ["short", "has spaces in it", "x" * 65, "semi;colon;here",
                                 "üñíçødé-1234", ""])
def test_a_bad_incoming_request_id_is_replaced(client, bad: str) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": bad} if bad else {})
    rid = response.headers["X-Request-Id"]
    assert rid != bad and SANE.fullmatch(rid)


def test_a_sane_incoming_request_id_is_kept(client) -> None:
    rid = "proxy-0123456789abcdef"
    assert client.get("/healthz", headers={"X-Request-Id": rid}).headers["X-Request-Id"] == rid


def test_staff_desk_work_leaves_no_personal_data_in_the_registry_log(db_url, tmp_path: Path  # type: ignore[no-untyped-def]
                                                                     ) -> None:
    """A librarian registers a patron at the desk, finds them by name and date of birth, by
    e-mail and by card, enrols them, prints a one-time password, e-mails and prints the
    receipt, tries the same e-mail again, and a PostgreSQL-style error names them: the staff
    pages' log (the registry's) holds none of it."""
    from tests.support.factories import STAFF_PASSWORDS

    log = tmp_path / "registry.log"
    registry = build_app(tmp_path / "registry", registry=True, LOG_FILE=str(log),
                         DATABASE_URL=db_url(), SMTP_HOST="127.0.0.1", SMTP_PORT=9,
                         SMTP_SECURITY="none", MAIL_FROM="bib@example.be")
    registry.config["PROPAGATE_EXCEPTIONS"] = False

    @registry.get("/boom")
    def boom() -> str:
        raise RuntimeError(f'DETAIL:  Failing row contains (7, {FIRST}, {LAST}, {EMAIL}).')

    desk = registry.test_client()
    assert desk.post("/en/staff/login", data={
        "username": "an.peeters", "password": STAFF_PASSWORDS["an.peeters"]}).status_code == 302
    form = {"first_name": FIRST, "last_name": LAST, "email": EMAIL, "birth_day": "3",
            "birth_month": "4", "birth_year": "1950", "postcode": "2000",
            "library": "ANT-PERMEKE", "password": "chosen by the patron", "language": "nl",
            "consent": "y", "identity_checked": "y"}
    made = desk.post("/en/staff/desk/new", data=form)
    assert made.status_code == 302, made.get_data(as_text=True)
    record = made.headers["Location"]
    page = desk.get(record).get_data(as_text=True)
    assert LAST in page
    service: RegistryService = registry.extensions["registry_service"]
    with service.store.read() as session:
        from sqlalchemy import select

        from kiosk.registry.store import Patron
        card = session.scalar(select(Patron.card_number).where(Patron.email == EMAIL))
    for query in ({"query": f"{LAST} {FIRST}".lower(), "birth_date": "1950-04-03"},
                  {"query": EMAIL.upper()}, {"query": card}):
        found = desk.post("/en/staff/desk", data=query)
        assert found.status_code == 200 and record.rsplit("/", 1)[1] in found.get_data(
            as_text=True), query
    assert desk.post(f"{record}/enrol", data={"course": "excel-basics"}).status_code == 302
    assert desk.post(f"{record}/one-time-password").status_code == 200
    assert desk.post(f"{record}/receipt/email").status_code == 302
    assert desk.post(f"{record}/receipt").status_code == 200
    again = desk.post("/en/staff/desk/new", data=form)
    assert again.status_code == 422
    assert desk.get("/boom").status_code == 500
    service.store.engine.dispose()

    text = log.read_text(encoding="utf-8")
    lines = read_lines(log)
    assert any(line["path"] == "/en/staff/desk" for line in lines)
    for held in (EMAIL, EMAIL.split("@")[0], FIRST, LAST, FIRST.lower(), LAST.lower(), card,
                 form["password"]):
        assert held not in text, f"{held!r} in the registry log"
    assert not re.search(r"\d{13}", text), "an unmasked number in the registry log"
    crash = next(line for line in lines if line["level"] == "ERROR")
    assert "Failing row contains (***)" in crash["exception"]
