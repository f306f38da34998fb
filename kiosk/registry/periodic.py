"""Work done in the background every few seconds while a server runs (the outboxes' senders)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


def run_every(seconds: float, work: Callable[[], object], *, name: str,
              log: logging.Logger) -> threading.Event:
    """Run `work` now, then every `seconds`, in a daemon thread named `name`; answers the
    event that stops it. An error is logged, never raised: the next round tries again (a
    database hiccup must not end the thread for the life of the process)."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                work()
            except Exception:
                log.exception("%s: round failed", name)
            if stop.wait(seconds):
                return

    threading.Thread(target=loop, name=name, daemon=True).start()
    return stop
