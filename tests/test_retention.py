"""Retention: what is kept only for a while goes when its time is up (a frozen clock)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from kiosk.registry.idempotency import IdempotencyKeys
from kiosk.registry.store import IdempotencyRecord


def test_idempotency_keys_are_kept_24_hours_then_purged(make_service) -> None:
    service = make_service()
    terminal = service.add_terminal("ANT-PERMEKE", "kiosk 1", actor="test")[1]
    now = datetime(2026, 12, 2, 9, 0)
    keys = IdempotencyKeys(service.store, clock=lambda: now)
    for key, age in (("old", timedelta(hours=24, seconds=1)), ("young", timedelta(hours=23))):
        now = datetime(2026, 12, 2, 9, 0) - age
        keys.begin(terminal.id, key, fingerprint="f")
    now = datetime(2026, 12, 2, 9, 0)
    assert keys.purge() == 1
    with service.store.read() as s:
        assert s.scalars(select(IdempotencyRecord.key)).all() == ["young"]
