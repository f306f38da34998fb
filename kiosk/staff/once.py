"""A staff form sent again is answered once: a double click on "Create account", or a form
sent again after its answer was lost, replays the first answer instead of running twice.

Every staff form carries the hidden form key the patron forms carry (`request_key`, rendered
by `form_key_field()`; kiosk.registry.request_scope). A view decorated with `once` follows
Post/Redirect/Get, and runs several use cases, each in its own transaction, so the protocol
has two phases around the view, per staff member and key:

1. a *running* mark is committed first, in a transaction of its own (INSERT … ON CONFLICT DO
   NOTHING). If the mark was there already: *done* with the same fingerprint → the stored
   answer is replayed (its messages flashed again, 303 to its address); *running* → wait for
   it (every POLL_EVERY seconds, until WAIT_FOR_FIRST after the mark was made), then replay;
   still running → a calm page (409), the view is not run; another fingerprint → 422, the
   page was already sent with other values;
2. the view runs;
3. a redirect is stored with the mark (*done*, its address, the messages it flashed); any
   other answer — a form with errors, a refusal, an exception — deletes the mark, so a
   corrected form sent with the same key runs.

At most one effect, never exactly one: a crash (or a lost database) between 1 and 3 leaves
the mark *running* until it is purged (with the idempotency keys, after 24 hours), and every
re-send of that form gets the calm page. A running mark is never taken over, because the view
may well have committed its work. The key is derived from the form key and the address, so
two buttons of one page (withdraw, enrol) never share a mark; the fingerprint covers the form
key, the address and the fields sent (not the CSRF token, which changes with each page shown).
A POST without a valid key (an old page, a script) runs the view as before.

Covered (they redirect on success):
  desk: enrol, withdraw, give_up_seat, leave_waiting_list, email_receipt, password, erase,
  register; pending: confirm, erase; duplicates: merge, dismiss; seats: confirm_cap, remove,
  move; settings: seats, institutions, closed_days; courses: add, edit, retire, restore,
  module_of_the_month, clear_module_of_the_month; it: revoke, maintenance,
  clear_maintenance, member_system, remove_member_system; dashboard: send_again,
  academy_send_again; accounts: index (a new staff account), disable; auth: password (one's
  own: sent twice, the second would find the old password wrong and count it).
Deliberately not covered:
  auth.login, auth.logout — nobody is logged in yet to own a mark, and a log-out sent twice
    ends nothing more;
  desk.search, seats.cap (the preview) — they change nothing and answer a page;
  desk.receipt — answers the printed page itself (a receipt printed twice is two sheets);
  desk.one_time_password — shows a secret directly: a secret is never stored to be shown
    again; sent again, it makes a new one-time password, the last one printed is the valid one;
  dashboard.patron_export, seats.export — answer the download itself, each export audited
    as one;
  it.check_member_systems — a check, not a change: sent again, it asks the systems again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, flash, redirect, request, session
from flask_babel import gettext as _
from sqlalchemy import bindparam, delete, select, update
from werkzeug.wrappers import Response

from ..registry.domain import RegistryError
from ..registry.idempotency import request_fingerprint
from ..registry.request_scope import FORM_KEY_FIELD, parse_form_key
from ..registry.store import StaffFormAnswer, Store
from .base import current_staff, service, staff_error

F = TypeVar("F", bound=Callable[..., Any])

WAIT_FOR_FIRST = 5.0  # seconds after its mark that a re-send waits for the first sending
POLL_EVERY = 0.2  # seconds between two looks at a running mark
_NOT_FINGERPRINTED = {"csrf_token", FORM_KEY_FIELD}  # the form key is hashed on its own
_REDIRECTS = {301, 302, 303, 307, 308}


def mark_key(form_key: uuid.UUID, path: str) -> str:
    """The mark's key: one per form key and address (two buttons of a page: two marks)."""
    return str(uuid.uuid5(form_key, f"POST {path}"))


def fingerprint(form_key: uuid.UUID, path: str, fields: Iterable[tuple[str, str]]) -> str:
    """What was sent. The form key is part of it: without the key, which is never stored, the
    hash of a form holding a password cannot be tried against guesses."""
    parts: list[str] = [str(form_key), path]
    for name, value in sorted(fields):
        if name not in _NOT_FINGERPRINTED:
            parts += (name, value)
    return request_fingerprint(*parts)


@dataclass(frozen=True)
class Mark:
    request_hash: str
    state: str
    location: str | None
    messages: list[tuple[str, str]]
    created_at: datetime


_COLUMNS = (StaffFormAnswer.request_hash, StaffFormAnswer.state, StaffFormAnswer.location,
            StaffFormAnswer.messages, StaffFormAnswer.created_at)


class Marks:
    """The staff_form_answers rows of one registry: each call is its own transaction."""

    def __init__(self, store: Store):
        self.store = store

    def _where(self, staff_id: int, key: str) -> Any:
        return (StaffFormAnswer.staff_id == staff_id) & (StaffFormAnswer.key == key)

    def claim(self, staff_id: int, key: str, request_hash: str, now: datetime) -> Mark | None:
        """Commit a running mark: None when it is this request's, else the mark found (None
        too if it went between the insert and the look: a failed first sending)."""
        mark = (self.store.insert_ignoring_duplicates(StaffFormAnswer)
                .values(staff_id=bindparam("staff"), key=bindparam("key"),
                        request_hash=bindparam("hash"), state="running",
                        created_at=bindparam("now"))
                .returning(StaffFormAnswer.id))
        with self.store.write() as s:
            # RETURNING, not rowcount: psycopg answers -1 for INSERT … ON CONFLICT DO NOTHING.
            added = s.connection().execute(mark, {"staff": staff_id, "key": key,
                                                  "hash": request_hash, "now": now}).first()
            if added is not None:
                return None
            return self._read(s.connection(), staff_id, key)

    def find(self, staff_id: int, key: str) -> Mark | None:
        with self.store.read() as s:
            return self._read(s.connection(), staff_id, key)

    def _read(self, conn: Any, staff_id: int, key: str) -> Mark | None:
        row = conn.execute(select(*_COLUMNS).where(self._where(staff_id, key))).first()
        if row is None:
            return None
        messages = [(str(category), str(text)) for category, text in row.messages or []]
        return Mark(row.request_hash, row.state, row.location, messages, row.created_at)

    def done(self, staff_id: int, key: str, location: str,
             messages: list[tuple[str, str]]) -> None:
        with self.store.write() as s:
            s.connection().execute(
                update(StaffFormAnswer).where(self._where(staff_id, key))
                .values(state="done", location=location,
                        messages=[list(m) for m in messages]))

    def forget(self, staff_id: int, key: str) -> None:
        """Nothing to replay: the form may be sent again and run. Only a running mark."""
        with self.store.write(durable=False) as s:
            s.connection().execute(delete(StaffFormAnswer).where(
                self._where(staff_id, key), StaffFormAnswer.state == "running"))


def once(view: F) -> F:
    """Answer a staff form sent again with its first answer (see the module's docstring).
    Goes under `requires`, so a staff member is logged in when it runs."""

    @wraps(view)
    def answered_once(*args: Any, **kwargs: Any) -> Any:
        form_key = (parse_form_key(request.form.get(FORM_KEY_FIELD))
                    if request.method == "POST" else None)
        staff = current_staff()
        if form_key is None or staff is None:
            return view(*args, **kwargs)
        marks = Marks(service().store)
        key = mark_key(form_key, request.path)
        sent = fingerprint(form_key, request.path, request.form.items(multi=True))
        deadline: float | None = None
        while True:
            found = marks.claim(staff.id, key, sent, service().clock())
            if found is None:
                return _run(marks, staff.id, key, view, args, kwargs)
            while found is not None and found.state == "running" \
                    and found.request_hash == sent:
                if deadline is None:  # counted from the mark: an old one is not waited for
                    age = (service().clock() - found.created_at).total_seconds()
                    deadline = time.monotonic() + max(0.0, WAIT_FOR_FIRST - age)
                if time.monotonic() >= deadline:
                    return _still_running()
                time.sleep(POLL_EVERY)
                found = marks.find(staff.id, key)
            if found is None:
                continue  # the first sending answered with nothing to replay: run this one
            if found.request_hash != sent:
                return staff_error(
                    _("This page was already sent"),
                    _("This page was already sent with other values. Open the page again "
                      "to make another change."), 422)
            return _replay(found)

    return cast(F, answered_once)


def _run(marks: Marks, staff_id: int, key: str, view: Callable[..., Any], args: Any,
         kwargs: Any) -> Response:
    before = len(session.get("_flashes", []))
    try:
        answer = current_app.make_response(view(*args, **kwargs))
    except BaseException:
        _forget(marks, staff_id, key)
        raise
    location = answer.headers.get("Location")
    if answer.status_code not in _REDIRECTS or not location:
        _forget(marks, staff_id, key)
        return answer
    flashed = list(session.get("_flashes", []))
    added = flashed[before:] if len(flashed) >= before else flashed
    try:
        marks.done(staff_id, key, location, [(str(c), str(m)) for c, m in added])
    except RegistryError as problem:
        # The change is made: its answer must reach the librarian. The mark stays running,
        # so a re-send gets the calm page, never a second change.
        current_app.logger.warning("staff form answer not kept (%s)", problem.code)
    return answer


def _forget(marks: Marks, staff_id: int, key: str) -> None:
    """Free the key after an answer with nothing to replay; if the database is busy, the
    view's own answer still goes out (the mark then waits for the purge, as after a crash)."""
    try:
        marks.forget(staff_id, key)
    except RegistryError as problem:
        current_app.logger.warning("staff form mark not removed (%s)", problem.code)


def _replay(found: Mark) -> Response:
    """The first answer again: its messages (those not already waiting to be shown: the
    first answer may have reached this browser after all) and its address."""
    waiting = {(str(c), str(m)) for c, m in session.get("_flashes", [])}
    for category, text in found.messages:
        if (category, text) not in waiting:
            flash(text, category)
    return redirect(found.location or request.path, code=303)


def _still_running() -> tuple[str, int]:
    return staff_error(
        _("This is still being done"),
        _("This form was already sent and is still being done: it will not be done twice. "
          "Look at the patron's page (or the page you came from) in a moment to see the "
          "result."), 409)
