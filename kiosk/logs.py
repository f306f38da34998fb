"""Logs as JSON lines, one per record, with a request id; scrubbed of personal data.

Both apps (terminal and registry) log through the `kiosk` logger (Flask's `app.logger`, named
after the package) and its children (`kiosk.access`: one line per request). One router handler
sits on that logger, installed once per process: it sends each record to the handler of the
app whose context it was logged in (`LOG_FILE` with rotation, or stderr). Several apps in one
process (tests, a terminal beside an embedded registry) so never add handlers twice, and each
still writes to its own file.

The request id comes from a sane incoming `X-Request-Id` (a proxy's, or the terminal's when the
registry is called over HTTP) or is made here; it is echoed in the answer's `X-Request-Id` and
sent on by the terminal's HTTP client, so one patron action can be followed across both logs.

Patron names are never logged (no code passes them to a logger); what could still slip into a
message or an exception text — e-mail addresses, card numbers, tokens, SQL parameters,
validation inputs — is masked by `ScrubFilter` before any handler formats the record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask.logging import default_handler
from werkzeug.wrappers import Response

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
LOGGER = "kiosk"  # Flask's app.logger for both apps: the package's import name
access_log = logging.getLogger(f"{LOGGER}.access")


# --- Scrubbing -----------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.%+'-]+@[\w-]+(?:\.[\w-]+)+")
# 13 digits, also written in groups ("2000 0000 1234 5", "2000.0000.12345"); not part of a
# longer number.
_CARD = re.compile(r"(?<!\d)(?:\d[ .-]?){12}\d(?!\d)")
_TERMINAL_TOKEN = re.compile(r"\bkt_[A-Za-z0-9_-]+")
_HEADER_TOKEN = re.compile(
    r"(?i)(\bBearer\s+|\bX-Patron-Session['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9_.~+/=-]+"
)
# Any long url-safe run with capitals and digits (token_urlsafe): lower-case slugs survive.
_LOOSE_TOKEN = re.compile(r"(?<![\w-])(?=[\w-]*[A-Z])(?=[\w-]*\d)[A-Za-z0-9_-]{32,}(?![\w-])")
# Values that libraries quote in their exception texts: SQLAlchemy's bound parameters (a
# patron's name on an INSERT) and pydantic's rejected input.
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.MULTILINE)
# PostgreSQL's DETAIL lines quote the row or the key that broke a constraint: a whole patron
# ("Failing row contains (12, Zebulonia, …)") or an e-mail or a name and date of birth.
_FAILING_ROW = re.compile(r"(Failing row contains )\(.*")
_KEY_VALUE = re.compile(r"(\bKey \([^)]*\)=)\(.*?\)(?= already exists| is (?:not|still))")


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "*" * 10 + digits[-3:]


def scrub(text: str) -> str:
    """`text` with e-mail addresses, card numbers and tokens masked (idempotent)."""
    text = _SQL_PARAMETERS.sub("[parameters: ***]", text)
    text = _INPUT_VALUE.sub("input_value=***", text)
    text = _FAILING_ROW.sub(r"\1(***)", text)
    text = _KEY_VALUE.sub(r"\1(***)", text)
    text = _HEADER_TOKEN.sub(lambda m: m.group(1) + "***", text)
    text = _TERMINAL_TOKEN.sub("kt_***", text)
    text = _LOOSE_TOKEN.sub("***", text)
    text = _EMAIL.sub("***@***", text)
    return _CARD.sub(_mask_card, text)


class ScrubFilter(logging.Filter):
    """Masks personal data and secrets in a record's message, exception text and path.

    The message is rendered here (`args` merged in) so that no handler or formatter after it
    sees the raw arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        path = getattr(record, "path", None)
        if isinstance(path, str):
            record.path = scrub(path)
        return True


# --- Request ids and the request's context -------------------------------------------------


def new_request_id(incoming: str) -> str:
    """The id of a request that sent `incoming` as its X-Request-Id: that one if sane."""
    return incoming if _SANE_REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())


def request_id() -> str | None:
    """This request's id (made on first use), or None outside a request."""
    if not has_app_context():
        return None
    rid = g.get("request_id")
    if rid is None and has_request_context():
        rid = g.request_id = new_request_id(request.headers.get(REQUEST_ID_HEADER, ""))
    return rid


def serving(method: str, path: str, incoming_id: str) -> None:
    """A request served in the app's context without Flask's request context (the API,
    kiosk.registry.api_server): what its log records and its answer say of it."""
    g.request_id = new_request_id(incoming_id)
    g.log_request = (method, path)


def _method_and_path() -> tuple[str | None, str | None]:
    if has_request_context():
        return request.method, request.path
    return g.get("log_request", (None, None))


def answered(response: Response, method: str, path: str, started: float | None) -> None:
    """What every answer gets: the request's id echoed, and one access line (the path only:
    query strings and form bodies may carry what a patron typed)."""
    rid = request_id()
    if rid:
        response.headers[REQUEST_ID_HEADER] = rid
    duration = round((time.perf_counter() - started) * 1000, 1) if started else None
    access_log.info("%s %s %s", method, path, response.status_code,
                    extra={"status": response.status_code, "duration_ms": duration})


class ContextFilter(logging.Filter):
    """Adds the request's id, method and path (never its query string or body) and, where
    known, the terminal and its library."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_app_context():
            record.request_id = request_id()
            method, path = _method_and_path()
            record.method = getattr(record, "method", None) or method
            record.path = getattr(record, "path", None) or path
            terminal = g.get("terminal")  # the registry: the calling terminal, authenticated
            if terminal is not None:
                record.terminal = getattr(terminal, "id", None)
                record.library = getattr(terminal, "library_code", None)
        if has_app_context() and not getattr(record, "library", None):
            record.library = current_app.config.get("LIBRARY_CODE") or None
        return True


# --- Formatting ----------------------------------------------------------------------------

_FIELDS = ("request_id", "method", "path", "status", "duration_ms", "terminal", "library")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `request_id` is always present (null outside a request)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for name in _FIELDS[1:]:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


# --- Handlers ------------------------------------------------------------------------------


@dataclass
class _AppLog:
    handler: logging.Handler
    level: int


def _new_handler(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(JsonFormatter())
    return handler


_stderr = _new_handler(logging.StreamHandler(sys.stderr))
# One handler per file, shared by the apps that name it (two rotating handlers on one file
# would rename it under each other); it closes when the last such app is gone.
_files: weakref.WeakValueDictionary[str, logging.Handler] = weakref.WeakValueDictionary()


class _Router(logging.Handler):
    """The one handler on the `kiosk` logger: the current app's handler, at its level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(ContextFilter())
        self.addFilter(ScrubFilter())  # after the context: the path is scrubbed too

    def emit(self, record: logging.LogRecord) -> None:
        state = current_app.extensions.get("kiosk_logs") if has_app_context() else None
        if state is None:  # no app (a CLI command, a background thread): warnings on stderr
            state = _AppLog(_stderr, logging.WARNING)
        if record.levelno >= state.level:
            state.handler.handle(record)


def _install_router() -> None:
    logger = logging.getLogger(LOGGER)
    logger.removeHandler(default_handler)  # our JSON lines instead of Flask's text lines
    if not any(isinstance(h, _Router) for h in logger.handlers):
        logger.addHandler(_Router())
    logger.setLevel(logging.DEBUG)  # each app's LOG_LEVEL is applied by the router
    # waitress.serve() calls logging.basicConfig(): propagating would print every line twice.
    logger.propagate = False


class _FileHandler(RotatingFileHandler):
    def __del__(self) -> None:  # the last app naming the file is gone (see _files)
        stream = getattr(self, "stream", None)
        if stream is not None:
            stream.close()


def _app_handler(config: dict[str, Any]) -> logging.Handler:
    path = str(config.get("LOG_FILE") or "").strip()
    if not path:
        return _stderr
    key = str(Path(path).resolve())
    handler = _files.get(key)
    if handler is None:
        Path(key).parent.mkdir(parents=True, exist_ok=True)
        handler = _new_handler(_FileHandler(
            key, maxBytes=int(config["LOG_MAX_BYTES"]), backupCount=int(config["LOG_BACKUPS"]),
            encoding="utf-8", delay=True,
        ))
        _files[key] = handler
    return handler


def _level(name: object) -> int:
    level = logging.getLevelName(str(name).strip().upper())
    if not isinstance(level, int):
        raise SystemExit(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {name!r}")
    return level


def init_app(app: Flask) -> None:
    """JSON logs for `app`: its handler and level, request ids, one access line a request."""
    _install_router()
    level = _level(app.config["LOG_LEVEL"])
    app.extensions["kiosk_logs"] = _AppLog(_app_handler(app.config), level)

    @app.before_request
    def start_request() -> None:
        g.log_started = time.perf_counter()
        request_id()

    @app.after_request
    def access_line(response: Response) -> Response:
        answered(response, request.method, request.path, g.get("log_started"))
        return response
