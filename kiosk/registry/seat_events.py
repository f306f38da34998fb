"""Where seat events go once the ledger has written them: the patron's e-mail notices and
the audit entries of offers, in the same transaction as the change they tell about (so a
rolled-back change tells nothing). One function, the ledger's sink; the academy's
provisioning outbox (`academy.enqueue`) is told of every change of who holds a seat."""

from __future__ import annotations

from sqlalchemy import select

from . import academy
from .ledger import SeatEvent, SeatEventKind
from .notices import enqueue
from .staff import pseudonym, record
from .store import Institution, Library, Patron, Runner


def institution_of(s: Runner, patron_id: int) -> str:
    return s.execute(select(Institution.code)
                     .join(Library, Library.institution_id == Institution.id)
                     .join(Patron, Patron.library_id == Library.id)
                     .where(Patron.id == patron_id)).scalar() or ""


# Seat events after which the patron's user on the academy's platform may have to change.
ACADEMY_EVENTS = (SeatEventKind.GRANTED, SeatEventKind.PROMOTED, SeatEventKind.ACCEPTED,
                  SeatEventKind.RELEASED, SeatEventKind.EXPIRED)


def tell(s: Runner, event: SeatEvent) -> None:
    """The ledger's sink (see ledger.SeatEvents)."""
    if event.kind in ACADEMY_EVENTS:
        academy.enqueue(s, event.patron_id, event.at)
    who = pseudonym(event.patron_id)
    if event.kind is SeatEventKind.OFFERED:
        assert event.until is not None
        until = event.until.isoformat()
        record(s, event.at, "registry", "offer_made", subject=who,
              institution=institution_of(s, event.patron_id), until=until)
        enqueue(s, event.patron_id, "offer_made", event.at, until=until)
    elif event.kind is SeatEventKind.PROMOTED:
        enqueue(s, event.patron_id, "promoted", event.at)
    elif event.kind is SeatEventKind.EXPIRED:
        record(s, event.at, event.actor, "offer_expired", where=event.where, subject=who,
              institution=institution_of(s, event.patron_id))
    elif event.kind is SeatEventKind.DECLINED:
        record(s, event.at, event.actor, "offer_declined", where=event.where, subject=who,
              institution=institution_of(s, event.patron_id))
    elif event.kind is SeatEventKind.ACCEPTED:
        record(s, event.at, event.actor, "offer_accepted", subject=who,
              institution=institution_of(s, event.patron_id))
    # GRANTED, JOINED, RELEASED: the use case tells the patron (about the course they chose,
    # or the erasure it audits); nothing more to do here yet.
