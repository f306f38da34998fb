"""What one kiosk page sets for every registry call it makes: its time budget and its form key.

The terminal opens a scope per request (`kiosk.terminal` does, around every patron page); the
HTTP client reads it. Outside a scope (commands, tests, the registry itself) calls have only
their own deadline and a fresh Idempotency-Key each.

*Page budget.* A page may make several registry calls (who is logged in, the maintenance
message, the page's own call). Each has its own deadline (REGISTRY_DEADLINE), and all of them
together must end within the page's budget (PAGE_BUDGET): a frozen registry then holds a kiosk
for one budget, not one deadline per call.

*Form key.* Every form the kiosk shows carries a random key (`request_key`), and a form shown
again with what the patron typed (after "we could not reach the service") carries the same
one. A write made while answering that form uses an Idempotency-Key derived from the form key,
the operation and the patron, so sending the same form again replays the first answer (the new
card number, the seat) instead of running twice. Two different actions from one page get two
different keys, because the operation is part of the derivation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

FORM_KEY_FIELD = "request_key"


@dataclass(frozen=True)
class _Scope:
    deadline: float | None  # time.monotonic() by which every call must have ended
    form_key: uuid.UUID | None


_OUTSIDE = _Scope(None, None)
_scope: ContextVar[_Scope | None] = ContextVar("kiosk_request_scope", default=None)


def _current() -> _Scope:
    return _scope.get() or _OUTSIDE


def parse_form_key(text: str | None) -> uuid.UUID | None:
    """The form key as sent, or None when it is missing or not one of ours (a UUID)."""
    if not text or len(text) > 40:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def new_form_key() -> str:
    return str(uuid.uuid4())


@contextmanager
def page(budget: float | None, form_key: uuid.UUID | None = None) -> Iterator[None]:
    """Every registry call in the block ends within `budget` seconds of its start."""
    deadline = None if budget is None else time.monotonic() + budget
    reset = _scope.set(_Scope(deadline, form_key))
    try:
        yield
    finally:
        _scope.reset(reset)


@contextmanager
def at_most(seconds: float) -> Iterator[None]:
    """Narrow the current budget to `seconds` from now (never widen it): for calls whose
    answer the page can do without, such as revoking a session when a visit ends."""
    current = _current()
    deadline = time.monotonic() + seconds
    if current.deadline is not None:
        deadline = min(deadline, current.deadline)
    reset = _scope.set(_Scope(deadline, current.form_key))
    try:
        yield
    finally:
        _scope.reset(reset)


def remaining() -> float | None:
    """Seconds left of the page's budget (may be ≤ 0), or None outside a budget."""
    deadline = _current().deadline
    return None if deadline is None else deadline - time.monotonic()


def idempotency_key(method: str, path: str, who: str) -> str | None:
    """The Idempotency-Key of a write answering the current form, or None (no form key: the
    caller makes a fresh one). `who`: the patron's session, so that one form key never
    names two patrons' writes."""
    form_key = _current().form_key
    if form_key is None:
        return None
    return str(uuid.uuid5(form_key, f"{method} {path} {who}"))
