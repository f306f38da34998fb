"""How a patron leaves the registry: their seat or waiting place freed, then their row removed,
in the caller's transaction. The patron's own erasure, the desk's, retention's and that of an
expired pending account all go through `erase_for` (a merge removes the other account its own
way: its place may be handed over, not freed).
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from . import academy, seat_events
from .context import RegistryContext
from .domain import Standing
from .staff import pseudonym, record
from .store import Patron


class Erasure:
    def __init__(self, ctx: RegistryContext):
        self.ctx = ctx

    def erase_for(self, s: Session, patron_id: int, actor: str, where: str = "",
                  **detail: object) -> None:
        """Free the seat (the next in line moves up in this same transaction), then remove
        the patron row; sessions and courses go with it (ON DELETE CASCADE). The audit
        entry keeps its meaning with a pseudonym, never a name, card number or e-mail."""
        institution = seat_events.institution_of(s, patron_id)
        had = self.ctx.release(s, patron_id) or Standing.NONE
        s.execute(delete(Patron).where(Patron.id == patron_id))
        # Erasure reaches the academy: its user is deleted (held a seat or not).
        academy.enqueue(s, patron_id, self.ctx.clock())
        record(s, self.ctx.clock(), actor, "patron_erased", where=where,
               subject=pseudonym(patron_id), institution=institution, had=had.value,
               **detail)
