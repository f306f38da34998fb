"""What a psycopg connection sends to PostgreSQL, read from libpq's own protocol trace
(PQtrace): each message the client sent, and so the round trips it waited for — one per
simple query, one per extended query (its Sync)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg import pq

ENDS_A_ROUND_TRIP = ("Query", "Sync")


@dataclass
class Sent:
    """The client's messages, as (type, text) — e.g. ("Query", '"BEGIN …"'), ("Parse", …)."""

    messages: list[tuple[str, str]] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        return sum(kind in ENDS_A_ROUND_TRIP for kind, _ in self.messages)

    @property
    def simple_queries(self) -> list[str]:
        return [body.strip().strip('"') for kind, body in self.messages if kind == "Query"]


@contextmanager
def traced(dbapi_connection: Any) -> Iterator[Sent]:
    """Trace what `dbapi_connection` (a psycopg connection) sends inside the block; the
    answer is filled in when the block ends."""
    sent = Sent()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        pgconn = dbapi_connection.pgconn
        pgconn.trace(log.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield sent
        finally:
            pgconn.untrace()
        log.seek(0)
        for line in log:  # "F\t<length>\t<type>\t<contents>" for the frontend's messages
            parts = line.rstrip("\n").split("\t", 3)
            if len(parts) >= 3 and parts[0] == "F":
                sent.messages.append((parts[2], parts[3] if len(parts) > 3 else ""))
