"""Each institution's closed days: public holidays and one-off closures on what would be an
opening weekday. An offer's hold counts only the days the patron's libraries really open.

`offer_ends` is what a promotion asks (under the programme lock, Core statements only, so
it runs on the claim's Connection too); `Closures` is the coordinator's use case: replace an
institution's list, audited like the other settings ("settings_changed", part
"closed_days", the days before and after). New closed days count for offers made from then
on; an offer already made keeps its end, as with a change of opening days.

The seat ledger reads this module (`offer_ends`), and the registry's context
(`context.RegistryContext`) takes the ledger: so `Closures` names what it uses of the context
(`ClosuresContext`) instead of importing it, and this module stays below the ledger.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from . import promotion
from .days import belgian_date, parse_day
from .domain import RegistryError
from .staff import record
from .store import ClosedDay, Institution, Runner, Store

# A year of closures at most in one list: enough for every holiday, and a bound on the form.
CLOSED_DAYS_MAX = 366


def closed_days(s: Runner, institution_ids: Iterable[int],
                since: date) -> dict[int, frozenset[date]]:
    """The closed days after `since` of each of these institutions (absent: none)."""
    ids = set(institution_ids)
    found: dict[int, set[date]] = {}
    if ids:
        for institution_id, day in s.execute(
                select(ClosedDay.institution_id, ClosedDay.day)
                .where(ClosedDay.institution_id.in_(ids), ClosedDay.day > since)):
            found.setdefault(institution_id, set()).add(day)
    return {i: frozenset(days) for i, days in found.items()}


def offer_ends(s: Runner, institution_ids: Iterable[int], offered_at: datetime,
               n: int) -> dict[int, datetime]:
    """When an offer made at `offered_at` ends for a patron of each institution: the `n`th
    opening day of that institution, its own weekdays less its own closed days."""
    ids = set(institution_ids)
    if not ids:
        return {}
    weekdays: dict[int, list[int] | None] = {
        i: days for i, days in s.execute(select(Institution.id, Institution.opening_days)
                                         .where(Institution.id.in_(ids)))}
    closed = closed_days(s, ids, belgian_date(offered_at))
    return {i: promotion.offer_expiry(offered_at, weekdays.get(i), n,
                                      closed.get(i, frozenset())) for i in ids}


def parse_closed_days(values: Iterable[str | date] | str) -> list[date]:
    """Days as the settings page sends them (a list, or one text with a day per line or
    between commas), in any of the forms `parse_day` reads; sorted, each once. Raises
    RegistryError("invalid", {"closed_days": …}) naming the first problem."""
    items = re.split(r"[\s,;]+", values) if isinstance(values, str) else list(values)
    days: set[date] = set()
    for item in items:
        if isinstance(item, date):
            days.add(item)
            continue
        if not str(item).strip():
            continue
        day = parse_day(str(item))
        if day is None:
            raise RegistryError("invalid", {"closed_days": "date_invalid"})
        days.add(day)
    if len(days) > CLOSED_DAYS_MAX:
        raise RegistryError("invalid", {"closed_days": "too_long"})
    return sorted(days)


class ClosuresContext(Protocol):
    """What `Closures` uses of the registry's context: the store, the clock, and the seat
    lock (taken, not read: offers read closed days under it)."""

    @property
    def store(self) -> Store: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def seats(self, s: Session) -> object: ...


class Closures:
    def __init__(self, ctx: ClosuresContext):
        self.ctx = ctx
        self.store = ctx.store

    def closed_days(self, since: date | None = None) -> dict[str, list[date]]:
        """Every institution's closed days (from `since` on, if given), by institution code;
        an institution without any is absent."""
        with self.store.read() as s:
            stmt = (select(Institution.code, ClosedDay.day)
                    .join(Institution, Institution.id == ClosedDay.institution_id)
                    .order_by(Institution.code, ClosedDay.day))
            if since is not None:
                stmt = stmt.where(ClosedDay.day >= since)
            found: dict[str, list[date]] = {}
            for code, day in s.execute(stmt):
                found.setdefault(code, []).append(day)
            return found

    def upcoming(self) -> dict[str, list[date]]:
        """The closed days from today (Belgian date) on: what the settings page shows."""
        return self.closed_days(since=belgian_date(self.ctx.clock()))

    def set_closed_days(self, code: str, days: Iterable[str | date] | str, *, actor: str,
                        where: str = "") -> bool:
        """Replace an institution's closed days with `days`; answers whether anything
        changed. Field codes: `closed_days_<CODE>`, `institution_<CODE>` (as the other
        per-institution settings)."""
        clean = self._parse({code: days})[code]
        with self.store.write() as s:
            # Under the lock a promotion reads them with: an offer sees the old list or the new.
            self.ctx.seats(s)
            return self._replace(s, code, clean, None, actor, where)

    def set_upcoming(self, lists: Mapping[str, Iterable[str | date] | str], *, actor: str,
                     where: str = "") -> int:
        """The settings page's save: each institution's closed days from today on become
        its list; the past ones are history and stay. Every list is checked before any is
        saved, in one transaction; answers how many institutions changed."""
        clean = self._parse(lists)
        today = belgian_date(self.ctx.clock())
        with self.store.write() as s:
            self.ctx.seats(s)
            return sum(self._replace(s, code, days, today, actor, where)
                       for code, days in clean.items())

    @staticmethod
    def _parse(lists: Mapping[str, Iterable[str | date] | str]) -> dict[str, list[date]]:
        clean: dict[str, list[date]] = {}
        errors: dict[str, str] = {}
        for code, days in lists.items():
            try:
                clean[code] = parse_closed_days(days)
            except RegistryError as refusal:
                errors[f"closed_days_{code}"] = refusal.fields["closed_days"]
        if errors:
            raise RegistryError("invalid", errors)
        return clean

    def _replace(self, s: Session, code: str, days: list[date], keep_before: date | None,
                 actor: str, where: str) -> bool:
        """Caller holds the lock. `keep_before`: days before it stay whatever `days` says."""
        institution_id = s.scalar(select(Institution.id).where(Institution.code == code))
        if institution_id is None:
            raise RegistryError("invalid", {f"institution_{code}": "institution_unknown"})
        before = list(s.scalars(select(ClosedDay.day)
                                .where(ClosedDay.institution_id == institution_id)
                                .order_by(ClosedDay.day)).all())
        kept = [day for day in before if keep_before is not None and day < keep_before]
        clean = sorted(set(kept) | set(days))
        if before == clean:
            return False
        s.execute(delete(ClosedDay).where(ClosedDay.institution_id == institution_id))
        if clean:
            s.execute(insert(ClosedDay), [{"institution_id": institution_id, "day": day}
                                          for day in clean])
        record(s, self.ctx.clock(), actor, "settings_changed", where=where,
               institution=code, part="closed_days",
               before={"closed_days": [d.isoformat() for d in before]},
               after={"closed_days": [d.isoformat() for d in clean]})
        return True
