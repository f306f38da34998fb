"""/metrics for branch IT (issue #14 item 5): off without METRICS_TOKEN (404), 401 without the
token, the Prometheus text format, counts that move with real claims, gauges that match the
database, a database that does not answer in time, and under gunicorn one count for all its
workers."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from kiosk.registry.domain import terminal_state
from kiosk.registry.notices import MAX_ATTEMPTS
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Notice, Patron
from kiosk.version import __version__
from tests.support.factories import add_patron, build_app, log_in_staff
from tests.support.nginx import GunicornRegistry

TOKEN = "metrics-test-token-0123456789abcdefghijklmnop"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Scrape:
    """One scrape: each sample by its name and labels."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: set[str]

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def total(self, name: str, **labels: str) -> float:
        """The sum over the series of `name` that have these labels (and any others)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, names)


def scrape(client: FlaskClient) -> Scrape:
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return parse(response.get_data(as_text=True))


@pytest.fixture
def registry_app(tmp_path: Path, db_url) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    app = build_app(tmp_path / "registry", registry=True, DATABASE_URL=db_url(),
                    METRICS_TOKEN=TOKEN)
    yield app
    app.extensions["registry_service"].store.engine.dispose()


@dataclass
class Kiosk:
    """A terminal's calls to the registry app's API."""

    http: FlaskClient
    token: str

    def claim(self, patron: str, course: str, key: str) -> None:
        response = self.http.post("/api/v1/me/claims", json={"course": course}, headers={
            "Authorization": f"Bearer {self.token}", "X-Patron-Session": patron,
            "Idempotency-Key": key})
        assert response.status_code == 200, response.get_data(as_text=True)

    def beat(self) -> None:
        """What a terminal's heartbeat does: a call that records its last contact."""
        response = self.http.get("/api/v1/maintenance",
                                 headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200, response.get_data(as_text=True)


def kiosk_of(app: Flask) -> Kiosk:
    service: RegistryService = app.extensions["registry_service"]
    token, _ = service.add_terminal("ANT-PERMEKE", "metrics kiosk", actor="test")
    return Kiosk(app.test_client(), token)


# --- Who may read it ----------------------------------------------------------------------


def test_without_a_token_setting_there_is_no_metrics_page(tmp_path: Path) -> None:
    app = build_app(tmp_path, registry=True)
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404
    assert "kiosk_metrics" not in app.extensions  # and nothing is measured
    app.extensions["registry_service"].store.engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_the_token_metrics_answers_401_and_shows_no_figure(registry_app: Flask) -> None:
    client = registry_app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong-token"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN[:-1]}"},
                    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer é"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "kiosk_" not in response.get_data(as_text=True)
    # A staff log-in is no way in either: only the scraper's token is.
    log_in_staff(client, "coordinator")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=SCRAPE).status_code == 200


# --- What it says -----------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_answer_is_the_prometheus_text_format_with_every_family(
        registry_app: Flask) -> None:
    client = registry_app.test_client()
    client.get("/readyz")
    client.get("/no/such/page/12345")
    found = scrape(client)
    assert {"kiosk_http_request_duration_seconds", "kiosk_claims", "kiosk_database_up",
            "kiosk_seats_cap", "kiosk_seats_taken", "kiosk_waiting_list_length",
            "kiosk_outbox_waiting", "kiosk_outbox_given_up", "kiosk_terminals"} <= found.families
    assert found.value("kiosk_database_up") == 1
    duration = "kiosk_http_request_duration_seconds_count"
    assert found.value(duration, endpoint="health.readyz", method="GET", status="2xx") == 1
    # An unknown path is one series, whatever the path: the labels stay few.
    assert found.value(duration, endpoint="unmatched", method="GET", status="4xx") == 1
    assert not any("/no/such" in str(labels) for _, labels in found.samples)
    for outcome in ("granted", "waiting", "held"):  # present from the start, at zero
        assert found.value("kiosk_claims_total", outcome=outcome, via="kiosk") == 0


def test_claims_at_a_kiosk_and_at_the_desk_move_the_counters(registry_app: Flask) -> None:
    service: RegistryService = registry_app.extensions["registry_service"]
    taken = service.programme_status().seats_taken
    service.set_cap(taken + 1, actor="test", reason="one seat left")
    kiosk = kiosk_of(registry_app)
    _, first = add_patron(service)
    _, second = add_patron(service)
    before = scrape(registry_app.test_client())

    kiosk.claim(first, "word-basics", "k1")  # the last seat
    kiosk.claim(first, "excel-basics", "k2")  # a course added to it
    kiosk.claim(second, "word-basics", "k3")  # full: the waiting list
    kiosk.claim(second, "word-basics", "k3")  # the same request again: answered once
    desk = registry_app.test_client()
    log_in_staff(desk, "an.peeters")
    third_card, _ = add_patron(service)
    patron_id = _patron_id(service, third_card)
    response = desk.post(f"/en/staff/desk/patrons/{patron_id}/enrol",
                         data={"course": "word-basics"})
    assert response.status_code == 302, response.get_data(as_text=True)

    after = scrape(registry_app.test_client())
    moved = {(outcome, via): after.value("kiosk_claims_total", outcome=outcome, via=via)
             - before.value("kiosk_claims_total", outcome=outcome, via=via)
             for outcome in ("granted", "waiting", "held") for via in ("kiosk", "desk")}
    assert moved == {("granted", "kiosk"): 1, ("held", "kiosk"): 1, ("waiting", "kiosk"): 1,
                     ("granted", "desk"): 0, ("held", "desk"): 0, ("waiting", "desk"): 1}
    duration = "kiosk_http_request_duration_seconds_count"
    assert after.total(duration, endpoint="api.claim", method="POST", status="2xx") == 4
    assert after.value("kiosk_waiting_list_length") == 2
    assert after.value("kiosk_seats_taken") == after.value("kiosk_seats_cap") == taken + 1


def _patron_id(service: RegistryService, card: str) -> int:
    with service.store.read() as s:
        found = s.scalar(select(Patron.id).where(Patron.card_number == card))
    assert found is not None
    return found


def test_the_gauges_are_what_the_database_holds(registry_app: Flask) -> None:
    service: RegistryService = registry_app.extensions["registry_service"]
    service.notices.enabled = True  # mail and the academy on: claims queue for both
    service.academy.enabled = True
    service.set_cap(service.programme_status().seats_taken + 1, actor="test", reason="one")
    kiosk = kiosk_of(registry_app)
    kiosk.beat()  # online
    service.add_terminal("ANT-PERMEKE", "never seen", actor="test")  # offline
    _, gone = service.add_terminal("ANT-PERMEKE", "stolen", actor="test")
    service.revoke_terminal(gone.id, actor="test")
    for n in range(3):
        _, patron = add_patron(service)
        kiosk.claim(patron, "word-basics", f"g{n}")
    with service.store.write() as s:  # one notice the mail server refused to the end
        s.execute(update(Notice).where(Notice.id == s.scalar(select(Notice.id).limit(1)))
                  .values(attempts=MAX_ATTEMPTS))

    found = scrape(registry_app.test_client())
    programme = service.programme_status()
    assert found.value("kiosk_seats_cap") == programme.cap
    assert found.value("kiosk_seats_taken") == programme.seats_taken
    assert found.value("kiosk_waiting_list_length") == programme.waiting == 2
    mail = service.notices.counts()
    assert found.value("kiosk_outbox_waiting", outbox="email") == mail["queued"] > 0
    assert found.value("kiosk_outbox_given_up", outbox="email") == mail["failed"] == 1
    academy = service.academy.state()
    assert found.value("kiosk_outbox_waiting", outbox="academy") == academy.backlog > 0
    assert found.value("kiosk_outbox_given_up", outbox="academy") == academy.given_up
    now = service.clock()
    states = [terminal_state(t, now, __version__) for t in service.terminals()]
    for state in ("online", "offline", "outdated", "revoked"):
        assert found.value("kiosk_terminals", state=state) == states.count(state)
    assert {s: states.count(s) for s in ("offline", "revoked")} == {"offline": 1, "revoked": 1}
    # Five minutes without a beat and the kiosk counts as offline (domain.OFFLINE_AFTER).
    later = now + timedelta(minutes=6)
    service.clock = lambda: later
    assert scrape(registry_app.test_client()).value("kiosk_terminals", state="offline") == 2


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_table_locked_by_a_migration_leaves_the_scrape_answering_without_its_figures(
        registry_app: Flask) -> None:
    """The real fault: another session holds an exclusive lock on a table the scrape reads
    (as an ALTER TABLE does). The scrape does not wait for it: kiosk_database_up 0, the
    request counts still there; once the lock is gone, the figures are back."""
    client = registry_app.test_client()
    client.get("/readyz")
    url = registry_app.config["DATABASE_URL"]
    with psycopg.connect(url, connect_timeout=5) as blocker:
        blocker.execute("LOCK TABLE terminals IN ACCESS EXCLUSIVE MODE")
        found = scrape(client)
        assert found.value("kiosk_database_up") == 0
        assert "kiosk_seats_taken" not in found.families
        assert found.value("kiosk_http_request_duration_seconds_count", endpoint="health.readyz",
                           method="GET", status="2xx") == 1
        blocker.rollback()
    found = scrape(client)
    assert found.value("kiosk_database_up") == 1 and "kiosk_seats_taken" in found.families


def test_the_demo_terminal_with_its_registry_serves_metrics_without_a_visit(
        tmp_path: Path) -> None:
    """The kiosk with the registry in its own process (`kiosk demo`) has /metrics too, and a
    scrape is no patron's visit: no session cookie. A terminal of a remote registry has none."""
    app = build_app(tmp_path, METRICS_TOKEN=TOKEN)
    client = app.test_client()
    client.get("/nl/")
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    found = parse(response.get_data(as_text=True))
    assert found.value("kiosk_http_request_duration_seconds_count", endpoint="start.home",
                       method="GET", status="2xx") == 1
    app.extensions["registry_service"].store.engine.dispose()
    remote = build_app(tmp_path / "terminal", METRICS_TOKEN=TOKEN,
                       REGISTRY_URL="http://127.0.0.1:9/api/v1", REGISTRY_TOKEN="kt_x")
    assert remote.test_client().get("/metrics", headers=SCRAPE).status_code == 404


# --- gunicorn ---------------------------------------------------------------------------------


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One request on a connection of its own (so the kernel may hand it to any worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


@pytest.mark.slow
def test_under_gunicorn_every_scrape_adds_up_all_the_workers(tmp_path: Path) -> None:
    """The registry as its service runs it (`kiosk registry serve`, the unit's workers):
    requests spread over the workers, yet every scrape, whichever worker answers it, counts
    all of them. Each worker keeps its counts in a file of its own in the serve command's
    private folder (here in the test's TMPDIR): two files or more show two workers counted."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    registry = GunicornRegistry(tmp_path, KIOSK_METRICS_TOKEN=TOKEN, TMPDIR=str(temp))
    registry.start()
    try:
        [shared] = list(temp.glob("kiosk-metrics-*"))
        auth = {"Authorization": f"Bearer {registry.token}"}
        sent = 0

        def workers() -> int:
            return len({f.stem.rsplit("_", 1)[1] for f in shared.glob("histogram_*.db")})

        while workers() < 2 and sent < 400:  # the kernel chooses: ask until two have served
            batch = [threading.Thread(target=_get, args=(registry.port, "/api/v1/programme",
                                                         auth)) for _ in range(8)]
            for thread in batch:
                thread.start()
            for thread in batch:
                thread.join()
            sent += len(batch)
        assert workers() >= 2, f"one worker took all {sent} requests"
        seen = set()
        for _ in range(6):
            status, text = _get(registry.port, "/metrics", SCRAPE)
            assert status == 200, text
            seen.add(parse(text).total("kiosk_http_request_duration_seconds_count",
                                       endpoint="api.get_programme", method="GET", status="2xx"))
        assert seen == {sent}
        assert _get(registry.port, "/metrics")[0] == 401
    finally:
        registry.stop()
    assert not shared.exists()  # the serve command removed its folder on the way out
