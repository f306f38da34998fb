"""Schemathesis against the served OpenAPI document (`/api/v1/openapi.json`), on PostgreSQL.

Every operation of the document is fuzzed through the WSGI app (no network): positive cases
(what the document allows) and negative ones (what it forbids), with a real terminal token
and, for patron operations, a live patron session, so the cases reach the use cases rather
than stopping at 401. The promise: no server error (5xx other than the documented 503
busy) and no answer that breaks the document (status code, content type, body, headers).

A second test follows the document's links (sign up → log in → patron calls with that
session, claim → status and withdraw) as Schemathesis workflows. The in-suite runs are small
and derandomized (CI); `benchmarks/api_fuzz.py` runs the same machinery at 1,000 cases per
operation and prints the figures.
"""

from __future__ import annotations

import copy
import itertools
import os
import secrets
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
from flask import Flask
from hypothesis import settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import TypeAdapter
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import update

from kiosk.registry import api
from kiosk.registry.api import PATRON_HEADER, ClaimRequest, LoginRequest
from kiosk.registry.domain import LANGUAGES, NewPatron, RegistryError
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Patron
from tests.support.factories import build_app, patron_data

pytestmark = pytest.mark.postgres

# Fuzzing cases per operation in the suite, besides the coverage phase's (~10-90 each), and
# link-following workflows of up to 8 calls: ~30 s + ~20 s on the 2-core machine, within the
# ~2 minutes CI can spare (argon2 makes sign-ups and log-ins the slow calls). The big run is
# benchmarks/api_fuzz.py.
SUITE_EXAMPLES = 100
WORKFLOWS = 100
OPENAPI_PATH = "/api/v1/openapi.json"
_run = itertools.count(1)


# --- A seeded registry on its own PostgreSQL database ------------------------------------------


def _digest(value: str) -> int:
    return zlib.crc32(value.encode("utf-8", "surrogatepass"))


def _sent_as_generated(value: str) -> bool:
    return _digest(value) % 8 == 0


def unlock(service: RegistryService, card: str) -> None:
    """Undo what wrong passwords did to a patron's account (its count and its lock)."""
    with service.store.write() as s:
        s.execute(update(Patron).where(Patron.card_number == card)
                  .values(failed_logins=0, locked_until=None))


@dataclass
class SessionPatron:
    """A patron whose live session the patron cases carry; logged in again when needed."""

    card: str
    password: str
    token: str = ""
    since: float = 0.0

    def live_token(self, service: RegistryService) -> str:
        # Sessions end after 30 minutes whatever the activity: a long run renews them. A
        # fuzzed password typed again (a change of password or e-mail address, an erasure)
        # counts as a wrong log-in: the fifth locks the patron and ends their sessions (a
        # documented 429); they are unlocked and log in again for the next case.
        if not self.token or time.monotonic() - self.since > 300 or not self._alive(service):
            unlock(service, self.card)
            self.token, _ = service.login(self.card, self.password)
            self.since = time.monotonic()
        return self.token

    def _alive(self, service: RegistryService) -> bool:
        try:
            service.whoami(self.token)
        except RegistryError:
            return False
        return True


@dataclass
class FuzzRegistry:
    """The registry app on a fresh database, a terminal token and the patrons the cases use."""

    admin_url: str
    database: str
    app: Flask
    service: RegistryService
    terminal_token: str
    slugs: list[str]
    library_codes: list[str]
    # A patron the log-in cases may use (and lock out: a documented 429).
    login_card: str
    login_email: str
    login_password: str
    # Two patrons for the patron operations, and a cap of one seat: claims, give-ups and
    # withdrawals then also go through the waiting list and its promotions.
    patrons: list[SessionPatron]
    _keys: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def create(cls, admin_url: str, instance: Path) -> FuzzRegistry:
        database = f"kiosk_fuzz_{os.getpid()}_{next(_run)}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
            conn.execute(f'CREATE DATABASE "{database}"')
        url = admin_url.rsplit("/", 1)[0] + f"/{database}"
        app = build_app(instance, registry=True, DATABASE_URL=url)
        service: RegistryService = app.extensions["registry_service"]
        service.set_cap(1, actor="test")
        token, _ = service.add_terminal("ANT-PERMEKE", "fuzz kiosk", actor="test")
        # Passwords made now, not written in the code: Hypothesis draws text from the string
        # constants of the code under test, so a fixed test password ("correct horse") was
        # now and then "guessed" by a fuzzed password change, which locked the patron out.
        login = patron_data(first_name="Target", password=secrets.token_urlsafe(12))
        patrons = [patron_data(first_name=name, password=secrets.token_urlsafe(12))
                   for name in ("Seated", "Waiting")]
        return cls(
            admin_url=admin_url, database=database, app=app, service=service,
            terminal_token=token,
            slugs=[c.slug for c in service.catalogue("en").courses],
            library_codes=[lib.code for i in service.institutions() for lib in i.libraries],
            login_card=service.register(login), login_email=login.email,
            login_password=login.password,
            patrons=[SessionPatron(service.register(p), p.password) for p in patrons],
        )

    def unlock_login_patron(self) -> None:
        unlock(self.service, self.login_card)

    def close(self) -> None:
        self.service.store.engine.dispose()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def prepare(self, case: Case, sessions: bool = True) -> None:
        """Put real credentials into a case where the fuzzer generated well-formed ones.

        A missing or malformed value is what a negative case is about: it is left alone. A
        well-formed one is replaced by the terminal's token or one of the two patrons'
        tokens, except one in eight (chosen by the generated value, so a run is reproducible)
        that is sent as generated: an unknown token, to be refused with 401. `sessions=False`
        keeps the patron header as it is (a workflow passes the token of its own log-in)."""
        headers = case.headers if case.headers is not None else {}
        auth = headers.get("Authorization")
        if isinstance(auth, str) and auth.startswith("Bearer ") and not _sent_as_generated(auth):
            headers["Authorization"] = f"Bearer {self.terminal_token}"
        token = headers.get(PATRON_HEADER)
        if sessions and isinstance(token, str) and 0 < len(token) <= api.PATRON_TOKEN_MAX \
                and not _sent_as_generated(token):
            patron = self.patrons[_digest(token) % len(self.patrons)]
            headers[PATRON_HEADER] = patron.live_token(self.service)
        key = headers.get("Idempotency-Key")
        # A fuzzer repeats small keys ("0", "00"): a repeated key replays or is refused and
        # never reaches the use case. A valid key is made unique, keeping its shape.
        if isinstance(key, str) and api.IDEMPOTENCY_KEY_RE.fullmatch(key):
            headers["Idempotency-Key"] = f"{next(self._keys)}.{key}"[:100]
        case.headers = headers

    def call(self, case: Case) -> Response:
        """Send a case, with real credentials, to the registry app."""
        self.prepare(case)
        response = case.call(app=self.app)
        if case.operation.definition.raw.get("operationId") == "log_out" \
                and response.status_code == 204:
            for patron in self.patrons:  # whose session is gone: they log in again
                if patron.token == (case.headers or {}).get(PATRON_HEADER):
                    patron.token = ""
        return response

    def call_and_validate(self, case: Case) -> Response:
        response = self.call(case)
        case.validate_response(response, checks=CHECKS)
        return response


# --- Realistic values beside the generated ones -------------------------------------------------

_active: list[FuzzRegistry] = []  # the registry the hooks draw real values from


@contextmanager
def activated(registry: FuzzRegistry) -> Iterator[FuzzRegistry]:
    _active.append(registry)
    try:
        yield registry
    finally:
        _active.remove(registry)


def _valid(tp: Any) -> Callable[[Any], bool]:
    validator = Draft202012Validator(TypeAdapter(tp).json_schema(mode="validation"))
    return validator.is_valid


def _new_patrons(registry: FuzzRegistry) -> st.SearchStrategy[dict[str, Any]]:
    """Sign-ups that mostly pass the patron validation (random bodies almost never do), with
    values a person could really type: any text in names and passwords, real e-mail shapes."""
    today = date.today()
    typed = st.characters(exclude_categories=["Cc", "Cs", "Co"])  # what a keyboard can give
    return st.fixed_dictionaries({
        "first_name": st.text(st.characters(categories=["L", "M"]), min_size=1, max_size=60),
        "last_name": st.sampled_from(["Janssens", "Peeters", "Dubois", "O'Brien-Ngũgĩ"]),
        "email": st.emails(),
        "birth_date": st.dates(date(today.year - 110, 1, 1), date(today.year - 16, 1, 1))
        .map(date.isoformat),
        "postcode": st.from_regex(r"\A[1-9][0-9]{3}\Z"),
        "library_code": st.sampled_from(registry.library_codes),
        "password": st.text(typed, min_size=8, max_size=128),
        "phone": st.sampled_from(["", "0470 12 34 56", "+32 3 123 45 67", "12"]),
        "language": st.sampled_from(LANGUAGES),
        "consent": st.just(True),
    })


def _logins(registry: FuzzRegistry) -> st.SearchStrategy[dict[str, Any]]:
    card = registry.login_card
    return st.fixed_dictionaries({
        "identifier": st.sampled_from([card, f"{card[:4]} {card[4:8]} {card[8:]}",
                                       registry.login_email, registry.login_email.upper()]),
        "password": st.sampled_from([registry.login_password]) | st.text(max_size=20),
    })


def _with_nul(value: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The same object with a NUL byte in one of its strings: PostgreSQL text cannot hold
    one, so the edge must refuse it (422) before any query."""
    names = sorted(k for k, v in value.items() if isinstance(v, str))
    if not names:
        return st.just(value)
    return st.sampled_from(names).map(
        lambda name: {**value, name: value[name][:3] + "\x00" + value[name][3:]})


def install_hooks(schema: schemathesis.BaseSchema) -> None:
    """Mix real course slugs, sign-ups and log-ins into the cases, so that claims, withdrawals
    and log-ins also succeed, and the same with a NUL byte, so that it reaches the queries. A
    body or path that breaks the document is left alone: it is a negative case, and stays one."""
    valid = {"claim": _valid(ClaimRequest), "log_in": _valid(LoginRequest),
             "register_patron": _valid(NewPatron)}

    @schema.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy:
        name = context.operation.definition.raw.get("operationId") if context.operation else ""
        if not _active or name not in valid or not valid[name](body):
            return st.just(body)
        registry = _active[-1]
        real = {"claim": lambda: st.sampled_from(registry.slugs).map(
                    lambda slug: {**body, "course": slug}),
                "log_in": lambda: _logins(registry),
                "register_patron": lambda: _new_patrons(registry)}[name]()
        return st.just(body) | real | real.flatmap(_with_nul)

    @schema.hook
    def flatmap_path_parameters(context: schemathesis.HookContext,
                                path_parameters: dict[str, Any] | None) -> st.SearchStrategy:
        slug = (path_parameters or {}).get("slug")
        if not _active or not (isinstance(slug, str) and 1 <= len(slug) <= 80):
            return st.just(path_parameters)
        real = st.sampled_from(_active[-1].slugs).map(
            lambda real: {**(path_parameters or {}), "slug": real})
        return st.just(path_parameters) | real | real.flatmap(_with_nul)


# --- What is checked ---------------------------------------------------------------------------


def not_a_server_error_but_busy(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """5xx is a bug, except the documented 503 busy (a lock wait past its bound)."""
    if response.status_code == 503:
        body = response.json() if "json" in (response.headers.get("content-type") or [""])[0] \
            else {}
        if isinstance(body, dict) and body.get("error", {}).get("code") == "busy":
            return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    not_a_server_error_but_busy,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    missing_required_header,
]


# --- The test ----------------------------------------------------------------------------------


def _document_server() -> Flask:
    """The API blueprint alone serves the document without a database, so the schema can be
    loaded at collection time (Schemathesis' lazy `from_fixture` does not run on pytest 9.2).
    The cases are sent to the real registry app; `test_the_fuzzed_document_is_the_served_one`
    checks that it serves the very same document."""
    app = Flask(__name__)
    app.register_blueprint(api.bp)
    return app


# An explicit configuration, so that a schemathesis.toml lying around changes nothing. Unknown
# query parameters are ignored, as HTTP APIs do (the document does not forbid them): a request
# with one is not "invalid data" that must be refused.
# Workflows are built from valid calls: a chain with a refused link teaches nothing more than
# the single-call fuzzing above already covers with its negative cases.
CONFIG = schemathesis.Config.from_dict({
    "generation": {"allow-extra-parameters": False},
    "phases": {"stateful": {"generation": {"mode": "positive"}}},
})
schema = schemathesis.openapi.from_wsgi(OPENAPI_PATH, _document_server(), config=CONFIG)
LOADED = copy.deepcopy(schema.raw_schema)  # Schemathesis adds the links it infers in place
install_hooks(schema)


@pytest.fixture(scope="module")
def fuzz_registry(postgres_admin: str, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[FuzzRegistry]:
    registry = FuzzRegistry.create(postgres_admin, tmp_path_factory.mktemp("fuzz"))
    with activated(registry):
        yield registry
    registry.close()


def test_the_fuzzed_document_is_the_served_one(fuzz_registry: FuzzRegistry) -> None:
    served = fuzz_registry.app.test_client().get(OPENAPI_PATH)
    assert served.status_code == 200
    assert served.get_json() == LOADED


# derandomize: the same cases on every run (CI must not flake on a new random draw; the big
# run explores). deadline=None: a sign-up or log-in hashes with argon2, and a busy CI machine
# makes any per-case time limit a source of flakes. database=None: nothing written to
# .hypothesis/, nothing replayed from an earlier run. No health check is suppressed.
@schema.parametrize()
@settings(max_examples=SUITE_EXAMPLES, deadline=None, derandomize=True, database=None)
def test_api_fuzzing_finds_no_server_error_and_no_schema_violation(
        case: Case, fuzz_registry: FuzzRegistry) -> None:
    fuzz_registry.call_and_validate(case)


# --- Workflows: the document's links (sign up → log in → claim → status / withdraw) ---------


class Workflow(schema.as_state_machine()):  # type: ignore[misc]
    """Chains of calls along the OpenAPI links: a patron operation reached this way carries
    the token its own log-in answered, so sessions are not supplied here.

    Hypothesis replays scenarios, and a link is only followed when its answer succeeded: a
    replayed sign-up must not meet its own e-mail address, nor a replayed log-in an account
    an earlier scenario locked, or the replay differs ("flaky strategy")."""

    _emails = itertools.count(1)

    def setup(self) -> None:
        _active[-1].unlock_login_patron()

    def before_call(self, case: Case) -> None:
        _active[-1].prepare(case, sessions=False)
        body = case.body
        if case.operation.definition.raw.get("operationId") == "register_patron" \
                and isinstance(body, dict) and isinstance(body.get("email"), str):
            body["email"] = f"w{next(self._emails)}.{body['email']}"

    def get_call_kwargs(self, case: Case) -> dict[str, Any]:
        return {"app": _active[-1].app}

    def validate_response(self, response: Response, case: Case,
                          additional_checks: Any = None, **kwargs: Any) -> None:
        case.validate_response(response, checks=CHECKS)


def test_api_workflows_find_no_server_error_and_no_schema_violation(
        fuzz_registry: FuzzRegistry) -> None:
    Workflow.run(settings=settings(max_examples=WORKFLOWS, stateful_step_count=8,
                                   deadline=None, derandomize=True, database=None))


# --- What the fuzzer rarely hits by chance, pinned ---------------------------------------------


def _headers(registry: FuzzRegistry, key: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {registry.terminal_token}",
               PATRON_HEADER: registry.patrons[0].live_token(registry.service), **extra}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _fields(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "invalid"
    return error["fields"]


def test_a_nul_byte_in_any_json_string_is_refused_with_422_naming_the_field(
        fuzz_registry: FuzzRegistry) -> None:
    """PostgreSQL text cannot hold NUL (SQLite would store it): the edge refuses it for every
    operation, before any query, instead of a 500 from the database."""
    http = fuzz_registry.app.test_client()
    claim = http.post("/api/v1/me/claims", json={"course": "excel\x00basics"},
                      headers=_headers(fuzz_registry, key="nul-1"))
    assert _fields(claim) == {"course": "invalid_characters"}
    login = http.post("/api/v1/sessions", json={"identifier": "mia\x00@example.be",
                                                "password": "x"},
                      headers=_headers(fuzz_registry, key="nul-2"))
    assert _fields(login) == {"identifier": "invalid_characters"}
    sign_up = {"first_name": "Mia", "last_name": "Peeters", "email": "nul@example.be",
               "birth_date": "1950-01-01", "postcode": "2000", "library_code": "ANT\x00",
               "password": "long enough", "consent": True, "extra": ["ok", "\x00"]}
    fields = _fields(http.post("/api/v1/patrons", json=sign_up,
                               headers=_headers(fuzz_registry, key="nul-3")))
    assert fields == {"library_code": "invalid_characters", "extra.1": "invalid_characters"}
    # Checked together with the types, so that one answer names every problem.
    mixed = http.post("/api/v1/me/claims", json={"course": 7, "x": "\x00"},
                      headers=_headers(fuzz_registry, key="nul-4"))
    assert _fields(mixed) == {"x": "invalid_characters", "course": "invalid_type"}
    # A lone surrogate (valid JSON, not UTF-8) cannot be stored either.
    surrogate = http.post("/api/v1/me/claims", data='{"course": "a\\ud800"}',
                          content_type="application/json",
                          headers=_headers(fuzz_registry, key="nul-5"))
    assert _fields(surrogate) == {"course": "invalid_characters"}
    # Refusals are not kept for their key: the corrected request runs.
    fixed = http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                      headers=_headers(fuzz_registry, key="nul-1"))
    assert fixed.status_code == 200, fixed.get_data(as_text=True)


def test_a_nul_byte_in_a_path_segment_is_refused_with_422(fuzz_registry: FuzzRegistry) -> None:
    http = fuzz_registry.app.test_client()
    course = http.get("/api/v1/courses/excel%00basics", headers=_headers(fuzz_registry))
    assert _fields(course) == {"slug": "invalid_characters"}
    withdraw = http.delete("/api/v1/me/enrolments/excel%00basics",
                           headers=_headers(fuzz_registry, key="nul-path"))
    assert _fields(withdraw) == {"slug": "invalid_characters"}


def test_the_edge_enforces_the_documented_header_limits(fuzz_registry: FuzzRegistry) -> None:
    http = fuzz_registry.app.test_client()
    too_long = http.delete("/api/v1/sessions/current", headers=_headers(
        fuzz_registry, key="long-token", **{PATRON_HEADER: "t" * (api.PATRON_TOKEN_MAX + 1)}))
    assert too_long.status_code == 401
    assert too_long.get_json()["error"]["code"] == "session_invalid"
    for key in ("with space", "café", "tab\there"):  # printable, but not the documented pattern
        response = http.delete("/api/v1/me/waiting", headers=_headers(fuzz_registry, key=key))
        assert response.status_code == 400, key
        assert response.get_json()["error"]["code"] == "idempotency_key_invalid"


def test_answers_carry_rfc3339_date_times_with_an_offset(fuzz_registry: FuzzRegistry) -> None:
    """The document says `format: date-time` (RFC 3339): an offset is part of it."""
    http = fuzz_registry.app.test_client()
    claim = http.post("/api/v1/me/claims", json={"course": "excel-basics"},
                      headers=_headers(fuzz_registry, key="date-time"))
    assert claim.status_code == 200, claim.get_data(as_text=True)
    status = http.get("/api/v1/me/status", headers=_headers(fuzz_registry)).get_json()
    stamps = [e["enrolled_at"] for e in status["enrolments"]]
    if status["seated_at"] is not None:
        stamps.append(status["seated_at"])
    assert stamps and all(s.endswith("Z") for s in stamps), stamps


def test_json_nested_past_the_parsers_depth_is_malformed_not_a_crash(
        fuzz_registry: FuzzRegistry) -> None:
    """Inside the 64 KB limit a body can nest arrays deeper than the parser recurses."""
    http = fuzz_registry.app.test_client()
    deep = '{"course": "excel-basics", "n": ' + "[" * 20000 + "]" * 20000 + "}"
    response = http.post("/api/v1/me/claims", data=deep, content_type="application/json",
                         headers=_headers(fuzz_registry, key="deep"))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "malformed_json"
