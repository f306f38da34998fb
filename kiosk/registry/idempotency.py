"""Idempotency-Key: a retried write returns the first answer instead of running again.

The protocol, per terminal and key, in the write's OWN transaction:
1. its first statement marks the key *running* (INSERT … ON CONFLICT DO NOTHING). A second
   request with the same key waits at that insert for the first to end: committed, it finds
   the record (same body and done → replay; another body → refused); rolled back (a crash, a
   lost connection, a busy database), the key is free again and this request runs;
2. the use case and the *done* record with its answer commit together, so a connection
   dropped right after that commit is answered from the record on retry;
3. an answer that executed nothing (validation, conflict, busy) leaves no record.

On PostgreSQL the mark goes with the use case's first statement, in its round trip
(`mark_ahead`, `prepared.send_ahead`). Where it finds the key taken, that statement is rolled
back with the transaction (`KeyNotMarked`) and the request starts again the long way
(`begin`), which looks at the record as above. A use case that stops before its first
statement sends the mark then (`AheadMark.settle`), so its refusal is handled as it would be
the long way: the key ours, or someone else's.

No mark is ever committed ahead of its write, so no failed attempt leaves a key "running".
The exception: a use case that commits part of its work early (a log-in counts its attempt
before the password is checked; an offer found lapsed) commits the mark with it; a refusal
then removes it (`abandon`), success completes it, and a *running* record older than
`stale_after` (a crash in between) may be taken over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from .domain import RegistryError
from .prepared import Prepared, send_ahead, send_pending
from .store import IdempotencyRecord, StaffFormAnswer, Store, at_commit

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


_DONE = Prepared(update(IdempotencyRecord)
                  .where(IdempotencyRecord.terminal_id == bindparam("for_terminal"),
                         IdempotencyRecord.key == bindparam("for_key"))
                  .values(state="done", status_code=bindparam("status"),
                          response_body=bindparam("body")))


class KeyNotMarked(Exception):
    """The key's mark, sent ahead of the use case, found the key taken by another request.
    Nothing of this attempt stays (its transaction rolls back): run it again the long way,
    with `begin`."""


class AheadMark:
    """The key's mark, sent with the use case's first statement: `sent` once it went,
    `marked` if it took the key."""

    def __init__(self) -> None:
        self.sent = False
        self.marked = False

    def check(self, rows: list[Any] | None) -> None:
        self.sent = True
        if rows is None:  # the round trip failed: its failure is the answer
            return
        self.marked = bool(rows)
        if not rows:
            raise KeyNotMarked

    def settle(self, s: Session) -> None:
        """The use case in `s` stopped: the mark, if still unsent, goes now (`KeyNotMarked`
        if the key was taken), so that its stop is handled as the long way would."""
        if not self.sent:
            send_pending(s.connection())


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise RegistryError("idempotency_key_invalid")


class IdempotencyKeys:
    def __init__(self, store: Store, clock: Callable[[], datetime],
                 stale_after: timedelta = timedelta(seconds=60)):
        self.store = store
        self.clock = clock
        self.stale_after = stale_after
        # Every keyed write runs these: built once, their compiled form is reused.
        self._mark = Prepared(store.insert_ignoring_duplicates(IdempotencyRecord)
                              .values(terminal_id=bindparam("for_terminal"),
                                      key=bindparam("for_key"),
                                      request_hash=bindparam("fingerprint"),
                                      state="running", created_at=bindparam("now"))
                              .returning(IdempotencyRecord.id))

    def mark_ahead(self, s: Session, terminal_id: int, key: str,
                   fingerprint: str) -> AheadMark | None:
        """On PostgreSQL, claim the key with the first statement of the write transaction `s`
        (its round trip): that statement raises `KeyNotMarked` if the key was taken. None
        elsewhere: use `begin`."""
        conn = s.connection()
        if conn.dialect.name != "postgresql":
            return None
        _check_key(key)
        mark = AheadMark()
        send_ahead(conn, *self._mark.bound(conn, {"for_terminal": terminal_id, "for_key": key,
                                                  "fingerprint": fingerprint,
                                                  "now": self.clock()}), mark.check)
        return mark

    def begin(self, s: Session, terminal_id: int, key: str,
                fingerprint: str) -> StoredAnswer | None:
        """Claim the key for this request, as the first statement of its write transaction
        `s`; answers the stored answer if the key's write already ran (then run nothing)."""
        _check_key(key)
        now = self.clock()
        conn = s.connection()
        # RETURNING, not rowcount: psycopg answers -1 for INSERT … ON CONFLICT DO NOTHING.
        added = self._mark.first(conn, {"for_terminal": terminal_id, "for_key": key,
                                        "fingerprint": fingerprint, "now": now})
        if added is not None:
            return None
        row = conn.execute(select(IdempotencyRecord.id, IdempotencyRecord.request_hash,
                                  IdempotencyRecord.state, IdempotencyRecord.status_code,
                                  IdempotencyRecord.response_body)
                           .where(IdempotencyRecord.terminal_id == terminal_id,
                                  IdempotencyRecord.key == key)).first()
        if row is None:  # purged in between: nothing ran under it that is still kept
            raise RegistryError("idempotency_in_progress", retry_after=1)
        if row.request_hash != fingerprint:
            raise RegistryError("idempotency_key_reused")
        if row.state == "done":
            return StoredAnswer(row.status_code or 200, row.response_body or "")
        taken_over = conn.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == row.id, IdempotencyRecord.state == "running",
                   IdempotencyRecord.created_at < now - self.stale_after)
            .values(created_at=now)
        ).rowcount
        if not taken_over:
            raise RegistryError("idempotency_in_progress", retry_after=1)
        return None

    def finish(self, s: Session, terminal_id: int, key: str, status: int, body: str) -> None:
        """Inside the use case's own transaction: the answer commits with the change (sent
        with the COMMIT, see `store.at_commit`)."""
        at_commit(s, _DONE, {"for_terminal": terminal_id, "for_key": key,
                             "status": status, "body": body})

    def answer_without_change(self, terminal_id: int, key: str, fingerprint: str, status: int,
                              body: str) -> None:
        """A refusal that is still the answer to this request (e.g. 404): store it, in a
        transaction of its own (the write's was rolled back, its mark with it)."""
        with self.store.write() as s:
            self._mark.run(s.connection(), {"for_terminal": terminal_id, "for_key": key,
                                            "fingerprint": fingerprint, "now": self.clock()})
            self.finish(s, terminal_id, key, status, body)

    def abandon(self, terminal_id: int, key: str) -> None:
        """Nothing was executed: forget the key, so a corrected retry may use it.

        Only a *running* record goes: a *done* one holds an answer that committed."""
        with self.store.write(durable=False) as s:
            s.execute(delete(IdempotencyRecord).where(
                IdempotencyRecord.terminal_id == terminal_id, IdempotencyRecord.key == key,
                IdempotencyRecord.state == "running"))

    def purge(self, keep_for: timedelta = KEEP_FOR) -> int:
        """Forget the keys older than `keep_for`: the terminals' and the staff forms' (their
        answers, kiosk.staff.once, are kept exactly as long). Answers how many went."""
        cutoff = self.clock() - keep_for
        with self.store.write() as s:
            conn = s.connection()
            keys = conn.execute(delete(IdempotencyRecord).where(
                IdempotencyRecord.created_at < cutoff))
            forms = conn.execute(delete(StaffFormAnswer).where(
                StaffFormAnswer.created_at < cutoff))
            return keys.rowcount + forms.rowcount
