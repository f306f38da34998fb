"""The terminal's HTTP client for a central registry: the `RegistryClient` protocol over /api/v1.

It answers with the same domain objects as `LocalRegistryClient` and refuses with the same
`RegistryError(code, fields, **detail)`, so the terminal cannot tell the two apart. On top of
the registry's own codes it raises one code of its own, client-side only (no HTTP status
belongs to it and the API never sends it):

``unavailable``
    The registry gave no usable answer within the deadline: nothing listens, the connection
    timed out, dripped past the deadline or was reset, the registry answered 5xx even after
    the retries (other than its ``busy``/``not_set_up`` refusals, which keep their codes), or
    the answer was not JSON, was malformed or truncated, was larger than `MAX_BODY`, or did not
    fit the schema. The terminal tells the patron that nothing was lost and to try again.

``terminal_unauthorized`` and ``terminal_revoked`` (401) come back as themselves: "this kiosk
is not set up". ``account_locked`` carries ``until`` (naive UTC, computed from the answer's
``retry_after``) like the in-process client does.

How a call is bounded (``REGISTRY_DEADLINE`` seconds for everything, retries included, and
never past what is left of the page's budget, see `request_scope`):

- every attempt gets ``timeout=(min(connect, remaining), remaining)``, recomputed per attempt;
- urllib3's `Retry` (2 retries: connection refused/reset, 502/503/504 and 500) never sleeps
  past the deadline and gives up at once when a Retry-After would outlive it;
- a watchdog timer shuts the socket of the call's connection down when the deadline passes,
  because socket timeouts are per read: a registry that drips one byte a second (in its
  headers or its body) never times out on its own;
- the body is streamed (`read1`), with the clock and the size checked between chunks.

Retrying writes is safe because every write carries an ``Idempotency-Key`` made once per
logical call and reused by every retry of it: the registry runs the write at most once and
replays its first answer. A write answering a kiosk form derives its key from the form's
(`request_scope.idempotency_key`): the same form sent again is the same call. A 409
``idempotency_in_progress`` (the first attempt is still running on the registry) is waited
for and retried with the same key while the deadline allows.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from pydantic import ValidationError
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util import Retry, Timeout

from ..logs import REQUEST_ID_HEADER
from ..logs import request_id as current_request_id
from ..version import __version__
from . import network, request_scope
from .domain import (
    AlertChoice,
    Catalogue,
    ClaimOutlook,
    ClaimResult,
    CourseView,
    InstitutionView,
    Maintenance,
    NewPatron,
    PatronData,
    PatronStatus,
    PatronView,
    ProgrammeStatus,
    Registration,
    RegistryError,
)
from .roles import StaffView
from .wire import (
    AlertsRequest,
    ClaimRequest,
    DetailsChange,
    DetailsChanged,
    ErasureRequest,
    ErrorBody,
    LoginRequest,
    MaintenanceAnswer,
    PasswordChange,
    ProgrammeAnswer,
    Registered,
    RegisterRequest,
    SessionAnswer,
    StaffLoginRequest,
    StaffSessionAnswer,
    dump,
    load,
)

UNAVAILABLE = "unavailable"
API_PREFIX = "/api/v1"
MAX_BODY = 2 * 1024 * 1024
USER_AGENT = f"kiosk-terminal/{__version__}"
_CHUNK = 64 * 1024
_MIN_ATTEMPT = 0.05  # seconds: an attempt with less time left than this is not started
_RETRY_STATUSES = (500, 502, 503, 504)
# 5xx refusals that are the registry's own answer, not a failure of it: they keep their code.
_SERVER_CODES = {"busy", "not_set_up"}
_log = logging.getLogger("kiosk.registry_client")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --- One call: its deadline and its watchdog -------------------------------------------------


class _Watchdog:
    """One thread for all calls: at each call's deadline it cuts that call's sockets.

    (A `threading.Timer` per call would do too, but starting a thread costs milliseconds.)
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._thread: threading.Thread | None = None

    def watch(self, call: _Deadline) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (call.deadline, self._seq, call))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="registry-deadline",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                when, _, call = self._heap[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            call.expire()  # a finished call ignores it

    def _after_fork(self) -> None:
        self._cond = threading.Condition()
        self._heap = []
        self._thread = None


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):  # gunicorn workers: the thread does not survive a fork
    os.register_at_fork(after_in_child=_WATCHDOG._after_fork)


class _Deadline:
    """The time budget of one logical call, and the sockets to cut when it runs out."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._done = False
        self._lock = threading.Lock()
        self._conns: list[_WatchedConnection] = []

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def start(self) -> None:
        _WATCHDOG.watch(self)

    def attach(self, conn: _WatchedConnection) -> None:
        """The connection an attempt of this call is about to use."""
        with self._lock:
            conn._kiosk_call = self
            if not self._done:
                self._conns.append(conn)

    def expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for conn in self._conns:
                # A connection given back to the pool may serve another call by now: only
                # cut the ones this call still owns (each request() stamps its owner).
                if conn._kiosk_call is not self:
                    continue
                sock = conn.sock
                if sock is None:
                    continue
                try:  # the TCP socket itself, also under TLS: the blocked read returns at once
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._conns.clear()


_current: ContextVar[_Deadline | None] = ContextVar("kiosk_registry_call", default=None)


class _DeadlineTimeout(Timeout):
    """requests' (connect, read) timeout, recomputed from the deadline for every attempt.

    urllib3 clones the timeout object for each attempt, retries included.
    """

    def __init__(self, connect: float, call: _Deadline):
        super().__init__(connect=connect, read=call.seconds)
        self.call = call

    def clone(self) -> Timeout:
        remaining = max(self.call.remaining(), 0.001)
        connect = self._connect if isinstance(self._connect, (int, float)) else remaining
        return Timeout(connect=min(connect, remaining), read=remaining)


class _DeadlineRetry(Retry):
    """urllib3's Retry that never outlives the current call's deadline."""

    def increment(self, method: str | None = None, url: str | None = None,
                  response: Any = None, error: Exception | None = None,
                  _pool: Any = None, _stacktrace: Any = None) -> _DeadlineRetry:
        new = super().increment(method, url, response=response, error=error, _pool=_pool,
                                _stacktrace=_stacktrace)
        call = _current.get()
        if call is not None:
            remaining = call.remaining()
            wait = 0.0
            if response is not None and self.respect_retry_after_header:
                try:
                    wait = self.get_retry_after(response) or 0.0
                except InvalidHeader as garbage:
                    # urllib3 releases the answer only after this step: hand its socket
                    # back before giving up, or it waits for the garbage collector.
                    response.drain_conn()
                    raise MaxRetryError(_pool, url, garbage) from garbage
            wait = max(wait, new.get_backoff_time())
            if remaining - wait < _MIN_ATTEMPT:
                reason = error or ResponseError("the deadline leaves no time for a retry")
                raise MaxRetryError(_pool, url, reason) from reason
        return new

    def _capped(self, seconds: float) -> float:
        call = _current.get()
        if call is None:
            return seconds
        return max(0.0, min(seconds, call.remaining() - _MIN_ATTEMPT))

    def sleep_for_retry(self, response: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after:
            time.sleep(self._capped(retry_after))
            return True
        return False

    def _sleep_backoff(self) -> None:
        backoff = self._capped(self.get_backoff_time())
        if backoff > 0:
            time.sleep(backoff)


# --- Connections that tell the call which socket it uses ------------------------------------


class _WatchedHTTPConnection(HTTPConnection):
    _kiosk_call: _Deadline | None = None  # the call that used it last (see _Deadline.expire)

    def request(self, *args: Any, **kwargs: Any) -> None:
        call = _current.get()
        if call is not None:
            call.attach(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    _kiosk_call: _Deadline | None = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        call = _current.get()
        if call is not None:
            call.attach(self)
        super().request(*args, **kwargs)


_WatchedConnection = _WatchedHTTPConnection | _WatchedHTTPSConnection


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(network.TrustingAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # not SOCKS: it has its own pools
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


class _BearerAuth(requests.auth.AuthBase):
    """Set as the session's auth so that requests never swaps in credentials from ~/.netrc."""

    def __init__(self, token: str):
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


# --- Paths, and answers as read (the types of their bodies are in wire.py) --------------------


def _slug_path(slug: str) -> str | None:
    """The slug as one path segment, or None when no route could match it."""
    if not slug or "/" in slug or slug in (".", ".."):
        return None
    return quote(slug, safe="")


@dataclasses.dataclass
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


# --- The client ------------------------------------------------------------------------------


class HttpRegistryClient:
    """`RegistryClient` over HTTP; one instance is shared by all threads of a terminal."""

    def __init__(self, url: str, token: str, *, connect_timeout: float = 3.0,
                 deadline: float = 8.0, retries: int = 2, backoff_factor: float = 0.2,
                 pool_size: int = 16, ca_file: str = ""):
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"REGISTRY_URL must start with http:// or https://, got {url!r}")
        if not url.endswith(API_PREFIX):
            url += API_PREFIX
        if connect_timeout <= 0 or deadline <= 0:
            raise ValueError("REGISTRY_CONNECT_TIMEOUT and REGISTRY_DEADLINE must be positive")
        self.base_url = url
        self.connect_timeout = float(connect_timeout)
        self.deadline = float(deadline)
        retry = _DeadlineRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            redirect=0,
            backoff_factor=backoff_factor,
            status_forcelist=_RETRY_STATUSES,
            allowed_methods=None,  # every method: each write carries an Idempotency-Key
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        # What a library network needs: its own CA (REGISTRY_CA_FILE) beside the system's
        # store, and its HTTPS proxy (kiosk.registry.network).
        adapter = _WatchedAdapter(network.ssl_context(ca_file), max_retries=retry,
                                  pool_connections=2, pool_maxsize=pool_size)
        session = requests.Session()
        self.route = network.configure(session, url, adapter)
        session.auth = _BearerAuth(token)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        # The session is configured once here and never changed afterwards: requests' Session
        # and urllib3's pools are then safe to share between the terminal's threads.
        self.session = session

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HttpRegistryClient:
        return cls(
            config["REGISTRY_URL"],
            config.get("REGISTRY_TOKEN", ""),
            connect_timeout=float(config.get("REGISTRY_CONNECT_TIMEOUT", 3)),
            deadline=float(config.get("REGISTRY_DEADLINE", 8)),
            ca_file=config.get("REGISTRY_CA_FILE", ""),
        )

    def close(self) -> None:
        self.session.close()

    # --- The protocol ------------------------------------------------------------------------

    def institutions(self) -> list[InstitutionView]:
        return self._call("GET", "/institutions", answer=list[InstitutionView])

    def catalogue(self, lang: str) -> Catalogue:
        return self._call("GET", "/catalogue", params={"lang": lang}, answer=Catalogue)

    def course(self, slug: str, lang: str) -> CourseView:
        path = _slug_path(slug)
        if path is None:
            raise RegistryError("course_not_found")
        return self._call("GET", f"/courses/{path}", params={"lang": lang}, answer=CourseView)

    def programme_status(self) -> ProgrammeStatus:
        p = self._call("GET", "/programme", answer=ProgrammeAnswer)
        return ProgrammeStatus(cap=p.cap, seats_taken=p.seats_taken, waiting=p.waiting,
                               promotion=p.promotion)

    def academy_url(self) -> str:
        return self._call("GET", "/programme", answer=ProgrammeAnswer).academy_url

    def practice(self) -> bool:
        return self._call("GET", "/programme", answer=ProgrammeAnswer).practice

    def register(self, data: NewPatron, *, staff_token: str | None = None,
                 identity_checked: bool = False) -> str:
        return self.register_account(data, staff_token=staff_token,
                                     identity_checked=identity_checked).card_number

    def register_account(self, data: NewPatron, *, staff_token: str | None = None,
                         identity_checked: bool = False) -> Registration:
        body: tuple[Any, Any] = (NewPatron, data)
        if identity_checked:
            body = (RegisterRequest, RegisterRequest(**dataclasses.asdict(data),
                                                     identity_checked=True))
        made = self._call("POST", "/patrons", body=body, answer=Registered, ok=(201,),
                          staff_token=staff_token)
        return Registration(made.card_number, made.possible_duplicate, made.pending_until)

    def login(self, identifier: str, password: str, *, library_code: str = "",
              language: str = "") -> tuple[str, PatronView]:
        # library_code: the registry knows this terminal's own, from its token.
        answer = self._call("POST", "/sessions", answer=SessionAnswer, ok=(201,),
                            body=(LoginRequest, LoginRequest(identifier, password, language)),
                            by_form=False)
        return answer.token, answer.patron

    def logout(self, token: str) -> None:
        if not token:  # as in-process: logging out nobody is not an error
            return
        self._call("DELETE", "/sessions/current", token=token, ok=(204,), by_form=False)

    def whoami(self, token: str) -> PatronView:
        return self._call("GET", "/me", token=token, answer=PatronView)

    def claim(self, token: str, course_slug: str, *,
              staff_token: str | None = None) -> ClaimResult:
        return self._call("POST", "/me/claims", token=token, answer=ClaimResult,
                          body=(ClaimRequest, ClaimRequest(course_slug)),
                          staff_token=staff_token)

    def claim_outlook(self, token: str) -> ClaimOutlook:
        return self._call("GET", "/me/outlook", token=token, answer=ClaimOutlook)

    def status(self, token: str, lang: str) -> PatronStatus:
        return self._call("GET", "/me/status", token=token, params={"lang": lang},
                          answer=PatronStatus)

    def withdraw(self, token: str, course_slug: str, *,
                 staff_token: str | None = None) -> PatronStatus:
        path = _slug_path(course_slug)
        if path is None:
            raise RegistryError("not_enrolled")
        # No lang: the registry answers in the patron's own language, as in-process.
        return self._call("DELETE", f"/me/enrolments/{path}", token=token, answer=PatronStatus,
                          staff_token=staff_token)

    def give_up_seat(self, token: str, *, staff_token: str | None = None) -> None:
        self._call("DELETE", "/me/seat", token=token, ok=(204,), staff_token=staff_token)

    def leave_waiting_list(self, token: str, *, staff_token: str | None = None) -> None:
        self._call("DELETE", "/me/waiting", token=token, ok=(204,), staff_token=staff_token)

    def my_data(self, token: str, lang: str) -> PatronData:
        return self._call("GET", "/me/data", token=token, params={"lang": lang},
                          answer=PatronData)

    def maintenance(self) -> Maintenance | None:
        answer = self._call("GET", "/maintenance", answer=MaintenanceAnswer)
        if not answer.active or answer.until is None:
            return None
        return Maintenance(messages=answer.messages, until=answer.until)

    def erase_account(self, token: str, password: str) -> None:
        self._call("POST", "/me/erasure", token=token, ok=(204,),
                   body=(ErasureRequest, ErasureRequest(password)))

    def accept_offer(self, token: str) -> PatronStatus:
        # No lang: the registry answers in the patron's own language, as in-process.
        return self._call("POST", "/me/offer/acceptance", token=token, answer=PatronStatus)

    def decline_offer(self, token: str) -> None:
        self._call("DELETE", "/me/offer", token=token, ok=(204,))

    def change_password(self, token: str, old: str, new: str) -> None:
        self._call("POST", "/me/password", token=token, ok=(204,),
                   body=(PasswordChange, PasswordChange(old, new)))

    def change_my_details(self, token: str, email: str, language: str,
                          password: str = "") -> tuple[str, ...]:
        answer = self._call("POST", "/me/details", token=token, answer=DetailsChanged,
                            body=(DetailsChange, DetailsChange(email, language, password)))
        return tuple(answer.changed)

    def staff_login(self, username: str, password: str) -> tuple[str, StaffView]:
        answer = self._call("POST", "/staff/sessions", answer=StaffSessionAnswer, ok=(201,),
                            body=(StaffLoginRequest, StaffLoginRequest(username, password)),
                            by_form=False)
        return answer.token, answer.staff

    def staff_whois(self, staff_token: str) -> StaffView:
        return self._call("GET", "/staff/sessions", answer=StaffView, staff_token=staff_token)

    def staff_logout(self, staff_token: str) -> None:
        if not staff_token:  # as in-process: ending no session is not an error
            return
        self._call("DELETE", "/staff/sessions", ok=(204,), staff_token=staff_token,
                   by_form=False)

    def staff_hand_back(self, staff_token: str) -> None:
        self._call("POST", "/staff/sessions/hand-back", ok=(204,), staff_token=staff_token)

    def alerts(self, token: str, lang: str) -> AlertChoice:
        return self._call("GET", "/me/alerts", token=token, params={"lang": lang},
                          answer=AlertChoice)

    def choose_alerts(self, token: str, categories: list[str], consent: bool) -> None:
        self._call("POST", "/me/alerts", token=token, ok=(204,),
                   body=(AlertsRequest, AlertsRequest(list(categories), consent)))

    # --- One logical call ----------------------------------------------------------------------

    def _call(self, method: str, path: str, *, token: str | None = None,
              params: dict[str, str] | None = None, body: tuple[Any, Any] | None = None,
              answer: Any = None, ok: tuple[int, ...] = (200,),
              staff_token: str | None = None, by_form: bool = True) -> Any:
        """`by_form=False`: a write whose replay would be wrong (a log-in replayed would hand
        out a session already ended) always gets a fresh key."""
        headers = {}
        request_id = current_request_id()
        if request_id:  # the patron's request: one id in the terminal's and the registry's log
            headers[REQUEST_ID_HEADER] = request_id
        if token is not None:
            headers["X-Patron-Session"] = token
        if staff_token is not None:
            headers["X-Staff-Token"] = staff_token
        data = None
        if body is not None:
            data = dump(body[0], body[1])
            headers["Content-Type"] = "application/json"
        from_form = None
        if method != "GET":
            # Once per logical call: urllib3's retries and ours below resend the same key.
            # Answering a form, the key comes from the form's: sending it again replays.
            if by_form:
                from_form = request_scope.idempotency_key(method, path,
                                                          f"{token or ''} {staff_token or ''}")
            headers["Idempotency-Key"] = from_form or str(uuid.uuid4())
        seconds = self.deadline
        page_left = request_scope.remaining()
        if page_left is not None:
            seconds = min(seconds, page_left)
        if seconds < _MIN_ATTEMPT:  # the page's budget is spent: no call can end in time
            raise RegistryError(UNAVAILABLE)
        call = _Deadline(seconds)
        reset = _current.set(call)
        call.start()
        try:
            while True:
                result = self._attempt(call, method, path, params, headers, data)
                if result.status in ok:
                    return self._decode(result, answer)
                error = self._refusal(result)
                if error.code == "idempotency_key_reused" and from_form is not None:
                    # The form was sent again with something changed: a new request.
                    headers["Idempotency-Key"] = from_form = str(uuid.uuid4())
                    continue
                retry_after = error.detail.get("retry_after")
                if error.code == "idempotency_in_progress":
                    wait = float(retry_after) if isinstance(retry_after, int) else 1.0
                    if call.remaining() - wait >= _MIN_ATTEMPT:
                        time.sleep(wait)
                        continue
                    raise RegistryError(UNAVAILABLE)
                raise error
        finally:
            call.finish()
            _current.reset(reset)

    def _attempt(self, call: _Deadline, method: str, path: str,
                 params: dict[str, str] | None, headers: dict[str, str],
                 data: bytes | None) -> _Answer:
        if call.remaining() < _MIN_ATTEMPT:
            raise RegistryError(UNAVAILABLE)
        try:
            response = self.session.request(
                method, self.base_url + path, params=params, data=data, headers=headers,
                # requests passes a urllib3 Timeout on as it is (its adapter says so), but its
                # type hint names only a number or a (connect, read) pair: the clone per
                # attempt (the deadline's remainder) needs the object itself.
                timeout=_DeadlineTimeout(self.connect_timeout, call),  # type: ignore[arg-type]
                stream=True, allow_redirects=False,
            )
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError,
                ValueError) as exc:
            refused = network.certificate_refusal(exc)
            if refused is None:
                raise RegistryError(UNAVAILABLE) from exc
            # Not an outage that passes: branch IT must hear why (and doctor says the same).
            _log.warning("%s (%s)", refused, self.base_url)
            raise RegistryError(UNAVAILABLE, reason=refused) from exc
        try:
            body = self._read_body(call, response)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError,
                ValueError) as exc:
            response.close()
            raise RegistryError(UNAVAILABLE) from exc
        except BaseException:
            response.close()
            raise
        return _Answer(response.status_code, response.headers, body)

    @staticmethod
    def _read_body(call: _Deadline, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY:
            raise ValueError("answer too large")
        raw = response.raw
        chunks: list[bytes] = []
        size = 0
        while True:
            if call.remaining() <= 0 or call.expired:
                raise TimeoutError("registry deadline passed while reading the answer")
            chunk = raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY:
                raise ValueError("answer too large")
            chunks.append(chunk)
        if call.expired:  # the watchdog cut the socket: what we have may be a short read
            raise TimeoutError("registry deadline passed while reading the answer")
        response.close()  # read to the end: the connection goes back to the pool
        return b"".join(chunks)

    @staticmethod
    def _json(result: _Answer) -> Any:
        mimetype = result.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if mimetype != "application/json":
            raise ValueError(f"not JSON: {mimetype or 'no content type'}")
        return json.loads(result.body)

    def _decode(self, result: _Answer, answer: Any) -> Any:
        if answer is None:
            return None
        try:
            return load(answer, self._json(result))
        except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
            raise RegistryError(UNAVAILABLE) from exc

    def _refusal(self, result: _Answer) -> RegistryError:
        """The registry's refusal as the in-process client raises it; else 'unavailable'."""
        if not 400 <= result.status < 600:  # redirects, informational: not the registry
            return RegistryError(UNAVAILABLE)
        try:
            detail = load(ErrorBody, self._json(result)).error
        except (ValueError, ValidationError):
            return RegistryError(UNAVAILABLE)
        if result.status >= 500 and detail.code not in _SERVER_CODES:
            return RegistryError(UNAVAILABLE)
        extra: dict[str, object] = {}
        if detail.attempts_left is not None:
            extra["attempts_left"] = detail.attempts_left
        if detail.retry_after is not None:
            if detail.code == "account_locked":
                extra["until"] = _utcnow() + timedelta(seconds=detail.retry_after)
            else:
                extra["retry_after"] = detail.retry_after
        return RegistryError(detail.code, dict(detail.fields), **extra)
