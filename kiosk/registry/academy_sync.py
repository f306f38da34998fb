"""Reconciling the registry with the academy's platform (`kiosk registry academy sync`), and
the CSV export of the same content for a platform without SCIM.

The registry is right: every seat holder has an active user with their courses, every other
patron known to the platform is deactivated, and a user of ours whose patron is gone (erased)
is deleted. Users without our externalId prefix are not ours and are left alone.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import insert

from .academy import Account, account_of, external_id, seat_holders
from .academy_link import OURS, AcademyLink, plan
from .staff import pseudonym, record
from .store import AcademyChange, Store

if TYPE_CHECKING:
    from scim2_models import User


@dataclass
class SyncReport:
    counts: Counter[str] = field(default_factory=Counter)  # outcome → patrons
    dry_run: bool = False

    def summary(self) -> str:
        order = ("created", "reactivated", "updated", "deactivated", "deleted", "unchanged")
        done = ", ".join(f"{self.counts[k]} {k}" for k in order)
        return (f"{'Would change' if self.dry_run else 'Changed'}: {done}. "
                f"Seat holders: {self.counts['holders']}, users of ours on the platform "
                f"before: {self.counts['platform']}.")


def _patron_id(ext_id: str) -> int | None:
    rest = ext_id[len(OURS):] if ext_id.startswith(OURS) else ""
    return int(rest) if rest.isdigit() else None


def reconcile(store: Store, link: AcademyLink, now: datetime, *, dry_run: bool = False,
              actor: str = "cli") -> SyncReport:
    """List both sides, fix every difference (unless `dry_run`), answer the counts. Each fix
    is audited by pseudonym and leaves a done change (so "My courses" says ready)."""
    report = SyncReport(dry_run=dry_run)
    platform: dict[str, list[User]] = {}
    for user in link.users():
        if user.external_id and _patron_id(user.external_id) is not None:
            platform.setdefault(user.external_id, []).append(user)
    report.counts["platform"] = len(platform)
    with store.read() as s:
        holders = seat_holders(s)
        wanted = set(holders) | {pid for ext in platform
                                 if (pid := _patron_id(ext)) is not None}
        accounts: dict[int, Account | None] = {pid: account_of(s, pid)
                                               for pid in sorted(wanted)}
    report.counts["holders"] = len(holders)
    for patron_id, account in accounts.items():
        users = platform.get(external_id(patron_id), [])
        outcome = plan(account, users[0] if users else None)
        if outcome == "unchanged" and len(users) > 1:
            outcome = "updated"  # a duplicate to remove
        report.counts[outcome] += 1
        if dry_run or outcome == "unchanged":
            continue
        link.apply(account, users, outcome)
        with store.write() as s:
            s.execute(insert(AcademyChange).values(
                patron_id=patron_id, external_id=external_id(patron_id), created_at=now,
                attempts=0, next_attempt_at=now, done_at=now, outcome=outcome,
                last_error=""))
            record(s, now, actor, "academy_user_changed", subject=pseudonym(patron_id),
                   change=outcome, why="sync")
    if not dry_run:
        with store.write() as s:
            record(s, now, actor, "academy_synced", counts=dict(sorted(report.counts.items())))
    return report


CSV_FIELDS = ("external_id", "user_name", "given_name", "family_name", "email", "language",
              "active", "courses")


def export_csv(store: Store, out: TextIO, *, now: Callable[[], datetime],
               actor: str = "cli") -> int:
    """The seat holders as the platform would get them, one line each (courses separated by
    spaces); answers how many. The export is audited (it carries personal data)."""
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    with store.read() as s:
        accounts = [a for pid in seat_holders(s) if (a := account_of(s, pid)) is not None]
    for a in accounts:
        writer.writerow((a.external_id, a.user_name, a.given_name, a.family_name,
                         a.email or "", a.language, "true" if a.active else "false",
                         " ".join(a.courses)))
    with store.write() as s:
        record(s, now(), actor, "academy_exported", count=len(accounts))
    return len(accounts)
