"""A logged-in patron's session: the checks every patron call makes (live, not idle, not too
old, not held by a printed one-time password), and keeping it alive now and then.

Used by the account and the seat use cases alike; the session limits are given here, and
nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session

from . import domain
from .context import TOUCH_EVERY, RegistryContext
from .domain import RegistryError
from .prepared import Prepared
from .store import Patron, PatronSession, Runner

# Statements of every patron call, built once (SQLAlchemy then reuses their compiled form).
_SESSION = (select(PatronSession.id, PatronSession.patron_id, PatronSession.created_at,
                   PatronSession.last_seen_at, PatronSession.revoked_at,
                   Patron.must_change_password)
            .join(Patron, Patron.id == PatronSession.patron_id)
            .where(PatronSession.token_hash == bindparam("token_hash")))
_TOUCH = Prepared(update(PatronSession).where(PatronSession.id == bindparam("session_id"))
                  .values(last_seen_at=bindparam("seen_at")))
T = TypeVar("T")


class PatronSessions:
    def __init__(self, ctx: RegistryContext, *, idle: timedelta, max_age: timedelta):
        self.ctx = ctx
        self.idle = idle
        self.max_age = max_age

    def session(self, s: Runner, token: str, *, one_time_ok: bool = False) -> Row:
        """A patron's live session; an idle, old or revoked one is refused (read only).

        While the patron holds a printed one-time password, only `one_time_ok` uses (who am
        I, choosing their own password) get through: whoever else read the printout must not
        enrol, read or erase in their name. Refused with `password_change_required`."""
        sess = s.execute(_SESSION, {"token_hash": domain.token_hash(token)}).first()
        return self.check_session(sess, one_time_ok=one_time_ok)

    def check_session(self, sess: Row | None, *, one_time_ok: bool = False) -> Row:
        """`sess` if it is a live session (any row with the columns of `session`'s read),
        else refused as `session` says."""
        now = self.ctx.clock()
        if sess is None or sess.revoked_at is not None:
            raise RegistryError("session_invalid")
        if now - sess.last_seen_at > self.idle or now - sess.created_at > self.max_age:
            raise RegistryError("session_invalid")
        if sess.must_change_password and not one_time_ok:
            raise RegistryError("password_change_required")
        return sess

    def touch_due(self, sess: Row) -> bool:
        return self.ctx.clock() - sess.last_seen_at > TOUCH_EVERY

    def touch(self, s: Runner, session_id: int) -> None:
        conn = s.connection() if isinstance(s, Session) else s
        _TOUCH.run(conn, {"session_id": session_id, "seen_at": self.ctx.clock()})

    def patron_id_for(self, s: Runner, token: str) -> int:
        """Inside a write transaction: the patron behind a token, their session kept alive."""
        sess = self.session(s, token)
        if self.touch_due(sess):
            self.touch(s, sess.id)
        return sess.patron_id

    def patron_for(self, s: Session, token: str) -> Patron:
        patron = s.get(Patron, self.patron_id_for(s, token))
        assert patron is not None
        return patron

    def reading(self, token: str, read: Callable[[Session, Patron], T], *,
                one_time_ok: bool = False) -> T:
        """A read for a logged-in patron; the session is kept alive now and then, not on
        every page, so most pages need no write lock."""
        with self.ctx.store.read() as s:
            sess = self.session(s, token, one_time_ok=one_time_ok)
            patron = s.get(Patron, sess.patron_id)
            assert patron is not None
            result = read(s, patron)
            due, sess_id = self.touch_due(sess), sess.id
        if due:
            with self.ctx.store.write() as s:
                self.touch(s, sess_id)
        return result
