"""Production servers: gunicorn (Linux) or waitress (Windows, or on request)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from flask import Flask


def default_server() -> str:
    return "waitress" if sys.platform == "win32" else "gunicorn"


def serve(factory: Callable[[], Flask], *, host: str, port: int, workers: int, threads: int,
          server: str) -> None:
    """Run `factory()`'s app; with gunicorn each worker process builds its own app."""
    if server == "gunicorn":
        from gunicorn.app.base import BaseApplication

        class Application(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                self.cfg.set("bind", bind)
                self.cfg.set("workers", workers)
                self.cfg.set("threads", threads)
                self.cfg.set("worker_class", "gthread" if threads > 1 else "sync")
                self.cfg.set("timeout", 30)
                self.cfg.set("graceful_timeout", 10)
                self.cfg.set("keepalive", 5)

            def load(self) -> Flask:
                return factory()

        Application().run()
        return
    from waitress import serve as waitress_serve

    waitress_serve(factory(), host=host, port=port, threads=max(threads, 4) * workers)
