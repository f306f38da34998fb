"""The registry's JSON API under /api/v1. It only translates: HTTP in, a use case, HTTP out.

Every operation is declared once with `@operation(...)`; the same declaration routes the
request, validates its body, runs the idempotency protocol for writes (`api_server.py` serves
them) and describes itself in the OpenAPI document (`/api/v1/openapi.json`), so the document
cannot drift from the code.
Request and answer types are the domain's dataclasses, plus the types of `wire.py` for what the
domain has no object for; pydantic turns them into JSON Schema. `wire.py`, shared with the HTTP
client, also holds the adapters and the conversion of datetimes on the wire.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, jsonify
from pydantic.json_schema import JsonSchemaMode
from sqlalchemy import text
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ..version import __version__
from . import schema
from .domain import (
    LANGUAGES,
    AlertChoice,
    Catalogue,
    ClaimOutlook,
    ClaimResult,
    CourseView,
    InstitutionView,
    NewPatron,
    PatronData,
    PatronStatus,
    PatronView,
    RegistryError,
    TerminalView,
)
from .roles import StaffView
from .services import RegistryService
from .wire import (
    AlertsRequest,
    ClaimRequest,
    DetailsChange,
    DetailsChanged,
    ErasureRequest,
    ErrorBody,
    ErrorDetail,
    LoginRequest,
    MaintenanceAnswer,
    PasswordChange,
    ProgrammeAnswer,
    Registered,
    RegisterRequest,
    SessionAnswer,
    StaffLoginRequest,
    StaffSessionAnswer,
    adapter,
    dump,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
health = Blueprint("health", __name__)

PATRON_HEADER = "X-Patron-Session"
# A librarian's session on the kiosk (assisted mode): on the patron's writes it tags the action
# "assisted by"; the terminal's own token never stands for a staff member.
STAFF_HEADER = "X-Staff-Token"
STAFF_TOKEN_MAX = 200
# Limits the document states. A patron token or an Idempotency-Key beyond them is refused
# (401, 400) as the document says; a longer path segment simply names no course.
PATRON_TOKEN_MAX = 200
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,100}")  # the document's pattern and maxLength
PATH_SEGMENT_MAX = 80

# Stable error codes → HTTP status. Anything else is a 500 (and a bug).
STATUS: dict[str, int] = {
    "malformed_json": 400,
    "idempotency_key_required": 400,
    "idempotency_key_invalid": 400,
    "terminal_unauthorized": 401,
    "terminal_revoked": 401,
    "session_invalid": 401,
    "login_failed": 401,
    "staff_session_invalid": 401,
    "staff_forbidden": 403,
    "password_change_required": 403,
    "not_found": 404,
    "course_not_found": 404,
    "method_not_allowed": 405,
    "not_enrolled": 409,
    "not_seated": 409,
    "not_waiting": 409,
    "no_offer": 409,
    "offer_expired": 409,
    "idempotency_in_progress": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "invalid": 422,
    "idempotency_key_reused": 422,
    "card_needs_attention": 403,
    # The member system did not answer: no retry by the terminal (the patron tries again).
    "member_system_unavailable": 424,
    "account_locked": 429,
    "busy": 503,
    "not_set_up": 503,
}


# --- Declaring operations ------------------------------------------------------------------


@dataclass
class Call:
    """What a use case gets from the HTTP request."""

    service: RegistryService
    terminal: TerminalView
    token: str
    body: Any
    lang: str
    args: dict[str, str]
    staff_token: str = ""
    staff: StaffView | None = None  # the librarian assisting, when X-Staff-Token was sent
    lang_sent: bool = False  # `?lang=` was in the address (else `lang` is the default)

    @property
    def where(self) -> str:
        """The terminal a staff action comes from, for the audit log."""
        return f"terminal:{self.terminal.id} {self.terminal.library_code}"


@dataclass
class Operation:
    method: str
    path: str
    name: str
    summary: str
    run: Callable[[Call], Any]
    patron: bool = False
    body: Any = None
    answer: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    lang: bool = False
    staff: str = ""  # "optional": X-Staff-Token may tag it; "required": a staff session call
    # A patron call open while a printed one-time password waits to be replaced (else 403
    # `password_change_required`): who am I, the new password, log-out.
    one_time_ok: bool = False
    # Its use case reads the registry's database before anything else (no password hashed,
    # no other system called): its key's mark may go with that read, in its round trip
    # (idempotency.py), since a request that finds the key taken has then done nothing that
    # costs or shows. The claim, the hot path, is declared so.
    reads_first: bool = False


OPERATIONS: list[Operation] = []


def operation(method: str, path: str, summary: str, **options: Any) -> Callable:
    def register(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
        op = Operation(method=method, path=path, name=fn.__name__, summary=summary, run=fn,
                       **options)
        OPERATIONS.append(op)
        return fn

    return register


def _service() -> RegistryService:
    return current_app.extensions["registry_service"]


def _assisted(call: Call) -> dict[str, Any]:
    """The use case's keywords for an assisted action; none for the patron's own."""
    return {"assisted_by": call.staff, "where": call.where} if call.staff else {}


def answer(op: Operation, result: Any) -> Response:
    """The HTTP answer of an operation that ran: its status, its result as JSON."""
    if op.answer is None:
        return Response(status=op.status)
    return Response(dump(op.answer, result), status=op.status, mimetype="application/json")


# --- Errors --------------------------------------------------------------------------------

_MESSAGES = {
    "invalid": "Some values are not valid; see fields.",
    "account_locked": "Too many wrong passwords: the account is locked for a while.",
    "busy": "The registry is busy; retry after the given number of seconds.",
}


def error_response(error: RegistryError) -> Response:
    status = STATUS.get(error.code, 500)
    # `detail` holds what the use case raised with (untyped keywords): take what the wire
    # carries, as the types it has there.
    sent_retry = error.detail.get("retry_after")
    retry = int(sent_retry) if isinstance(sent_retry, int | float) else None
    until = error.detail.get("until")
    if error.code == "account_locked" and isinstance(until, datetime):
        retry = max(1, math.ceil((until - _service().clock()).total_seconds()))
    attempts_left = error.detail.get("attempts_left")
    detail = ErrorDetail(
        code=error.code,
        message=_MESSAGES.get(error.code, error.code.replace("_", " ").capitalize() + "."),
        fields=dict(error.fields),
        retry_after=retry,
        attempts_left=attempts_left if isinstance(attempts_left, int) else None,
    )
    response = Response(dump(ErrorBody, ErrorBody(detail), exclude_none=True),
                        status=status, mimetype="application/json")
    if retry is not None:
        response.headers["Retry-After"] = str(retry)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="kiosk-registry"'
    return response


_HTTP_CODES = {400: "malformed_json", 404: "not_found", 405: "method_not_allowed",
               413: "too_large", 415: "unsupported_media_type"}


def http_error_response(exc: HTTPException) -> Response:
    code = _HTTP_CODES.get(exc.code or 500)
    if code is None:
        body = ErrorBody(ErrorDetail(code="http_error", message=exc.name))
        return Response(dump(ErrorBody, body, exclude_none=True),
                        status=exc.code or 500, mimetype="application/json")
    return error_response(RegistryError(code))


def crash_response() -> Response:
    current_app.logger.exception("unhandled API error")
    body = ErrorBody(ErrorDetail(code="internal_error", message="Internal error."))
    return Response(dump(ErrorBody, body, exclude_none=True), status=500,
                    mimetype="application/json")


bp.register_error_handler(RegistryError, error_response)
bp.register_error_handler(HTTPException, http_error_response)
bp.register_error_handler(Exception, lambda exc: crash_response())


# --- The operations ------------------------------------------------------------------------


@operation("GET", "/institutions", "The institutions and their libraries",
           answer=list[InstitutionView])
def list_institutions(call: Call) -> list[InstitutionView]:
    return call.service.institutions()


@operation("GET", "/catalogue", "The courses on offer, by category, in one language",
           answer=Catalogue, lang=True)
def get_catalogue(call: Call) -> Catalogue:
    return call.service.catalogue(call.lang)


@operation("GET", "/courses/<slug>", "One course", answer=CourseView, lang=True, errors=(404,))
def get_course(call: Call) -> CourseView:
    return call.service.course(call.args["slug"], call.lang)


@operation("GET", "/programme", "Seats: cap, taken, left, waiting", answer=ProgrammeAnswer)
def get_programme(call: Call) -> ProgrammeAnswer:
    status = call.service.programme_status()
    return ProgrammeAnswer(cap=status.cap, seats_taken=status.seats_taken,
                           seats_left=status.seats_left, waiting=status.waiting,
                           academy_url=call.service.academy_url(),
                           practice=call.service.practice.active(),
                           promotion=status.promotion)


@operation("POST", "/patrons", "Create a library account", body=RegisterRequest,
           answer=Registered, status=201, staff="optional")
def register_patron(call: Call) -> Registered:
    body: RegisterRequest = call.body
    if body.identity_checked and call.staff is None:
        raise RegistryError("invalid", {"identity_checked": "staff_only"})
    data = NewPatron(**{f.name: getattr(body, f.name) for f in dataclasses.fields(NewPatron)})
    made = call.service.register_account(data, assisted_by=call.staff,
                                         identity_checked=body.identity_checked,
                                         where=call.where)
    return Registered(made.card_number, made.possible_duplicate, made.pending_until)


@operation("POST", "/sessions", "Log a patron in (card number or e-mail + password; or a "
           "library card + PIN, checked by the member system of the terminal's institution)",
           body=LoginRequest, answer=SessionAnswer, status=201, errors=(403, 424, 429))
def log_in(call: Call) -> SessionAnswer:
    token, patron = call.service.login(call.body.identifier, call.body.password,
                                       library_code=call.terminal.library_code,
                                       language=call.body.language)
    return SessionAnswer(token, patron)


@operation("DELETE", "/sessions/current", "Log the patron out (revokes the session)",
           patron=True, status=204, one_time_ok=True)
def log_out(call: Call) -> None:
    call.service.logout(call.token)


@operation("GET", "/me", "The logged-in patron", patron=True, answer=PatronView,
           one_time_ok=True)
def who_am_i(call: Call) -> PatronView:
    return call.service.whoami(call.token)


@operation("GET", "/me/status", "Seat, waiting-list position and courses", patron=True,
           answer=PatronStatus, lang=True)
def my_status(call: Call) -> PatronStatus:
    return call.service.status(call.token, call.lang)


@operation("GET", "/me/outlook", "What a claim would give now: a seat, or a place in line and "
           "why", patron=True, answer=ClaimOutlook)
def claim_outlook(call: Call) -> ClaimOutlook:
    return call.service.claim_outlook(call.token)


@operation("POST", "/me/claims", "Enrol in a course: a seat, or a place on the waiting list",
           patron=True, body=ClaimRequest, answer=ClaimResult, errors=(404,), staff="optional",
           reads_first=True)
def claim(call: Call) -> ClaimResult:
    return call.service.claim(call.token, call.body.course, **_assisted(call))


@operation("DELETE", "/me/enrolments/<slug>", "Stop a course (the last one frees the seat)",
           patron=True, answer=PatronStatus, lang=True, errors=(409,), staff="optional")
def withdraw(call: Call) -> PatronStatus:
    status = call.service.withdraw(call.token, call.args["slug"], **_assisted(call))
    if not call.lang_sent:  # as in-process: in the patron's own language
        return status
    return call.service.status(call.token, call.lang)


@operation("DELETE", "/me/seat", "Give up the seat", patron=True, status=204, errors=(409,),
           staff="optional")
def give_up_seat(call: Call) -> None:
    call.service.give_up_seat(call.token, **_assisted(call))


@operation("DELETE", "/me/waiting", "Leave the waiting list", patron=True, status=204,
           errors=(409,), staff="optional")
def leave_waiting_list(call: Call) -> None:
    call.service.leave_waiting_list(call.token, **_assisted(call))


@operation("POST", "/staff/sessions", "A librarian takes over this kiosk (assisted mode): "
           "their staff session token; only desk roles (403 `staff_forbidden` otherwise)",
           body=StaffLoginRequest, answer=StaffSessionAnswer, status=201, errors=(403, 429))
def staff_log_in(call: Call) -> StaffSessionAnswer:
    token, staff = call.service.assist.start(call.body.username, call.body.password,
                                             where=call.where)
    return StaffSessionAnswer(token, staff)


@operation("GET", "/staff/sessions", "The librarian behind X-Staff-Token, while the session "
           "lives (401 `staff_session_invalid` once ended)", answer=StaffView, errors=(403,),
           staff="required")
def staff_who_is(call: Call) -> StaffView:
    return call.service.assist.assistant(call.staff_token)


@operation("DELETE", "/staff/sessions", "End assisted mode: the staff session ends",
           status=204, staff="required")
def staff_log_out(call: Call) -> None:
    call.service.staff.logout(call.staff_token, where=call.where)


@operation("POST", "/staff/sessions/hand-back", "Assisted mode: the librarian hands the kiosk "
           "back to the patron for a private step (audited); their session lives on",
           status=204, staff="required")
def staff_hand_back(call: Call) -> None:
    call.service.staff.hand_back(call.staff_token, where=call.where)


@operation("GET", "/maintenance", "The message kiosks show instead of the journey, if any",
           answer=MaintenanceAnswer)
def get_maintenance(call: Call) -> MaintenanceAnswer:
    found = call.service.maintenance()
    if found is None:
        return MaintenanceAnswer(active=False)
    return MaintenanceAnswer(active=True, messages=found.messages, until=found.until)


@operation("GET", "/me/data", "Everything held about the patron (right of access)",
           patron=True, answer=PatronData, lang=True)
def my_data(call: Call) -> PatronData:
    return call.service.my_data(call.token, call.lang)


@operation("POST", "/me/erasure", "Erase the account after the password is typed again; the "
           "seat goes to the next in line", patron=True, body=ErasureRequest, status=204,
           errors=(422, 429))
def erase_account(call: Call) -> None:
    call.service.erase_account(call.token, call.body.password)


@operation("POST", "/me/offer/acceptance", "Accept the seat offered to the patron (offer and "
           "hold): seated now; after the offer's end, 409 offer_expired", patron=True,
           answer=PatronStatus, lang=True, errors=(409,))
def accept_offer(call: Call) -> PatronStatus:
    status = call.service.accept_offer(call.token)
    if not call.lang_sent:  # as in-process: in the patron's own language
        return status
    return call.service.status(call.token, call.lang)


@operation("DELETE", "/me/offer", "Decline the seat offered: the place is dropped and the seat "
           "goes to the next in line", patron=True, status=204, errors=(409,))
def decline_offer(call: Call) -> None:
    call.service.decline_offer(call.token)


@operation("POST", "/me/password", "Choose a new password, typing the current one again "
           "(required after a printed one-time password)", patron=True, body=PasswordChange,
           status=204, errors=(422, 429), one_time_ok=True)
def change_password(call: Call) -> None:
    call.service.change_password(call.token, call.body.old, call.body.new)


@operation("POST", "/me/details", "The patron's own e-mail address (typing their password "
           "again) and the language of their e-mails; a new address is told at both "
           "addresses", patron=True, body=DetailsChange, answer=DetailsChanged,
           errors=(422, 429))
def change_my_details(call: Call) -> DetailsChanged:
    changed = call.service.change_my_details(call.token, call.body.email, call.body.language,
                                             call.body.password)
    return DetailsChanged(list(changed))


@operation("GET", "/me/alerts", "E-mails about new courses: the categories, those the "
           "patron chose, and whether such e-mails can go", patron=True, answer=AlertChoice,
           lang=True)
def my_alerts(call: Call) -> AlertChoice:
    return call.service.alerts.choice(call.token, call.lang)


@operation("POST", "/me/alerts", "Choose the categories of new courses to hear about by "
           "e-mail (none: stop all); choosing any needs `consent` and an e-mail address",
           patron=True, body=AlertsRequest, status=204, errors=(422,))
def choose_alerts(call: Call) -> None:
    call.service.alerts.choose(call.token, call.body.categories, call.body.consent)


# --- The OpenAPI document ------------------------------------------------------------------


def _schema_ref(tp: Any, schemas: dict[str, Any], mode: JsonSchemaMode) -> dict[str, Any]:
    found = adapter(tp).json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    schemas.update(found.pop("$defs", {}))
    name = getattr(tp, "__name__", None)
    if name and "title" in found and not hasattr(tp, "__origin__"):
        schemas[name] = found
        return {"$ref": f"#/components/schemas/{name}"}
    return found


def _links(op: Operation) -> dict[str, Any]:
    """OpenAPI links: where the values of a successful answer go next. They document a
    client's flow (sign up, log in, use the session) and let a stateful fuzzer follow it."""
    session = f"header.{PATRON_HEADER}"
    same_session = f"$request.header.{PATRON_HEADER}"
    if op.name == "register_patron":
        return {"log_in": {"operationId": "log_in", "requestBody": {
            "identifier": "$response.body#/card_number", "password": "$request.body#/password"}}}
    if op.name == "log_in":  # the new session token is the patron header of every patron call
        return {o.name: {"operationId": o.name, "parameters": {session: "$response.body#/token"}}
                for o in OPERATIONS if o.patron}
    if op.name == "claim":
        return {"my_status": {"operationId": "my_status", "parameters": {session: same_session}},
                "withdraw": {"operationId": "withdraw", "parameters": {
                    session: same_session, "path.slug": "$request.body#/course"}}}
    return {}


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    error_ref = _schema_ref(ErrorBody, schemas, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", op.path)
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1, "maxLength": PATH_SEGMENT_MAX}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        if op.lang:
            parameters.append({"name": "lang", "in": "query", "required": False,
                               "schema": {"type": "string", "enum": list(LANGUAGES)}})
        if op.patron:
            parameters.append({"name": PATRON_HEADER, "in": "header", "required": True,
                               "schema": {"type": "string", "minLength": 1,
                                          "maxLength": PATRON_TOKEN_MAX}})
        if op.staff:
            parameters.append({
                "name": STAFF_HEADER, "in": "header", "required": op.staff == "required",
                "description": "A librarian's staff session (POST /staff/sessions). On a "
                               "patron's action it tags the audit entry 'assisted by'; an "
                               "ended session is 401 `staff_session_invalid`; a role that "
                               "does not work at the desk, or a librarian of another "
                               "institution than the patron's, 403 `staff_forbidden`.",
                "schema": {"type": "string", "minLength": 1, "maxLength": STAFF_TOKEN_MAX}})
        statuses = {400, 401, 503, *op.errors}
        if op.staff == "optional" or (op.patron and not op.one_time_ok):
            statuses.add(403)
        if op.method != "GET":
            parameters.append({"name": "Idempotency-Key", "in": "header", "required": True,
                               "schema": {"type": "string", "minLength": 1, "maxLength": 100,
                                          "pattern": "^[\\x21-\\x7e]+$"}})
            statuses |= {409, 413, 422}
        if op.lang or op.patron:
            statuses.add(422)
        success: dict[str, Any] = {"description": op.summary}
        if op.answer is not None:
            success["content"] = {"application/json": {
                "schema": _schema_ref(op.answer, schemas, "serialization")}}
        if links := _links(op):
            success["links"] = links
        responses: dict[str, Any] = {str(op.status): success}
        for code in sorted(statuses):
            responses[str(code)] = {"$ref": "#/components/responses/Error"}
        entry: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "parameters": parameters,
            "responses": responses,
            "security": [{"terminalToken": []}],
        }
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema_ref(op.body, schemas, "validation")}}}
            responses["415"] = {"$ref": "#/components/responses/Error"}
        paths.setdefault(path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Library course kiosk — seat registry", "version": __version__,
                 "description": "Accounts, catalogue, seats and the waiting list. Every write "
                                "needs an Idempotency-Key; a full programme is not an error. "
                                "While a patron holds a printed one-time password, their "
                                "calls other than GET /me, POST /me/password and log-out "
                                "are 403 `password_change_required`."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {"Error": {"description": "A refusal with a stable code",
                                    "content": {"application/json": {"schema": error_ref}}}},
            "securitySchemes": {"terminalToken": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(openapi_document())


# --- Health --------------------------------------------------------------------------------


@health.get("/healthz")
def healthz() -> Response:
    """The process is up."""
    return jsonify(status="ok", version=__version__)


@health.get("/readyz")
def readyz() -> tuple[Response, int]:
    """The database answers and its schema is current."""
    engine = _service().store.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = schema.is_current(engine)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return jsonify(status="unavailable", reason=type(exc).__name__), 503
    if not current:
        return jsonify(status="unavailable", reason="migrations pending"), 503
    return jsonify(status="ready"), 200
