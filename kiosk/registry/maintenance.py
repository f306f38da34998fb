"""The programme's upkeep: the maintenance message kiosks show instead of the journey, and the
programme's end date (retention counts from it). Columns of the programme row that decide no
seat, written through `ledger.set_details` without the seat lock.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select

from . import domain, ledger
from .context import RegistryContext
from .domain import Maintenance
from .staff import record
from .store import THE_PROGRAMME, Programme


class ProgrammeUpkeep:
    def __init__(self, ctx: RegistryContext):
        self.ctx = ctx

    def maintenance(self) -> Maintenance | None:
        """The message kiosks show instead of the journey, while it lasts."""
        with self.ctx.store.read() as s:
            row = s.execute(select(Programme.maintenance, Programme.maintenance_until)
                            .where(THE_PROGRAMME)).first()
        if row is None or not row[0] or row[1] is None or row[1] <= self.ctx.clock():
            return None
        return Maintenance(messages=dict(row[0]), until=row[1])

    def set_maintenance(self, messages: dict[str, str], until: datetime, actor: str,
                        where: str = "") -> None:
        clean = domain.validate_maintenance(messages, until, self.ctx.clock())
        with self.ctx.store.write() as s:
            ledger.set_details(s, maintenance=clean, maintenance_until=until)
            record(s, self.ctx.clock(), actor, "maintenance_set", where=where,
                   until=until.isoformat())

    def clear_maintenance(self, actor: str, where: str = "") -> None:
        with self.ctx.store.write() as s:
            ledger.set_details(s, maintenance=None, maintenance_until=None)
            record(s, self.ctx.clock(), actor, "maintenance_cleared", where=where)

    def set_end_date(self, ends_on: date | None, actor: str) -> None:
        with self.ctx.store.write() as s:
            ledger.set_details(s, ends_on=ends_on)
            record(s, self.ctx.clock(), actor, "programme_end_set",
                   ends_on=ends_on.isoformat() if ends_on else None)
