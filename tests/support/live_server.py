"""A WSGI app served by waitress in a thread on 127.0.0.1 with a free port, for HTTP tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from waitress.server import create_server


@contextmanager
def serve(app: Any, threads: int = 8) -> Iterator[str]:
    """Serves `app` until the block ends; yields its base URL (http://127.0.0.1:<port>).

    The event loop runs in its own thread and is also closed there: closing waitress's sockets
    from another thread while it sits in select() fails with EBADF.
    """
    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                server.asyncore.loop(timeout=0.05, map=server._map, count=1)
        finally:
            server.task_dispatcher.shutdown(timeout=5)
            for channel in list(server._map.values()):
                channel.close()

    thread = threading.Thread(target=run, name="waitress-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop.set()
        thread.join(timeout=10)
