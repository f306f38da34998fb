"""Terminals (the kiosk PCs) and their bearer tokens: issued by IT, revoked, listed, and
checked on every API call (with a per-process cache of valid ones).
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

from sqlalchemy import select, update

from . import domain
from .context import TOUCH_EVERY, RegistryContext
from .domain import RegistryError, TerminalView
from .staff import record
from .store import Library, Terminal


class TerminalTokens:
    def __init__(self, ctx: RegistryContext, *, cache: timedelta):
        self.ctx = ctx
        # Terminal tokens are checked on every API call: a valid one is remembered for a few
        # seconds (a revocation elsewhere takes effect within `cache`).
        self.cache = cache
        self._known: dict[str, tuple[TerminalView, str, float]] = {}

    def add(self, library_code: str, name: str, actor: str) -> tuple[str, TerminalView]:
        """Issue a terminal's bearer token: shown once, stored only as a hash."""
        name = domain.clean_name(name)
        if not name or len(name) > 80:
            raise RegistryError("invalid", {"name": "required" if not name else "too_long"})
        with self.ctx.store.write() as s:
            library = s.scalar(select(Library).where(Library.code == library_code))
            if library is None:
                raise RegistryError("invalid", {"library_code": "library_unknown"})
            token = "kt_" + secrets.token_urlsafe(32)
            row = Terminal(name=name, library_id=library.id, token_hash=domain.token_hash(token),
                           created_at=self.ctx.clock(), version="")
            s.add(row)
            s.flush()
            record(s, self.ctx.clock(), actor, "terminal_added", terminal=row.id,
                   library=library_code)
            return token, self._view(row)

    def revoke(self, terminal_id: int, actor: str, where: str = "") -> None:
        with self.ctx.store.write() as s:
            row = s.get(Terminal, terminal_id)
            if row is None:
                raise RegistryError("not_found")
            self._known.clear()
            if row.revoked_at is None:
                row.revoked_at = self.ctx.clock()
                record(s, self.ctx.clock(), actor, "terminal_revoked", where=where,
                       terminal=row.id)

    def terminals(self) -> list[TerminalView]:
        with self.ctx.store.read() as s:
            rows = s.scalars(select(Terminal).order_by(Terminal.id)).all()
            return [self._view(t) for t in rows]

    def authenticate(self, token: str, version: str = "") -> TerminalView:
        """The terminal behind a bearer token; records when it was last seen, and its version."""
        digest = domain.token_hash(token)
        cached = self._known.get(digest)
        if cached and cached[1] == version[:40] and time.monotonic() < cached[2]:
            return cached[0]
        now = self.ctx.clock()
        with self.ctx.store.read() as s:
            row = s.scalar(select(Terminal).where(Terminal.token_hash == digest))
            if row is None:
                raise RegistryError("terminal_unauthorized")
            if row.revoked_at is not None:
                raise RegistryError("terminal_revoked")
            view = self._view(row)
            stale = row.last_seen_at is None or now - row.last_seen_at > TOUCH_EVERY * 4
            changed = version[:40] != row.version
        if stale or changed:  # a write only now and then, not on every request
            with self.ctx.store.write() as s:
                s.execute(update(Terminal).where(Terminal.id == view.id)
                          .values(last_seen_at=now, version=version[:40]))
        expires = time.monotonic() + self.cache.total_seconds()
        self._known[digest] = (view, version[:40], expires)
        return view

    @staticmethod
    def _view(t: Terminal) -> TerminalView:
        return TerminalView(id=t.id, name=t.name, library_code=t.library.code,
                            created_at=t.created_at, last_seen_at=t.last_seen_at,
                            version=t.version, revoked=t.revoked_at is not None)
