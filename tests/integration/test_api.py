"""The registry API itself, where the client cannot reach: authentication, the
Idempotency-Key protocol, malformed requests, the OpenAPI document and the health checks."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from kiosk.answer_headers import CSP
from kiosk.registry import http_client
from kiosk.registry.api_server import ROUTES
from kiosk.registry.domain import RegistryError
from kiosk.registry.http_client import HttpRegistryClient
from kiosk.registry.services import RegistryService
from kiosk.registry.store import EnrolmentRow, Patron, Store, make_engine
from tests.support.factories import build_app, patron_data
from tests.support.live_server import serve


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[[str], Flask]]:
    apps: list[Flask] = []

    def make(url: str) -> Flask:
        apps.append(build_app(tmp_path / f"instance-{len(apps)}", registry=True,
                              DATABASE_URL=url))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["registry_service"].store.engine.dispose()


class Api:
    """A Flask test client of the registry app that sends a terminal's token."""

    def __init__(self, app: Flask):
        self.app = app
        self.service: RegistryService = app.extensions["registry_service"]
        self.token, self.terminal = self.service.add_terminal("ANT-PERMEKE", "test kiosk",
                                                              actor="test")
        self.http: FlaskClient = app.test_client()

    def headers(self, patron: str | None = None, key: str | None = None,
                **extra: str) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}", **extra}
        if patron:
            out["X-Patron-Session"] = patron
        if key:
            out["Idempotency-Key"] = key
        return out

    def patron(self) -> str:
        data = patron_data()
        card = self.service.register(data)
        return self.service.login(card, data.password)[0]

    def count(self, model: Any) -> int:
        with self.service.store.read() as s:
            return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def api(make_app, tmp_path) -> Api:  # type: ignore[no-untyped-def]
    """On SQLite: the protocol checks do not depend on the database."""
    return Api(make_app(f"sqlite:///{tmp_path / 'api.sqlite3'}"))


@pytest.fixture
def api_on(make_app, db_url) -> Api:  # type: ignore[no-untyped-def]
    """On SQLite and on PostgreSQL."""
    return Api(make_app(db_url()))


def code_of(response: Any) -> str:
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    return response.get_json()["error"]["code"]


def register_body(n: int | None = None, **overrides: object) -> dict[str, Any]:
    data = patron_data(n, **overrides)
    return {f: getattr(data, f) for f in data.__dataclass_fields__}


# --- Terminals ---------------------------------------------------------------------------------


def test_no_or_unknown_token_is_401_with_www_authenticate(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer kt_not-a-token"},
                    {"Authorization": f"Basic {api.token}"}, {"Authorization": "Bearer "}):
        response = api.http.get("/api/v1/programme", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert code_of(response) == "terminal_unauthorized"
    assert api.http.get("/api/v1/programme", headers=api.headers()).status_code == 200


def test_a_revoked_terminal_is_refused(api: Api) -> None:
    api.service.revoke_terminal(api.terminal.id, actor="test")
    response = api.http.get("/api/v1/institutions", headers=api.headers())
    assert response.status_code == 401 and code_of(response) == "terminal_revoked"
    assert "WWW-Authenticate" in response.headers
    response = api.http.post("/api/v1/patrons", json=register_body(),
                             headers=api.headers(key="k1"))
    assert response.status_code == 401 and code_of(response) == "terminal_revoked"


def test_the_terminal_is_seen_with_its_version(api: Api) -> None:
    api.http.get("/api/v1/programme", headers=api.headers(**{"User-Agent": "kiosk-terminal/9"}))
    (view,) = api.service.terminals()
    assert view.version == "kiosk-terminal/9" and view.last_seen_at is not None


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_every_write_needs_an_idempotency_key(api: Api) -> None:
    patron = api.patron()
    writes = [("post", "/api/v1/patrons", register_body()),
              ("post", "/api/v1/sessions", {"identifier": "x", "password": "y"}),
              ("post", "/api/v1/me/claims", {"course": "excel-basics"}),
              ("delete", "/api/v1/me/enrolments/excel-basics", None),
              ("delete", "/api/v1/me/seat", None), ("delete", "/api/v1/me/waiting", None),
              ("delete", "/api/v1/sessions/current", None)]
    for method, path, body in writes:
        response = getattr(api.http, method)(path, json=body, headers=api.headers(patron))
        assert response.status_code == 400, path
        assert code_of(response) == "idempotency_key_required"
    too_long = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                             headers=api.headers(patron, key="k" * 101))
    assert too_long.status_code == 400 and code_of(too_long) == "idempotency_key_invalid"
    assert api.count(EnrolmentRow) == 0


def test_a_claim_replayed_ten_times_runs_once(api_on: Api) -> None:
    api = api_on
    patron = api.patron()
    key = str(uuid.uuid4())
    answers = [api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                             headers=api.headers(patron, key=key)) for _ in range(10)]
    assert {r.status_code for r in answers} == {200}
    assert len({r.get_data() for r in answers}) == 1
    assert answers[0].get_json() == {"standing": "seated", "position": None,
                                     "newly_granted": True}
    assert "Idempotent-Replayed" not in answers[0].headers
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in answers[1:])
    assert api.count(EnrolmentRow) == 1
    # A new key is a new claim: same seat, not newly granted.
    again = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                          headers=api.headers(patron, key=str(uuid.uuid4())))
    assert again.get_json()["newly_granted"] is False


def test_a_registration_replayed_gives_the_same_card_and_one_patron(api_on: Api) -> None:
    api = api_on
    body = register_body()
    answers = [api.http.post("/api/v1/patrons", json=body, headers=api.headers(key="reg-1"))
               for _ in range(10)]
    assert {r.status_code for r in answers} == {201}
    assert len({r.get_json()["card_number"] for r in answers}) == 1
    assert api.count(Patron) == 1


def test_a_204_and_a_stored_refusal_are_replayed_too(api_on: Api) -> None:
    api = api_on
    patron = api.patron()
    api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                  headers=api.headers(patron, key="c1"))
    for _ in range(3):  # the second time would be 409 not_seated if it ran again
        response = api.http.delete("/api/v1/me/seat", headers=api.headers(patron, key="g1"))
        assert response.status_code == 204
    for _ in range(2):
        response = api.http.post("/api/v1/me/claims", json={"course": "nope"},
                                 headers=api.headers(patron, key="c2"))
        assert response.status_code == 404 and code_of(response) == "course_not_found"
    assert response.headers["Idempotent-Replayed"] == "true"


def test_the_same_key_with_another_body_is_refused(api_on: Api) -> None:
    api = api_on
    patron = api.patron()
    first = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                          headers=api.headers(patron, key="k"))
    assert first.status_code == 200
    other = api.http.post("/api/v1/me/claims", json={"course": "instagram"},
                          headers=api.headers(patron, key="k"))
    assert other.status_code == 422 and code_of(other) == "idempotency_key_reused"
    other_lang = api.http.post("/api/v1/me/claims?lang=fr", json={"course": "excel-basics"},
                               headers=api.headers(patron, key="k"))
    assert other_lang.status_code == 422
    assert api.count(EnrolmentRow) == 1


def test_keys_belong_to_their_terminal(api_on: Api) -> None:
    api = api_on
    other_token, _ = api.service.add_terminal("ANT-PERMEKE", "kiosk 2", actor="test")
    body = register_body()
    first = api.http.post("/api/v1/patrons", json=body, headers=api.headers(key="same"))
    second = api.http.post("/api/v1/patrons", json=body, headers={
        "Authorization": f"Bearer {other_token}", "Idempotency-Key": "same"})
    assert first.status_code == 201
    assert second.status_code == 422 and second.get_json()["error"]["fields"] == {
        "email": "email_taken"}


def test_a_validation_refusal_is_not_stored(api_on: Api) -> None:
    api = api_on
    bad = api.http.post("/api/v1/patrons", json=register_body(postcode="12"),
                        headers=api.headers(key="fix-me"))
    assert bad.status_code == 422 and code_of(bad) == "invalid"
    assert bad.get_json()["error"]["fields"] == {"postcode": "postcode_invalid"}
    typed = api.http.post("/api/v1/patrons", json={"first_name": 3},
                          headers=api.headers(key="fix-me"))
    assert typed.status_code == 422
    assert typed.get_json()["error"]["fields"]["first_name"] == "invalid_type"
    assert typed.get_json()["error"]["fields"]["email"] == "required"
    good = api.http.post("/api/v1/patrons", json=register_body(),
                         headers=api.headers(key="fix-me"))
    assert good.status_code == 201
    assert api.count(Patron) == 1


def test_a_crash_does_not_hold_the_key(api_on: Api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A use case that fails unexpectedly rolled back: the retry with its key may run."""
    api = api_on
    patron = api.patron()
    real = api.service.claim
    calls = []

    def flaky(token: str, slug: str) -> Any:
        calls.append(slug)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real(token, slug)

    monkeypatch.setattr(api.service, "claim", flaky)
    crash = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                          headers=api.headers(patron, key="crash"))
    assert crash.status_code == 500 and code_of(crash) == "internal_error"
    retry = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                          headers=api.headers(patron, key="crash"))
    assert retry.status_code == 200, retry.get_json()
    assert retry.get_json()["standing"] == "seated"
    assert api.count(EnrolmentRow) == 1


def test_a_retry_whose_use_case_now_stops_at_once_still_gets_the_first_answer(
        api_on: Api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL the key's mark goes with the use case's first statement: a use case that
    stops before any sends it then, and finds the key's answer, as a retry must."""
    api = api_on
    patron = api.patron()
    first = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                          headers=api.headers(patron, key="once"))
    assert first.status_code == 200

    def refuse(token: str, slug: str) -> Any:
        raise RegistryError("course_not_found")

    monkeypatch.setattr(api.service, "claim", refuse)
    retry = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                          headers=api.headers(patron, key="once"))
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_data() == first.get_data()
    refused = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                            headers=api.headers(patron, key="twice"))
    assert refused.status_code == 404  # a new key: the use case's own answer, stored
    again = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                          headers=api.headers(patron, key="twice"))
    assert again.status_code == 404 and again.headers["Idempotent-Replayed"] == "true"
    assert api.count(EnrolmentRow) == 1


def twenty_at_once(api: Api, path: str, body: bytes,
                   headers: dict[str, str]) -> list[requests.Response]:
    """The same POST from twenty threads at once against the real server."""
    barrier = threading.Barrier(20)
    answers: list[requests.Response] = []
    lock = threading.Lock()
    with serve(api.app, threads=20) as url:
        def post() -> None:
            barrier.wait()
            response = requests.post(f"{url}{path}", data=body, timeout=60,
                                     headers={**headers, "Content-Type": "application/json"})
            with lock:
                answers.append(response)

        threads = [threading.Thread(target=post) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
    return answers


def test_twenty_concurrent_requests_with_one_key_run_once(api_on: Api) -> None:
    """Threads against the real server: one execution, every other answer the same replay
    or 409 idempotency_in_progress with Retry-After (which the client retries)."""
    api = api_on
    answers = twenty_at_once(api, "/api/v1/patrons", json.dumps(register_body()).encode(),
                             api.headers(key=str(uuid.uuid4())))
    assert len(answers) == 20
    done = [r for r in answers if r.status_code == 201]
    waiting = [r for r in answers if r.status_code != 201]
    assert done, [r.text for r in answers]
    assert len({r.content for r in done}) == 1
    for r in waiting:
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "idempotency_in_progress"
        assert int(r.headers["Retry-After"]) >= 1
    assert api.count(Patron) == 1


def test_twenty_concurrent_claims_with_one_key_run_once(api_on: Api) -> None:
    """The claim's key is marked with its first read on PostgreSQL: the requests that find it
    taken answer as the long way does, by the replay or 409 in progress."""
    api = api_on
    patron = api.patron()
    answers = twenty_at_once(api, "/api/v1/me/claims", b'{"course": "excel-basics"}',
                             api.headers(patron, key=str(uuid.uuid4())))
    assert len(answers) == 20
    done = [r for r in answers if r.status_code == 200]
    assert done and all(r.json()["newly_granted"] for r in done), [r.text for r in answers]
    assert sum("Idempotent-Replayed" not in r.headers for r in done) == 1
    for r in answers:
        assert r.status_code in (200, 409), r.text
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_in_progress"
    assert api.count(EnrolmentRow) == 1


def test_the_client_waits_out_a_write_in_progress(api_on: Api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Five terminal threads send one logical registration (one key): the ones that find it
    in progress wait and retry, and all get the one card number."""
    api = api_on
    fixed = uuid.uuid4()
    monkeypatch.setattr(http_client.uuid, "uuid4", lambda: fixed)
    data = patron_data()
    cards: list[str] = []
    barrier = threading.Barrier(5)
    with serve(api.app) as url:
        client = HttpRegistryClient(url, api.token, deadline=30)

        def register() -> None:
            barrier.wait()
            cards.append(client.register(data))

        threads = [threading.Thread(target=register) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        client.close()
    assert len(cards) == 5 and len(set(cards)) == 1
    assert api.count(Patron) == 1


# --- Malformed requests ------------------------------------------------------------------------


def test_a_body_that_is_not_json(api: Api) -> None:
    text = api.http.post("/api/v1/patrons", data="first_name=Mia",
                         headers=api.headers(key="a", **{"Content-Type": "text/plain"}))
    assert text.status_code == 415 and code_of(text) == "unsupported_media_type"
    broken = api.http.post("/api/v1/patrons", data='{"first_name": "Mia",',
                           headers=api.headers(key="b", **{"Content-Type": "application/json"}))
    assert broken.status_code == 400 and code_of(broken) == "malformed_json"
    array = api.http.post("/api/v1/patrons", json=[1, 2],
                          headers=api.headers(key="c"))
    assert array.status_code == 422 and code_of(array) == "invalid"
    assert api.count(Patron) == 0


def test_a_body_over_the_limit_is_413_json(api: Api) -> None:
    body = register_body(first_name="x" * (65 * 1024))
    response = api.http.post("/api/v1/patrons", json=body, headers=api.headers(key="big"))
    assert response.status_code == 413 and code_of(response) == "too_large"
    assert api.count(Patron) == 0


def test_unknown_paths_and_methods_are_json(api: Api) -> None:
    for path in ("/api/v1/nope", "/api/v1/courses/", "/nope"):
        response = api.http.get(path, headers=api.headers())
        assert response.status_code == 404 and code_of(response) == "not_found"
    wrong = api.http.put("/api/v1/programme", headers=api.headers())
    assert wrong.status_code == 405 and code_of(wrong) == "method_not_allowed"
    assert wrong.headers["Allow"] == "GET, HEAD"


def test_every_api_answer_carries_the_apps_headers_and_its_request_id(api: Api) -> None:
    patron = api.patron()
    answers = [
        api.http.get("/api/v1/programme", headers=api.headers()),
        api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                      headers={**api.headers(patron, key="headers"),
                               "X-Request-Id": "terminal-request-0001"}),
        api.http.get("/api/v1/me/status", headers=api.headers()),  # refused: no session
        api.http.delete("/api/v1/programme", headers=api.headers()),  # 405
    ]
    assert [a.status_code for a in answers] == [200, 200, 401, 405]
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Content-Security-Policy"] == CSP
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Request-Id"]
        assert "Set-Cookie" not in answer.headers  # no visit on the API
    assert answers[1].headers["X-Request-Id"] == "terminal-request-0001"


def test_head_of_a_read_answers_its_headers_without_a_body(api: Api) -> None:
    read = api.http.get("/api/v1/programme", headers=api.headers())
    head = api.http.head("/api/v1/programme", headers=api.headers())
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == read.headers["Content-Length"]


def test_an_unknown_language_is_422(api: Api) -> None:
    patron = api.patron()
    for path in ("/api/v1/catalogue?lang=xx", "/api/v1/courses/excel-basics?lang=xx",
                 "/api/v1/me/status?lang=xx"):
        response = api.http.get(path, headers=api.headers(patron))
        assert response.status_code == 422 and code_of(response) == "invalid"
        assert response.get_json()["error"]["fields"] == {"lang": "language_unknown"}
    french = api.http.get("/api/v1/courses/excel-basics?lang=fr", headers=api.headers())
    english = api.http.get("/api/v1/courses/excel-basics", headers=api.headers())
    assert french.get_json()["title"] != english.get_json()["title"]


# --- A printed one-time password ---------------------------------------------------------------


def test_a_one_time_password_opens_only_who_am_i_the_new_password_and_log_out(
        api: Api) -> None:
    """Until the patron chooses their own password, every other patron call is 403
    `password_change_required` and does nothing, as the document says; then all is open."""
    import re

    from kiosk.registry.api import OPERATIONS
    from kiosk.registry.roles import Role, StaffView

    data = patron_data()
    card = api.service.register(data)
    librarian = StaffView(1, "an.peeters", "An Peeters", Role.LIBRARIAN, "ANT", "ANT-PERMEKE")
    secret = api.service.desk.set_password(
        librarian, api.service.desk.find(librarian, card)[0].id, None)
    assert secret is not None
    token = api.service.login(card, secret)[0]
    document = api.http.get("/api/v1/openapi.json", headers=api.headers()).get_json()
    bodies = {"claim": {"course": "excel-basics"}, "erase_account": {"password": secret},
              "change_my_details": {"email": "new@example.be", "language": "fr",
                                    "password": secret},
              "choose_alerts": {"categories": ["office"], "consent": True}}
    patron_ops = [op for op in OPERATIONS if op.patron]
    assert {op.name for op in patron_ops if op.one_time_ok} == {
        "who_am_i", "change_password", "log_out"}
    for op in patron_ops:
        path = re.sub(r"<(?:\w+:)?\w+>", "excel-basics", op.path)
        responses = document["paths"][re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", op.path)][
            op.method.lower()]["responses"]
        assert ("403" in responses) != op.one_time_ok, op.name
        if op.one_time_ok:
            continue
        response = api.http.open("/api/v1" + path, method=op.method, json=bodies.get(op.name),
                                 headers=api.headers(token, key=str(uuid.uuid4())))
        assert response.status_code == 403, (op.name, response.get_data(as_text=True))
        assert code_of(response) == "password_change_required"
    assert api.count(EnrolmentRow) == 0 and api.count(Patron) == 1  # nothing was done

    me = api.http.get("/api/v1/me", headers=api.headers(token))
    assert me.status_code == 200 and me.get_json()["must_change_password"] is True
    changed = api.http.post("/api/v1/me/password", json={"old": secret, "new": "all mine now"},
                            headers=api.headers(token, key="pw"))
    assert changed.status_code == 204
    claim = api.http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                          headers=api.headers(token, key="claim"))
    assert claim.status_code == 200 and api.count(EnrolmentRow) == 1
    out = api.http.delete("/api/v1/sessions/current", headers=api.headers(token, key="out"))
    assert out.status_code == 204


# --- OpenAPI and health ------------------------------------------------------------------------


def test_openapi_document_is_valid_and_lists_every_route(api: Api) -> None:
    response = api.http.get("/api/v1/openapi.json", headers=api.headers())
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)

    documented = {(path, method.upper()) for path, ops in document["paths"].items()
                  for method in ops}
    routes = set()
    for rule in ROUTES.iter_rules():
        path = rule.rule.removeprefix("/api/v1")
        path = path.replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:  # type: ignore[operator]
            routes.add((path, method))
    assert routes and documented == routes
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            names = {p["name"] for p in op["parameters"]}
            assert (method != "get") == ("Idempotency-Key" in names), (method, path)


def test_health_and_readiness(make_app, db_url) -> None:  # type: ignore[no-untyped-def]
    app = make_app(db_url())
    http = app.test_client()
    assert http.get("/healthz").status_code == 200
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["status"] == "ready"
    # The same app pointed at a database where no migration ran: not ready.
    service: RegistryService = app.extensions["registry_service"]
    real = service.store
    service.store = Store(make_engine(db_url()))
    try:
        pending = http.get("/readyz")
        assert pending.status_code == 503
        assert pending.get_json() == {"status": "unavailable", "reason": "migrations pending"}
        assert http.get("/healthz").status_code == 200
    finally:
        service.store.engine.dispose()
        service.store = real
