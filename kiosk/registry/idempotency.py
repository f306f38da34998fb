"""Idempotency-Key: a retried write returns the first answer instead of running again.

The protocol, per terminal and key:
1. a short transaction records the key as *running* (or finds it: same body and done →
   replay; same body still running → "in progress"; another body → refused);
2. the use case and the *done* record with its answer commit in ONE transaction, so a
   connection dropped right after that commit is answered from the record on retry;
3. an answer that executed nothing (validation, conflict, busy) removes the record.

A *running* record older than `stale_after` belongs to a request whose transaction never
committed (step 2 is atomic), so a retry may take it over safely.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .domain import RegistryError
from .store import IdempotencyRecord, Store

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 100


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: str


def request_fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class IdempotencyKeys:
    def __init__(self, store: Store, clock: Callable[[], datetime],
                 stale_after: timedelta = timedelta(seconds=60)):
        self.store = store
        self.clock = clock
        self.stale_after = stale_after

    def begin(self, terminal_id: int, key: str, fingerprint: str) -> StoredAnswer | None:
        """Claim the key for this request; answers the stored answer if it ran already."""
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise RegistryError("idempotency_key_invalid")
        now = self.clock()
        try:
            # Not waiting for the disk: a crash losing this mark loses nothing (the request
            # did not finish either), and the use case's durable commit flushes it anyway.
            with self.store.write(durable=False) as s:
                s.connection().execute(insert(IdempotencyRecord).values(
                    terminal_id=terminal_id, key=key, request_hash=fingerprint,
                    state="running", created_at=now))
            return None
        except IntegrityError:
            pass
        with self.store.write() as s:
            row = s.scalar(select(IdempotencyRecord).where(
                IdempotencyRecord.terminal_id == terminal_id, IdempotencyRecord.key == key))
            if row is None:  # removed meanwhile (its request executed nothing): try again
                return self.begin(terminal_id, key, fingerprint)
            if row.request_hash != fingerprint:
                raise RegistryError("idempotency_key_reused")
            if row.state == "done":
                return StoredAnswer(row.status_code or 200, row.response_body or "")
            taken_over = s.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.id == row.id, IdempotencyRecord.state == "running",
                       IdempotencyRecord.created_at < now - self.stale_after)
                .values(created_at=now)
            ).rowcount
            if not taken_over:
                raise RegistryError("idempotency_in_progress", retry_after=1)
            return None

    def finish(self, s: Session, terminal_id: int, key: str, status: int, body: str) -> None:
        """Inside the use case's own transaction: the answer commits with the change."""
        s.connection().execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.terminal_id == terminal_id, IdempotencyRecord.key == key)
            .values(state="done", status_code=status, response_body=body)
        )

    def answer_without_change(self, terminal_id: int, key: str, status: int, body: str) -> None:
        """A refusal that is still the answer to this request (e.g. 404): store it."""
        with self.store.write() as s:
            self.finish(s, terminal_id, key, status, body)

    def abandon(self, terminal_id: int, key: str) -> None:
        """Nothing was executed: forget the key, so a corrected retry may use it.

        Only a *running* record goes: a *done* one holds an answer that committed."""
        with self.store.write(durable=False) as s:
            s.execute(delete(IdempotencyRecord).where(
                IdempotencyRecord.terminal_id == terminal_id, IdempotencyRecord.key == key,
                IdempotencyRecord.state == "running"))

    def purge(self, keep_for: timedelta = KEEP_FOR) -> int:
        with self.store.write() as s:
            return s.execute(delete(IdempotencyRecord).where(
                IdempotencyRecord.created_at < self.clock() - keep_for)).rowcount
