"""/metrics: the registry's figures in the Prometheus text format, for branch IT.

Off unless METRICS_TOKEN is set: then there is no /metrics at all (404) and nothing is
measured. On, it answers only a request with `Authorization: Bearer <METRICS_TOKEN>` (401
otherwise); a staff log-in does not open it.

- `kiosk_http_request_duration_seconds` (histogram): every request by its Flask endpoint
  (`api.claim`, `staff.desk.search`, `health.readyz`…, `unmatched` for an unknown path or
  method: never the raw path, so the number of series stays bounded), method and status
  class (2xx…5xx).
- `kiosk_claims_total`: claims once committed, by outcome (`granted`: a seat given by this
  claim; `waiting`: answered with a place on the waiting list; `held`: they held a seat or
  offer already, a course was added) and `via` (`kiosk`, `desk`). An increment after the
  commit: the claim itself pays nothing more.
- Gauges read from the database at each scrape (registry/live_figures.py, one short read
  with a deadline): `kiosk_seats_cap`, `kiosk_seats_taken`, `kiosk_waiting_list_length`,
  `kiosk_outbox_waiting` and `kiosk_outbox_given_up` (outbox `email`, `academy`),
  `kiosk_terminals` by state, and `kiosk_database_up` (0: the read failed or ran out of
  time, and those gauges are missing from this scrape).

One process (the demo, waitress, the tests' client) keeps its counts in memory. Under
gunicorn each worker is a process of its own: `shared_between_workers` (kiosk.serving) gives
them a private folder where each writes its counts to a file (prometheus_client's
multiprocess mode), and a scrape, whichever worker answers it, adds them all up.
"""

from __future__ import annotations

import hmac
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, Flask, current_app, g, request, request_started
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from .registry import live_figures
from .registry.domain import ClaimResult, RegistryError, Standing
from .registry.services import RegistryService
from .version import __version__

_log = logging.getLogger("kiosk.metrics")

# prometheus_client's own name for the folder of multiprocess mode; its multiprocess
# collector and mark_process_dead read it too.
SHARED_FOLDER = "PROMETHEUS_MULTIPROC_DIR"
# Seconds. A claim's p99 budget is 0.2 s; a card check at a member system may take 30 s.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLAIM_OUTCOMES = ("granted", "waiting", "held")
CLAIM_VIA = ("kiosk", "desk")

bp = Blueprint("metrics", __name__)


# --- Labels (pure) ----------------------------------------------------------------------------


def endpoint_label(endpoint: str | None) -> str:
    """The Flask endpoint (a name from the code, a bounded set); `unmatched` when no route
    matched (an unknown path, a method the route does not take)."""
    return endpoint or "unmatched"


def method_label(method: str) -> str:
    """HTTP methods a client may make up are one label, not one series each."""
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    return f"{status // 100}xx"


def claim_outcome(result: ClaimResult) -> str:
    if result.newly_granted:
        return "granted"
    if result.standing is Standing.WAITING:
        return "waiting"
    return "held"


# --- The instruments of one app ---------------------------------------------------------------


class LiveGauges:
    """A prometheus_client collector: the database's figures, read when scraped."""

    def __init__(self, service: RegistryService):
        self.service = service

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("kiosk_database_up", "1 when this scrape read the figures "
                               "from the database in time; 0: busy or away, figures missing")
        try:
            figures = live_figures.read(self.service.store, self.service.clock(), __version__)
        except (RegistryError, SQLAlchemyError) as exc:
            _log.warning("metrics: database figures not read (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if figures.seats is not None:
            yield GaugeMetricFamily("kiosk_seats_cap", "Seats the programme may hand out",
                                    value=figures.seats.cap)
            yield GaugeMetricFamily("kiosk_seats_taken", "Seats held (seated or offered)",
                                    value=figures.seats.taken)
            yield GaugeMetricFamily("kiosk_waiting_list_length", "Patrons on the waiting list",
                                    value=figures.seats.waiting)
        waiting = GaugeMetricFamily("kiosk_outbox_waiting", "Messages waiting to be sent",
                                    labels=["outbox"])
        waiting.add_metric(["email"], figures.notices_waiting)
        waiting.add_metric(["academy"], figures.academy_waiting)
        yield waiting
        given_up = GaugeMetricFamily("kiosk_outbox_given_up", "Messages given up after their "
                                     "last attempt (sent again from the dashboard)",
                                     labels=["outbox"])
        given_up.add_metric(["email"], figures.notices_given_up)
        given_up.add_metric(["academy"], figures.academy_given_up)
        yield given_up
        terminals = GaugeMetricFamily("kiosk_terminals", "Terminals by state (offline: no "
                                      "contact for 5 minutes; outdated: online, older version)",
                                      labels=["state"])
        for state, count in figures.terminals.items():
            terminals.add_metric([state], count)
        yield terminals


class Metrics:
    """One app's counters, and what a scrape of it reads. With `shared` (a folder, under
    gunicorn) the counters are written there by every worker and a scrape adds the folder up;
    without, they are this process's."""

    def __init__(self, service: RegistryService, shared: str | None):
        self.shared = shared
        self.gauges = LiveGauges(service)
        own = None if shared else CollectorRegistry()
        self.requests = Histogram(
            "kiosk_http_request_duration_seconds", "Requests by endpoint, method and status "
            "class, and how long they took", ["endpoint", "method", "status"],
            buckets=REQUEST_BUCKETS, registry=own)
        self.claims = Counter("kiosk_claims", "Claims committed, by outcome and where made",
                              ["outcome", "via"], registry=own)
        for outcome in CLAIM_OUTCOMES:  # every series from the start: rate() needs a zero
            for via in CLAIM_VIA:
                self.claims.labels(outcome, via)
        if own is not None:
            own.register(self.gauges)
        self._own = own

    def count_claim(self, via: str, result: ClaimResult) -> None:
        self.claims.labels(claim_outcome(result), via).inc()

    def observe(self, endpoint: str | None, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint_label(endpoint), method_label(method),
                             status_label(status)).observe(seconds)

    def exposition(self) -> bytes:
        if self._own is not None:
            return generate_latest(self._own)
        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape, path=self.shared)
        scrape.register(self.gauges)
        return generate_latest(scrape)


# --- Flask ------------------------------------------------------------------------------------


def init_app(app: Flask, service: RegistryService) -> None:
    """Measure `app`'s requests and `service`'s claims, and serve /metrics, when
    METRICS_TOKEN is set; otherwise nothing (no route: /metrics is a 404)."""
    if not app.config["METRICS_TOKEN"]:
        return
    metrics = Metrics(service, os.environ.get(SHARED_FOLDER) or None)
    app.extensions["kiosk_metrics"] = metrics
    service.seating.on_claim = metrics.count_claim
    # Sent before any before_request function: a request another hook ends early (a CSRF
    # refusal, an expired visit's redirect) is timed too.
    request_started.connect(_start_clock, app)
    app.after_request(_observe)
    app.register_blueprint(bp)


def _start_clock(_sender: Flask, **_extra: Any) -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        rule = request.url_rule
        current_app.extensions["kiosk_metrics"].observe(
            rule.endpoint if rule is not None else None, request.method, response.status_code,
            time.perf_counter() - started)
    return response


def authorised(header: str, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8"), token.encode("utf-8"))


@bp.get("/metrics")
def scrape() -> Response:
    if not authorised(request.headers.get("Authorization", ""),
                      current_app.config["METRICS_TOKEN"]):
        return Response("metrics: a valid bearer token is required\n", 401,
                        {"WWW-Authenticate": 'Bearer realm="metrics"'},
                        content_type="text/plain; charset=utf-8")
    body = current_app.extensions["kiosk_metrics"].exposition()
    return Response(body, 200, content_type=CONTENT_TYPE_PLAIN_0_0_4)


# --- Several worker processes (gunicorn) ------------------------------------------------------


@contextmanager
def shared_between_workers() -> Iterator[str]:
    """A fresh private folder (0700, in the temporary folder: systemd's PrivateTmp for the
    service) for the counts of the worker processes started inside, removed at the end.

    prometheus_client chooses where counts live when it is imported, by this variable; here
    it is imported long before `serve` knows it will fork (kiosk.app imports this module), so
    the choice is made again, before any worker builds its app and its counters."""
    folder = tempfile.mkdtemp(prefix="kiosk-metrics-")
    owner = os.getpid()
    before = os.environ.get(SHARED_FOLDER), values.ValueClass
    os.environ[SHARED_FOLDER] = folder
    values.ValueClass = values.MultiProcessValue()
    try:
        yield folder
    finally:
        # Workers are forked inside and leave through here too: only the master tidies up.
        if os.getpid() == owner:
            shutil.rmtree(folder, ignore_errors=True)
            values.ValueClass = before[1]
            if before[0] is None:
                os.environ.pop(SHARED_FOLDER, None)
            else:
                os.environ[SHARED_FOLDER] = before[0]


def worker_gone(folder: str, pid: int) -> None:
    """gunicorn's child_exit hook: a dead worker's live gauges are dropped (its counters stay:
    they are part of the totals)."""
    multiprocess.mark_process_dead(pid, folder)

