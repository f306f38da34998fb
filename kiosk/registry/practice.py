"""A practice registry: the demo's, or a training registry (`kiosk registry upgrade
--demo-data`), marked on its programme row (`programme.practice`) when the demo's programme is
loaded; a registry made by `kiosk registry init` is never one.

- Every page, patron and staff, carries a "Practice — not real data" band.
- Only a practice registry may be reset to its starting state (`reset`): by the coordinator in
  the console, or by `kiosk demo --reset`.
- `kiosk demo` refuses a registry that holds a real programme (`refuse_real`).

A reset removes everything people did in practice — patrons, seats, the waiting list, courses
and libraries added or changed, settings, staff accounts and sessions, notices, the audit log —
and loads the demo's programme and staff again, all in one transaction: it happens whole or not
at all. What installs the practice registry stays: its terminals (their tokens keep working)
and the member systems configured for its institutions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import ledger
from .context import RegistryContext
from .domain import RegistryError
from .seed import load_demo_data, seed, seed_staff
from .staff import record
from .store import THE_PROGRAMME, Institution, Library, MemberSystem, Programme, Terminal, empty

# An installation's own rows, kept across a reset: (model, its foreign key, what it points at)
_KEPT = ((Terminal, "library_id", Library), (MemberSystem, "institution_id", Institution))


class Practice:
    def __init__(self, ctx: RegistryContext):
        self.ctx = ctx

    def active(self) -> bool:
        """Whether this is a practice registry (False before any programme is loaded)."""
        with self.ctx.store.read() as s:
            return bool(s.scalar(select(Programme.practice).where(THE_PROGRAMME)))

    def holds_real_programme(self) -> bool:
        """A programme is loaded and it is not a practice one: `kiosk demo` must not run."""
        with self.ctx.store.read() as s:
            practice = s.scalar(select(Programme.practice).where(THE_PROGRAMME))
        return practice is False

    def reset(self, actor: str, where: str = "", data: dict[str, Any] | None = None) -> None:
        """Back to the demo's starting state (see the module's docstring); refused with
        `not_practice` on any other registry, which is left untouched."""
        data = data if data is not None else load_demo_data()
        now = self.ctx.clock()
        with self.ctx.store.write() as s:
            ledger.lock(s, clock=self.ctx.clock)  # no claim runs meanwhile
            if not s.scalar(select(Programme.practice).where(THE_PROGRAMME)):
                raise RegistryError("not_practice")
            kept = [_rows_by_code(s, model, key, target) for model, key, target in _KEPT]
            empty(s)
            # seed() and seed_staff() join this transaction (Store.write inside a write).
            seed(self.ctx.store, data, now.date())
            seed_staff(self.ctx.store, data, now)
            for (model, key, target), rows in zip(_KEPT, kept, strict=True):
                _restore(s, model, key, target, rows)
            record(s, now, actor, "practice_reset", where=where)


def _rows_by_code(s: Session, model: Any, key: str, target: Any) -> list[dict[str, Any]]:
    """Each row of `model` as its column values, its foreign key given as the target's code
    (the target's row is made again under a new id)."""
    codes: dict[int, str] = {row.id: row.code for row in s.execute(select(target.id, target.code))}
    rows = []
    for row in s.execute(select(model)).scalars():
        values = {c.key: getattr(row, c.key) for c in model.__table__.columns}
        values[key] = codes.get(values[key])
        rows.append(values)
    s.expunge_all()
    return rows


def _restore(s: Session, model: Any, key: str, target: Any, rows: list[dict[str, Any]]) -> None:
    """The kept rows again, pointing at the new row of the same code; one whose library or
    institution the demo no longer has is not kept."""
    ids: dict[str, int] = {row.code: row.id for row in s.execute(select(target.code, target.id))}
    for values in rows:
        if values[key] in ids:
            s.add(model(**{**values, key: ids[values[key]]}))
    s.flush()
