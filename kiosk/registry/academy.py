"""The academy's outbox: "this patron changed" rows (`AcademyChange`) written in the
transaction of the change, and what the platform should hold for a patron, read at send time.

Level-triggered: a row names a patron, not a state. The sender (`academy_sender.py`) reads the
patron's state when it sends and makes the platform match it, so one sync satisfies every row
of that patron that it saw, order cannot be got wrong, and sending twice changes nothing (the
platform's user is found by our `external_id`). A rolled-back change leaves no row; a crash
after the commit leaves the row until it is done.

What the platform holds for a patron (`Account`): a user with `externalId` (ours, stable),
`userName` (`academy_user_name`), their names, their e-mail (if any), their language,
`active` while they hold a seat (seated; an offer is not taken yet), and their chosen courses
as `entitlements` (type "course", value the course's slug). A patron without a seat is
deactivated with no courses; an erased patron's user is deleted.

The link is off (nothing queued) unless the registry has an academy (ACADEMY_SCIM_URL): see
`enable`, as for e-mail notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from .context import RegistryContext
from .domain import Standing
from .prepared import Prepared
from .staff import record
from .store import (
    AcademyChange,
    Course,
    EnrolmentRow,
    Patron,
    Place,
    Runner,
    Store,
    at_commit,
)

# Attempts before a row is given up when the platform refuses the user itself (a 4xx);
# a platform that cannot be reached never gives a row up (see academy_sender).
MAX_ATTEMPTS = 8
KEEP_DONE = timedelta(days=30)
# Outcomes that leave the patron's user active with their courses on the platform.
READY = ("created", "reactivated", "updated", "unchanged")
# The engine execution option that says "this registry has an academy" (see notices).
_OPTION = "kiosk_academy"


def enable(store: Store, on: bool = True) -> None:
    """Turn queuing on for this registry (ACADEMY_SCIM_URL set) or off (not even queued)."""
    store.engine.update_execution_options(**{_OPTION: bool(on)})


def enabled(s: Runner) -> bool:
    conn = s.connection() if isinstance(s, Session) else s
    return bool(conn.get_execution_options().get(_OPTION, False))


def external_id(patron_id: int) -> str:
    """Our id for the patron on the platform: stable for the account's life, no personal data."""
    return f"kiosk-{patron_id}"


def academy_user_name(card_number: str, library_card: str | None) -> str:
    """What the patron logs in with at the academy (the one place that decides it): the
    library card they have (a member's), else the number the kiosk gave them — what the
    receipt tells them to log in with."""
    return library_card or card_number


def enqueue(s: Runner, patron_id: int, now: datetime) -> None:
    """Queue "this patron changed" in the caller's transaction (it commits or rolls back
    with the change). Does nothing when the academy link is off. `s` may be a Connection
    (the claim's hot path)."""
    if not enabled(s):
        return
    # Sent with the COMMIT: a seat granted by a claim writes it while the lock is held.
    at_commit(s, _CHANGE, {"for_patron": patron_id, "for_external_id": external_id(patron_id),
                           "now": now})


_CHANGE = Prepared(insert(AcademyChange).values(
    patron_id=bindparam("for_patron"), external_id=bindparam("for_external_id"),
    created_at=bindparam("now"), attempts=0, next_attempt_at=bindparam("now"), done_at=None,
    outcome="", last_error=""))


@dataclass(frozen=True)
class Account:
    """What the platform should hold for one patron."""

    external_id: str
    user_name: str
    given_name: str
    family_name: str
    email: str | None
    language: str
    active: bool
    courses: tuple[str, ...]  # course slugs, sorted; empty when not active


def account_of(s: Runner, patron_id: int) -> Account | None:
    """The patron's account as the platform should hold it now; None once they are erased
    (their user is to be deleted). A read of columns (the ledger's rule allows it)."""
    patron = s.execute(select(Patron.card_number, Patron.first_name, Patron.last_name,
                              Patron.email, Patron.language, Patron.member_barcode)
                       .where(Patron.id == patron_id)).first()
    if patron is None:
        return None
    status = s.scalar(select(Place.status).where(Place.patron_id == patron_id))
    active = status == Standing.SEATED.value
    courses: tuple[str, ...] = ()
    if active:
        courses = tuple(sorted(s.scalars(
            select(Course.slug).join(EnrolmentRow, EnrolmentRow.course_id == Course.id)
            .where(EnrolmentRow.patron_id == patron_id))))
    return Account(external_id=external_id(patron_id),
                   user_name=academy_user_name(patron.card_number, patron.member_barcode),
                   given_name=patron.first_name, family_name=patron.last_name,
                   email=(patron.email or "").strip() or None, language=patron.language,
                   active=active, courses=courses)


def seat_holders(s: Runner) -> list[int]:
    """The patrons who should be active on the platform (seated), in id order."""
    return list(s.scalars(select(Place.patron_id)
                          .where(Place.status == Standing.SEATED.value)
                          .order_by(Place.patron_id)))


def _pending() -> ColumnElement[bool]:
    return and_(AcademyChange.done_at.is_(None), AcademyChange.attempts < MAX_ATTEMPTS)


def _given_up() -> ColumnElement[bool]:
    return and_(AcademyChange.done_at.is_(None), AcademyChange.attempts >= MAX_ATTEMPTS)


def backlog(s: Runner) -> tuple[int, int]:
    """(waiting to be sent, given up): the dashboard's backlog and given-up figures, in one
    statement over the changes not done (the index on done_at), for /metrics."""
    row = s.execute(select(func.count().filter(AcademyChange.attempts < MAX_ATTEMPTS),
                           func.count().filter(AcademyChange.attempts >= MAX_ATTEMPTS))
                    .where(AcademyChange.done_at.is_(None))).one()
    return int(row[0]), int(row[1])


def state_of(s: Runner, patron_id: int, standing: Standing) -> str:
    """What "My courses" says about the academy: "" (no academy link, or no seat), "ready"
    (the platform was last made to hold their seat and nothing is waiting) or "pending"
    (being set up)."""
    if not enabled(s) or standing is not Standing.SEATED:
        return ""
    rows = s.execute(select(AcademyChange.done_at, AcademyChange.outcome)
                     .where(AcademyChange.patron_id == patron_id)
                     .order_by(AcademyChange.id.desc()).limit(1)).first()
    waiting = s.scalar(select(func.count()).where(AcademyChange.patron_id == patron_id,
                                                  AcademyChange.done_at.is_(None))) or 0
    if rows is None or waiting or rows.outcome not in READY:
        return "pending"
    return "ready"


@dataclass(frozen=True)
class LinkState:
    """The academy link as the coordinator's dashboard shows it: counts and kinds of error."""

    enabled: bool
    backlog: int  # changes waiting to be sent
    given_up: int
    reasons: list[tuple[str, int]]  # the given-up ones by their last error (no personal data)
    last_success: datetime | None
    last_error: str  # the latest failure among the waiting changes ("" if none failed)


class Academy:
    """The academy's outbox seen from the registry service: on/off, the dashboard's figures,
    a fresh start for the given-up changes, retention."""

    def __init__(self, ctx: RegistryContext):
        self.ctx = ctx

    @property
    def enabled(self) -> bool:
        return bool(self.ctx.store.engine.get_execution_options().get(_OPTION, False))

    @enabled.setter
    def enabled(self, on: bool) -> None:
        enable(self.ctx.store, on)

    def state(self) -> LinkState:
        with self.ctx.store.read() as s:
            backlog = s.scalar(select(func.count()).where(_pending())) or 0
            given_up = s.scalar(select(func.count()).where(_given_up())) or 0
            reasons = [(error or "?", n) for error, n in s.execute(
                select(AcademyChange.last_error, func.count()).where(_given_up())
                .group_by(AcademyChange.last_error)
                .order_by(func.count().desc(), AcademyChange.last_error))]
            last = s.scalar(select(func.max(AcademyChange.done_at)))
            error = s.scalar(select(AcademyChange.last_error)
                             .where(_pending(), AcademyChange.last_error != "")
                             .order_by(AcademyChange.next_attempt_at.desc()).limit(1)) or ""
        return LinkState(enabled=self.enabled, backlog=backlog, given_up=given_up,
                         reasons=reasons, last_success=last, last_error=error)

    def send_again(self, *, actor: str, where: str = "") -> int:
        """Give every given-up change a fresh start (the coordinator had the platform fixed);
        answers how many."""
        now = self.ctx.clock()
        with self.ctx.store.write() as s:
            result = s.connection().execute(
                update(AcademyChange).where(_given_up())
                .values(attempts=0, next_attempt_at=now, last_error=""))
            count = result.rowcount or 0
            if count:
                record(s, now, actor, "academy_resent", where=where, count=count)
            return count

    def purge(self) -> int:
        """Retention: done changes after KEEP_DONE, except each patron's last one (it says
        "ready at the academy")."""
        cutoff = self.ctx.clock() - KEEP_DONE
        with self.ctx.store.write() as s:
            latest = select(func.max(AcademyChange.id)).group_by(AcademyChange.patron_id)
            result = s.connection().execute(delete(AcademyChange).where(
                AcademyChange.done_at < cutoff, AcademyChange.id.not_in(latest)))
            return result.rowcount or 0
