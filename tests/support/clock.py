"""A frozen clock the test moves by hand (naive UTC, as the registry keeps time): what a
service is given as its `clock`."""

from __future__ import annotations

from datetime import datetime, timedelta


class Clock:
    def __init__(self, at: datetime):
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
