"""Production servers: gunicorn (Linux) or waitress (Windows, or on request)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from flask import Flask

from . import metrics
from .registry.domain import HEARTBEAT_SECONDS, RegistryError
from .registry.mailer import SmtpConfig, start_sender
from .terminal import reference

# `kiosk registry serve` as kiosk-registry.service runs it: 2 worker processes of 2 threads
# each (KIOSK_WORKERS and KIOSK_THREADS in registry.env change both, and what `kiosk registry
# doctor` counts). One process per core of the 2-core machine: a third one only competes for
# the cores (benchmarks/registry_load.py: more CPU per claim, fewer claims a second); a host
# with more cores takes more.
WORKERS = 2
THREADS = 2


def default_server() -> str:
    return "waitress" if sys.platform == "win32" else "gunicorn"


def serve(factory: Callable[[], Flask], *, host: str, port: int, workers: int, threads: int,
          server: str) -> None:
    """Run `factory()`'s app; with gunicorn each worker process builds its own app."""
    if server == "gunicorn":
        # Here, not at the top: gunicorn is not installed on Windows, and the other
        # `kiosk` commands start without loading a server.
        from gunicorn.app.base import BaseApplication

        class Application(BaseApplication):
            def __init__(self, metrics_folder: str):
                self.metrics_folder = metrics_folder
                super().__init__()

            def load_config(self) -> None:
                bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                self.cfg.set("bind", bind)
                self.cfg.set("workers", workers)
                self.cfg.set("threads", threads)
                self.cfg.set("worker_class", "gthread" if threads > 1 else "sync")
                self.cfg.set("timeout", 30)
                self.cfg.set("graceful_timeout", 10)
                self.cfg.set("keepalive", 5)
                folder = self.metrics_folder
                self.cfg.set("child_exit",
                             lambda _arbiter, worker: metrics.worker_gone(folder, worker.pid))
                # gunicorn ≥ 25.1 opens a control socket (reload, change the workers) in
                # $XDG_RUNTIME_DIR or ~/.gunicorn: outside the unit's state directory, an
                # ERROR at every start where the home is not writable, and one path shared
                # by every server of the user. Nothing here uses it.
                if "control_socket_disable" in self.cfg.settings:
                    self.cfg.set("control_socket_disable", True)

            def load(self) -> Flask:
                return factory()

        # /metrics adds up the counts of every worker, whichever one answers the scrape.
        with metrics.shared_between_workers() as folder:
            Application(folder).run()
        return
    from waitress import serve as waitress_serve

    waitress_serve(factory(), host=host, port=port, threads=max(threads, 4) * workers)


def heartbeat(app: Flask) -> None:
    """One beat: ask the registry for the maintenance message. It tells the registry this
    terminal is alive (last contact, version) and keeps the message fresh for the pages."""
    with app.app_context():
        try:
            reference.maintenance()
        except RegistryError:
            pass  # the registry is away: the pages say so; the next beat tries again


def start_heartbeat(app: Flask, every: float | None = None) -> threading.Event:
    """Beat in the background while the terminal serves, also when no patron is there (the
    start screen makes no requests); answers an event that stops it."""
    stop = threading.Event()

    def run() -> None:
        while True:
            heartbeat(app)
            if stop.wait(every or HEARTBEAT_SECONDS):
                return

    threading.Thread(target=run, name="kiosk-heartbeat", daemon=True).start()
    return stop


def start_mail_sender(app: Flask, every: float = 30.0) -> threading.Event | None:
    """Send the queued e-mail notices in the background while this registry serves (when
    SMTP_HOST is set; otherwise nothing is queued and no thread starts). Several senders
    (gunicorn workers, a CLI run) may run side by side: each notice is claimed before it
    goes, so none is sent twice; so is each published course before it is told."""
    smtp = SmtpConfig.from_config(app.config)
    service = app.extensions.get("registry_service")
    if smtp is None or service is None:
        return None
    # Each round first tells the new courses that have settled (kiosk.registry.alerts).
    return start_sender(service.store, smtp, service.clock, every=every,
                        before=service.alerts.tell_subscribers)
