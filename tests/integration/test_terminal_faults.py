"""A kiosk against a real registry process that goes away, freezes and comes back, and a line
that loses the registry's answers: the patron always gets a calm page in their language within
the page budget, stays logged in, and a form sent again does what it asked for once."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.support.factories import IN_CI, build_app, form_data
from tests.support.lossy_proxy import LossyProxy
from tests.support.storm_support import RegistryServer, prepare_registry

BUDGET = 3.0  # PAGE_BUDGET here (8 by default): small, so that the waits stay short
SLACK = 1.0  # what the test client and the page itself may add to the budget

pytestmark = [pytest.mark.slow,  # waits out deadlines and page budgets by design
              pytest.mark.skipif(sys.platform == "win32" and not IN_CI,
                                 reason="a registry process to stop and freeze: gunicorn "
                                        "(Linux)")]


@pytest.fixture
def registry_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'central.sqlite3'}"


@pytest.fixture
def server(registry_db: str) -> Iterator[tuple[RegistryServer, str]]:
    prepared = prepare_registry(registry_db, cap=10, terminals=1)
    with RegistryServer(registry_db, workers=1, threads=4) as running:
        yield running, prepared.terminal_tokens[0]


def _terminal(tmp_path: Path, url: str, token: str) -> FlaskClient:
    app = build_app(tmp_path / "terminal", REGISTRY_URL=url, REGISTRY_TOKEN=token,
                    PAGE_BUDGET=BUDGET, REGISTRY_DEADLINE=BUDGET, LIBRARY_CODE="MUN-MUNTPUNT")
    return app.test_client()


def _form_key(page: str) -> str:
    found = re.search(r'name="request_key" value="([0-9a-f-]{36})"', page)
    assert found, "every patron form carries its key"
    return found.group(1)


def _patrons_named(registry_db: str, email: str) -> list[str]:
    with sqlite3.connect(registry_db.removeprefix("sqlite:///")) as db:
        return [row[0] for row in db.execute(
            "SELECT card_number FROM patrons WHERE email = ?", (email,))]


def _sign_up(kiosk: FlaskClient, lang: str = "fr") -> dict[str, str]:
    form = form_data()
    page = kiosk.get(f"/{lang}/account/new").get_data(as_text=True)
    answer = kiosk.post(f"/{lang}/account/new", data={**form, "request_key": _form_key(page)})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    return form


def _timed(call):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    answer = call()
    return answer, time.monotonic() - start


def _calm(answer, lang: str = "fr") -> str:  # type: ignore[no-untyped-def]
    page = answer.get_data(as_text=True)
    assert answer.status_code == 503, page
    assert f'<html lang="{lang}"' in page
    assert "Internal Server Error" not in page
    return page


def test_a_logged_in_patron_gets_the_calm_page_with_log_out_when_the_registry_is_gone(
        server, tmp_path: Path) -> None:
    running, token = server
    kiosk = _terminal(tmp_path, running.base_url, token)
    form = _sign_up(kiosk)
    assert form["first_name"] in kiosk.get("/fr/my").get_data(as_text=True)

    running.stop()  # nothing listens any more: connections are refused
    for path in ("/fr/my", "/fr/courses/excel-basics/enrol", "/fr/my/data"):
        answer, seconds = _timed(lambda p=path: kiosk.get(p))
        page = _calm(answer)
        assert seconds < BUDGET + SLACK, (path, seconds)
        assert "Rien n’a été perdu" in page or "Rien n'a été perdu" in page, page
        assert 'action="/fr/logout"' in page  # the header, with its log-out
        assert "idle-dialog" in page  # and the idle timer
        assert "Se déconnecter" in page  # still logged in: "Log out", not "Start over"

    answer, seconds = _timed(lambda: kiosk.post("/fr/logout"))
    assert answer.status_code == 302 and seconds < 2.0 + SLACK
    assert "Se déconnecter" not in kiosk.get("/fr/").get_data(as_text=True)


def test_a_frozen_registry_holds_no_page_longer_than_the_budget_and_the_visit_goes_on(
        server, tmp_path: Path) -> None:
    running, token = server
    kiosk = _terminal(tmp_path, running.base_url, token)
    form = _sign_up(kiosk, "nl")
    assert running.proc is not None
    os.killpg(running.proc.pid, signal.SIGSTOP)  # master and worker: connections hang
    try:
        for path in ("/nl/my", "/nl/courses/excel-basics/enrol", "/nl/my/data"):
            answer, seconds = _timed(lambda p=path: kiosk.get(p))
            _calm(answer, "nl")
            assert seconds < BUDGET + SLACK, (path, seconds)
        anonymous = _terminal(tmp_path, running.base_url, token)
        answer, seconds = _timed(lambda: anonymous.get("/en/my/data"))
        assert answer.status_code == 302  # not logged in: to the log-in page, at once
        answer, seconds = _timed(lambda: anonymous.get("/en/login"))
        assert answer.status_code in (200, 503) and seconds < BUDGET + SLACK
    finally:
        os.killpg(running.proc.pid, signal.SIGCONT)
    start = time.monotonic()
    mine = kiosk.get("/nl/my")
    assert mine.status_code == 200, mine.get_data(as_text=True)
    assert time.monotonic() - start < 2.0  # back at once, without a restart
    assert form["first_name"] in mine.get_data(as_text=True)  # still logged in


def test_the_idle_reset_ends_the_visit_quickly_while_the_registry_is_frozen(
        server, tmp_path: Path) -> None:
    running, token = server
    kiosk = _terminal(tmp_path, running.base_url, token)
    _sign_up(kiosk, "en")
    assert running.proc is not None
    os.killpg(running.proc.pid, signal.SIGSTOP)
    try:
        answer, seconds = _timed(lambda: kiosk.post("/visit/reset"))
    finally:
        os.killpg(running.proc.pid, signal.SIGCONT)
    assert answer.status_code == 302 and seconds < 2.0 + SLACK, seconds
    assert kiosk.get("/en/my").status_code == 302  # nobody is logged in any more


def test_a_sign_up_whose_answer_was_lost_shows_the_card_number_when_sent_again(
        server, registry_db: str, tmp_path: Path) -> None:
    running, token = server
    with LossyProxy(running.port) as line:
        kiosk = _terminal(tmp_path, f"http://127.0.0.1:{line.port}", token)
        form = form_data()
        page = kiosk.get("/fr/account/new").get_data(as_text=True)
        sent = {**form, "request_key": _form_key(page)}

        line.lose_answers = True  # the registry creates the account; its answer never comes
        first = kiosk.post("/fr/account/new", data=sent)
        line.lose_answers = False
        assert line.lost >= 1
        again_page = first.get_data(as_text=True)
        assert first.status_code == 422 and "Rien n" in again_page  # "nothing was lost"
        assert _form_key(again_page) == sent["request_key"]  # shown again with its key
        made = _patrons_named(registry_db, form["email"])
        assert len(made) == 1  # it did reach the registry

        second = kiosk.post("/fr/account/new", data=sent)  # "Send" once more
        assert second.status_code == 302 and second.location.endswith("/fr/account/created")
        created = kiosk.get("/fr/account/created").get_data(as_text=True)
        digits = re.sub(r"\D", "", created)
        assert made[0] in digits  # the card number made the first time
        assert _patrons_named(registry_db, form["email"]) == made  # one account


def test_without_the_form_key_the_same_lost_sign_up_meets_a_refusal(
        server, registry_db: str, tmp_path: Path) -> None:
    """The negative control: a form sent again under a new key is a new sign-up, which the
    registry refuses as a duplicate — the patron never sees their card number."""
    running, token = server
    with LossyProxy(running.port) as line:
        kiosk = _terminal(tmp_path, f"http://127.0.0.1:{line.port}", token)
        form = form_data()
        assert kiosk.get("/en/account/new").status_code == 200  # its key is not sent back
        line.lose_answers = True
        first = kiosk.post("/en/account/new", data=form)
        line.lose_answers = False
        assert first.status_code == 422 and "Nothing was lost" in first.get_data(as_text=True)
        assert len(_patrons_named(registry_db, form["email"])) == 1
        again = kiosk.post("/en/account/new", data=form)
        assert again.status_code == 422
        assert "already have an account" in again.get_data(as_text=True)
        assert len(_patrons_named(registry_db, form["email"])) == 1


def test_a_claim_whose_answer_was_lost_is_done_once_when_tried_again(
        server, registry_db: str, tmp_path: Path) -> None:
    running, token = server
    with LossyProxy(running.port) as line:
        kiosk = _terminal(tmp_path, f"http://127.0.0.1:{line.port}", token)
        _sign_up(kiosk, "nl")
        page = kiosk.get("/nl/courses/excel-basics/enrol").get_data(as_text=True)
        line.lose_answers = True
        lost = kiosk.post("/nl/courses/excel-basics/enrol",
                          data={"request_key": _form_key(page)})
        line.lose_answers = False
        error_page = _calm(lost, "nl")
        # "Try again" sends the same form again, its key included.
        assert 'action="/nl/courses/excel-basics/enrol"' in error_page
        retried = kiosk.post("/nl/courses/excel-basics/enrol",
                             data={"request_key": _form_key(error_page)})
        assert retried.status_code == 302 and retried.location.endswith(
            "/nl/courses/excel-basics/done")
    with sqlite3.connect(registry_db.removeprefix("sqlite:///")) as db:
        events = db.execute("SELECT COUNT(*) FROM idempotency_keys WHERE state = 'done' "
                            "AND request_hash IS NOT NULL").fetchone()[0]
        seats = db.execute("SELECT seats_taken FROM programme").fetchone()[0]
    assert seats == 1
    assert events >= 2  # the sign-up and the claim, each answered from its record


def test_a_confirmed_change_whose_answer_was_lost_is_tried_again_still_confirmed(
        server, registry_db: str, tmp_path: Path) -> None:
    running, token = server
    with LossyProxy(running.port) as line:
        kiosk = _terminal(tmp_path, f"http://127.0.0.1:{line.port}", token)
        _sign_up(kiosk, "nl")
        assert kiosk.post("/nl/courses/excel-basics/enrol").status_code == 302
        page = kiosk.get("/nl/my/give-up").get_data(as_text=True)
        line.lose_answers = True
        lost = kiosk.post("/nl/my/give-up", data={"request_key": _form_key(page), "confirm": "yes"})
        line.lose_answers = False
        error_page = _calm(lost, "nl")
        # "Try again" sends the same confirmed form again: not the question once more.
        assert 'action="/nl/my/give-up"' in error_page
        assert 'name="confirm" value="yes"' in error_page
        retried = kiosk.post("/nl/my/give-up", data={"request_key": _form_key(error_page),
                                                    "confirm": "yes"})
        assert retried.status_code == 302 and "done=give-up" in retried.location
    with sqlite3.connect(registry_db.removeprefix("sqlite:///")) as db:
        seats = db.execute("SELECT seats_taken FROM programme").fetchone()[0]
    assert seats == 0
