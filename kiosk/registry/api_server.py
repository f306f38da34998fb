"""How the registry serves its API: a WSGI app of its own, in front of the Flask app.

The API's operations (api.py) are the registry's hot path, and a request through Flask cost
about as much CPU as the claim it carried: a request context, the cookie session, URL
adapters and the page hooks, none of which a terminal's call needs (benchmarks/README.md).
So they are served here, in the app's context (its config, logger and extensions), without
Flask's request context:

* routed by werkzeug's `Map` of the operations (a path of the API with another method is a
  405 with `Allow`; a path that is not an operation, the OpenAPI document among them, goes
  on to Flask, which answers it or gives the API's JSON 404);
* read with the app's own request class: the same parsing and `MAX_CONTENT_LENGTH`;
* answered with what every answer of the app carries: the request id and one access line
  (kiosk.logs), the security headers (kiosk.answer_headers) and the request's timing in
  /metrics (kiosk.metrics), under the endpoint names Flask gave (`api.claim`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, g
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wrappers import Response

from .. import answer_headers, logs
from ..metrics import Metrics
from .api import (
    IDEMPOTENCY_KEY_RE,
    LANGUAGES,
    OPERATIONS,
    PATRON_HEADER,
    PATRON_TOKEN_MAX,
    STAFF_HEADER,
    STAFF_TOKEN_MAX,
    Call,
    Operation,
    answer,
    bp,
    crash_response,
    error_response,
    health,
    http_error_response,
)
from .domain import RegistryError, TerminalView
from .idempotency import AheadMark, IdempotencyKeys, KeyNotMarked, request_fingerprint
from .roles import StaffView
from .services import RegistryService
from .wire import load

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PREFIX = bp.url_prefix or "/api/v1"
# The operations by address and method, as Flask would route them (HEAD with each GET).
ROUTES = Map([Rule(PREFIX + op.path, endpoint=op.name, methods=[op.method])
              for op in OPERATIONS])
# Bound once: the API's addresses do not depend on the host or the scheme of a request.
_MATCHER = ROUTES.bind("registry")
_BY_NAME = {op.name: op for op in OPERATIONS}
# Answers that executed nothing are not kept for the key: a corrected retry may run.
NOT_STORED = {400, 409, 413, 415, 422, 429, 503}


def init_app(app: Flask) -> None:
    """Serve the API's operations in front of `app`, and mount the OpenAPI document and the
    health checks on it; JSON answers for every error under /api/."""
    service: RegistryService = app.extensions["registry_service"]
    app.extensions["registry_idempotency"] = IdempotencyKeys(service.store, service.clock)
    app.register_blueprint(bp)
    app.register_blueprint(health)
    app.wsgi_app = ApiServer(app, app.wsgi_app)  # type: ignore[method-assign]


class ApiServer:
    """The WSGI app: an operation of the API is answered here, anything else by `pages`."""

    def __init__(self, app: Flask, pages: WSGIApplication):
        self.app = app
        self.pages = pages
        self.service: RegistryService = app.extensions["registry_service"]
        self.keys: IdempotencyKeys = app.extensions["registry_idempotency"]
        self.headers = answer_headers.every_answer(bool(app.config["HTTPS"]))

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith(PREFIX):
            return self.pages(environ, start_response)
        started = time.perf_counter()
        request: Request = self.app.request_class(environ)
        op: Operation | None = None
        allowed: Iterable[str] = ()
        args: dict[str, str] = {}
        try:
            name, found = _MATCHER.match(request.path, request.method)
            op, args = _BY_NAME[name], dict(found)
        except (NotFound, RequestRedirect):
            return self.pages(environ, start_response)
        except MethodNotAllowed as exc:
            allowed = exc.valid_methods or ()
        with self.app.app_context():
            logs.serving(request.method, request.path, request.headers.get(
                logs.REQUEST_ID_HEADER, ""))
            if op is None:
                response = http_error_response(MethodNotAllowed())
                response.headers["Allow"] = ", ".join(sorted(allowed))
            else:
                response = self.respond(op, request, args)
            logs.answered(response, request.method, request.path, started)
            metrics: Metrics | None = self.app.extensions.get("kiosk_metrics")
            if metrics is not None:
                metrics.observe(f"{bp.name}.{op.name}" if op else None, request.method,
                                response.status_code, time.perf_counter() - started)

        def start_with_headers(status: str, headers: list[tuple[str, str]],
                               exc_info: Any = None) -> Any:
            # The same constants on every answer (no answer of the API sets them itself):
            # added as they are, without werkzeug's per-header checks.
            return start_response(status, [*headers, *self.headers], exc_info)

        return response(environ, start_with_headers)

    def respond(self, op: Operation, request: Request, args: dict[str, str]) -> Response:
        """The operation's answer, or the API's JSON for a refusal or a crash."""
        try:
            try:
                return self.handle(op, request, args)
            except RegistryError as refusal:
                if not (refusal.code == "busy" and refusal.detail.get("reconnect")):
                    raise
            # The database dropped the connection under us (a restart, a terminated
            # backend): the pool is renewed, and pooled connections are not pinged before
            # each use (that would cost a round trip on every request), so run the request
            # once more on a fresh one. Safe for a write: its key's mark and its change commit
            # together, so a change that did commit is replayed from its key, and one that did
            # not runs now.
            return self.handle(op, request, args)
        except RegistryError as error:
            return error_response(error)
        except HTTPException as exc:  # a body over MAX_CONTENT_LENGTH, one unreadable
            return http_error_response(exc)
        except Exception:  # noqa: BLE001 - logged; the terminal gets the API's 500
            return crash_response()

    def handle(self, op: Operation, request: Request, args: dict[str, str]) -> Response:
        """One API request: who asks, what they send, then the use case (keyed if a write)."""
        terminal = self.terminal(request)
        g.terminal = terminal  # the access line and every log record name the terminal
        token = request.headers.get(PATRON_HEADER, "").strip()
        if op.patron and not 0 < len(token) <= PATRON_TOKEN_MAX:
            raise RegistryError("session_invalid")
        staff_token, staff = self.staff(op, request)
        lang = request.args.get("lang", "en")
        if op.lang and lang not in LANGUAGES:
            raise RegistryError("invalid", {"lang": "language_unknown"})
        bad = {name: "invalid_characters" for name, value in args.items() if unstorable(value)}
        if bad:  # "/courses/%00": no course has such a name, and the query would fail
            raise RegistryError("invalid", bad)
        call = Call(self.service, terminal, token, None, lang, args, staff_token, staff,
                    lang_sent="lang" in request.args)
        if op.method == "GET":
            return answer(op, op.run(call))
        return self.keyed(op, request, call)

    def terminal(self, request: Request) -> TerminalView:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RegistryError("terminal_unauthorized")
        # The version is stored: no NUL or other control character may reach a text column.
        agent = request.headers.get("User-Agent", "")
        version = "".join(ch for ch in agent if ch.isprintable())[:40]
        return self.service.authenticate_terminal(token.strip(), version)

    def staff(self, op: Operation, request: Request) -> tuple[str, StaffView | None]:
        """The X-Staff-Token of an operation that takes one. Sent at all, it must be a live
        librarian's session (else 401 `staff_session_invalid`, 403 `staff_forbidden`): an
        action is never silently done unassisted when the kiosk meant it to be assisted."""
        if not op.staff:
            return "", None
        sent = request.headers.get(STAFF_HEADER)
        if sent is None and op.staff == "optional":
            return "", None
        token = (sent or "").strip()
        if not 0 < len(token) <= STAFF_TOKEN_MAX:
            raise RegistryError("staff_session_invalid")
        if op.staff == "required":  # the staff session calls look the token up themselves
            return token, None
        return token, self.service.assist.assistant(token)

    def keyed(self, op: Operation, request: Request, call: Call) -> Response:
        """A write: run it at most once per Idempotency-Key (see idempotency.py)."""
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            raise RegistryError("idempotency_key_required")
        if not IDEMPOTENCY_KEY_RE.fullmatch(key):  # the document's pattern, not "printable"
            raise RegistryError("idempotency_key_invalid")
        # The staff token is part of who asks: the same key sent assisted and not is a reuse.
        who = f"{call.token} {call.staff_token}" if call.staff_token else call.token
        fingerprint = request_fingerprint(op.method, request.path, who, call.lang,
                                          request.get_data(cache=True))
        try:
            return self.once(op, request, call, key, fingerprint, ahead=op.reads_first)
        except KeyNotMarked:  # rolled back: nothing of it stays; the key's record tells
            return self.once(op, request, call, key, fingerprint, ahead=False)

    def once(self, op: Operation, request: Request, call: Call, key: str, fingerprint: str, *,
             ahead: bool) -> Response:
        """The write under its key, or the key's stored answer. `ahead`: the key's mark goes
        with the use case's first statement where it can (idempotency.py)."""
        terminal_id = call.terminal.id
        mark: AheadMark | None = None
        mine = False  # the key was claimed by this request: undo that on the way out
        try:
            with self.service.store.write() as session:
                if ahead:
                    mark = self.keys.mark_ahead(session, terminal_id, key, fingerprint)
                stored = None if mark else self.keys.begin(session, terminal_id, key,
                                                           fingerprint)
                if stored is None:
                    mine = True  # once the mark, if it went ahead, took the key (`ours`)
                    try:
                        call.body = parse_body(op, request)
                        response = answer(op, op.run(call))
                    except Exception:
                        if mark is not None:
                            mark.settle(session)
                        raise
                    self.keys.finish(session, terminal_id, key, response.status_code,
                                     response.get_data(as_text=True))
        except RegistryError as error:
            if ours(mine, mark):
                refusal = error_response(error)
                if refusal.status_code in NOT_STORED:
                    self.keys.abandon(terminal_id, key)
                else:
                    self.keys.answer_without_change(terminal_id, key, fingerprint,
                                                    refusal.status_code,
                                                    refusal.get_data(as_text=True))
            raise
        except KeyNotMarked:
            raise  # another request's key: not ours to release
        except Exception:
            # A crash rolled the use case back with its mark; `abandon` removes a mark that a
            # use case committed early (see idempotency.py). It only removes a *running*
            # record, so an answer that did commit is still replayed.
            if ours(mine, mark):
                try:
                    self.keys.abandon(terminal_id, key)
                except Exception:  # noqa: BLE001 - the database may be what failed
                    self.app.logger.exception("could not release idempotency key %r", key)
            raise
        if stored is not None:
            replay = Response(stored.body, status=stored.status, mimetype="application/json")
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        return response


def ours(mine: bool, mark: AheadMark | None) -> bool:
    """Whether the key was claimed by this request, so that a stop must release it."""
    return mine and (mark is None or mark.marked)


def unstorable(text: str) -> bool:
    """NUL (PostgreSQL text refuses it, SQLite keeps it) or a lone surrogate (not UTF-8)."""
    return "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text)


def bad_strings(data: Any) -> dict[str, str]:
    """Every string of a JSON document that no database could store, by field path.
    Iterative: a document nested as deep as the parser allows must not overflow here."""
    found: dict[str, str] = {}
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if unstorable(value):
                found[path or "body"] = "invalid_characters"
        elif isinstance(value, dict):
            for key, item in value.items():
                if unstorable(key):  # an unknown key is ignored, but not a bad one
                    found[path or "body"] = "invalid_characters"
                else:
                    stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item)
                         for i, item in enumerate(value))
    return found


def parse_body(op: Operation, request: Request) -> Any:
    """The operation's body, checked: 415, 400 `malformed_json` or 422 with the fields."""
    if op.body is None:
        return None
    if request.mimetype != "application/json":
        raise RegistryError("unsupported_media_type")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # "[[[[…]]]]" nested past the parser's depth: not a 500
        data = None
    if data is None:
        raise RegistryError("malformed_json")
    # Refused here, for every operation alike, before any value reaches a query.
    fields = bad_strings(data)
    body = None
    try:
        body = load(op.body, data)
    except ValidationError as exc:
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "body"
            fields.setdefault(name, "required" if err["type"] == "missing" else "invalid_type")
    if fields:
        raise RegistryError("invalid", fields)
    return body
