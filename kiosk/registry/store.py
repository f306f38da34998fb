"""Tables and transactions of the registry (SQLAlchemy 2; SQLite embedded, PostgreSQL central).

The seat count is stored in the single `programme` row; the lock on it, and every read and
write of seats, is the seat ledger's (`ledger.py`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Connection,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Insert,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from .domain import DEFAULT_PENDING_DAYS, RegistryError
from .prepared import (
    Prepared,
    begin_later,
    commit_with,
    keep_prepared,
    send_begin,
    send_pending,
)

# What Core statements run on: a use case's Session, or the Connection under it.
Runner = Session | Connection
# The write transaction of the current thread or task, if one is open.
_ambient: ContextVar[Session | None] = ContextVar("kiosk_registry_write", default=None)
# Where a write transaction's Session keeps what `at_commit` sends with the COMMIT.
_AT_COMMIT = "kiosk_at_commit"


class Base(DeclarativeBase):
    # Named constraints, so migrations can refer to them on every database.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Institution(Base):
    __tablename__ = "institutions"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    card_prefix: Mapped[str] = mapped_column(String(4), unique=True)
    names: Mapped[dict] = mapped_column(JSON)  # {"nl": …, "fr": …, "en": …}
    # (No CHECK constraints on this table: libraries refer to it, and SQLite can only add one
    # by copying the table. The service validates these values.)
    # "open": self-registered accounts are active at once; "verify": pending until a librarian
    # has seen an identity document, erased after `pending_days`.
    verification: Mapped[str] = mapped_column(String(10), default="open")
    pending_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_PENDING_DAYS)
    # ISO weekdays (1 = Monday) the libraries are open: offers are held for opening days.
    opening_days: Mapped[list] = mapped_column(JSON, nullable=True,
                                               default=lambda: [1, 2, 3, 4, 5, 6])
    # Fair share: the most seats this institution's patrons may hold (None: no quota).
    seat_quota: Mapped[int | None] = mapped_column(Integer)
    # Retired by the coordinator: no longer offered at the kiosks, its patrons stay.
    retired: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Its sign-up (`signup_rules`): phone and postcode "not_asked", "optional" or "required";
    # the minimum age, None for the programme's (the registry's MIN_AGE setting).
    sign_up_phone: Mapped[str] = mapped_column(String(10), default="optional",
                                               server_default="optional")
    sign_up_postcode: Mapped[str] = mapped_column(String(10), default="required",
                                                  server_default="required")
    min_age: Mapped[int | None] = mapped_column(Integer)
    # Public holidays and other closures on its opening weekdays: `ClosedDay`.
    libraries: Mapped[list[Library]] = relationship(
        back_populates="institution", order_by="Library.name"
    )


class ClosedDay(Base):
    """A day an institution's libraries stay closed although it is one of their opening
    weekdays (a public holiday, a one-off closure): an offer's hold does not count it."""

    __tablename__ = "closed_days"
    institution_id: Mapped[int] = mapped_column(
        ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)


class Library(Base):
    __tablename__ = "libraries"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    # Retired by the coordinator: no longer offered at the kiosks, its patrons stay.
    retired: Mapped[bool] = mapped_column(default=False, server_default=false())
    institution: Mapped[Institution] = relationship(back_populates="libraries")


class Category(Base):
    __tablename__ = "categories"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    names: Mapped[dict] = mapped_column(JSON)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Course(Base):
    __tablename__ = "courses"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    hours: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[int] = mapped_column(Integer, default=0)
    featured_from: Mapped[date | None] = mapped_column(Date)
    featured_until: Mapped[date | None] = mapped_column(Date)
    retired: Mapped[bool] = mapped_column(default=False)
    texts: Mapped[list[CourseText]] = relationship(lazy="selectin")


class CourseText(Base):
    __tablename__ = "course_texts"
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), primary_key=True)
    lang: Mapped[str] = mapped_column(String(2), primary_key=True)
    title: Mapped[str] = mapped_column(String(160))
    summary: Mapped[str] = mapped_column(Text)


class Patron(Base):
    __tablename__ = "patrons"
    __table_args__ = (
        # A member of a library is known by their institution and library card: one account.
        Index("ix_patrons_member", "member_institution_id", "member_barcode", unique=True),
        # An id is never given again, not even an erased patron's: the audit log's pseudonym
        # (patron#id) and the academy's external id keep meaning one person. PostgreSQL's
        # sequence never reuses; SQLite needs AUTOINCREMENT (migration 0008).
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    card_number: Mapped[str] = mapped_column(String(13), unique=True)
    # None only for a member who signs in with their library card and gave their library no
    # e-mail address; a member has no date of birth here either (their library checked it).
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    first_name: Mapped[str] = mapped_column(String(60))
    last_name: Mapped[str] = mapped_column(String(60))
    birth_date: Mapped[date | None] = mapped_column(Date)
    postcode: Mapped[str] = mapped_column(String(4))
    phone: Mapped[str] = mapped_column(String(20), default="")
    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id"))
    language: Mapped[str] = mapped_column(String(2))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    # Last log-in (or sign-up): two years without one and the account is erased (retention).
    last_active_at: Mapped[datetime | None] = mapped_column(DateTime)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    # Set while a self-registered account waits for an identity check ("verify" policy),
    # with the days it was given then: a later change of the institution's days does not
    # move the last day it was told.
    pending_since: Mapped[datetime | None] = mapped_column(DateTime)
    pending_days: Mapped[int | None] = mapped_column(Integer)
    identity_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    identity_checked_by: Mapped[str] = mapped_column(String(80), default="")
    # A printed one-time password: the patron chooses their own at the next log-in.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    # "first last" without accents or case, for the desk's search by name + date of birth.
    search_name: Mapped[str] = mapped_column(String(130), default="", index=True)
    # A member of one of the programme's libraries who signs in with their library card and
    # PIN, checked by their institution's member system (`MemberSystem`): no password of
    # ours (password_hash is empty), and `card_number` is only the registry's own reference.
    member_institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"))
    member_barcode: Mapped[str | None] = mapped_column(String(40))
    library: Mapped[Library] = relationship()

    @property
    def is_member(self) -> bool:
        return self.member_barcode is not None


class MemberSystem(Base):
    """How the registry reaches an institution's member system over SIP2 (see
    `member_system.MemberSystemConfig`). The SIP password is not here: only the path of the
    file that holds it, on the registry's host."""

    __tablename__ = "member_systems"
    institution_id: Mapped[int] = mapped_column(
        ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    tls: Mapped[bool] = mapped_column(default=False)
    login_user: Mapped[str] = mapped_column(String(100), default="")
    password_file: Mapped[str] = mapped_column(String(500), default="")
    location_code: Mapped[str] = mapped_column(String(100), default="")
    sip_institution: Mapped[str] = mapped_column(String(100), default="")
    timeout_ms: Mapped[int] = mapped_column(Integer, default=5000)  # the whole check
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class PatronSession(Base):
    """A patron's log-in at a terminal; revoked at log-out and idle reset."""

    __tablename__ = "patron_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class Programme(Base):
    """The one row where the seat count lives, and so where the lock is taken."""

    __tablename__ = "programme"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("cap >= 0", name="cap_non_negative"),
        CheckConstraint("seats_taken >= 0 AND over_cap >= 0 AND waiting >= 0",
                        name="counts_non_negative"),
        # Backstop: no code path can seat more than the cap, except seats kept above a lowered cap.
        CheckConstraint("seats_taken <= cap + over_cap", name="never_oversold"),
        CheckConstraint("promotion IN ('grant', 'offer')", name="promotion_known"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    cap: Mapped[int] = mapped_column(Integer)
    seats_taken: Mapped[int] = mapped_column(Integer, default=0)
    over_cap: Mapped[int] = mapped_column(Integer, default=0)
    next_queue_no: Mapped[int] = mapped_column(Integer, default=1)
    # How many wait, kept beside the seat count: a newcomer's position is read here under the
    # lock in O(1) instead of counting the line.
    waiting: Mapped[int] = mapped_column(Integer, default=0)
    academy_url: Mapped[str] = mapped_column(String(300), default="")
    ends_on: Mapped[date | None] = mapped_column(Date)  # two years later all accounts go
    # A message every kiosk shows instead of the journey until `maintenance_until` (UTC).
    maintenance: Mapped[dict | None] = mapped_column(JSON)
    maintenance_until: Mapped[datetime | None] = mapped_column(DateTime)
    # "grant": a freed seat goes to the first in line at once; "offer": they get an offer that
    # holds the seat for `offer_days` opening days of their institution.
    promotion: Mapped[str] = mapped_column(String(10), default="grant")
    offer_days: Mapped[int] = mapped_column(Integer, default=3)
    fair_share: Mapped[bool] = mapped_column(default=False)
    # A practice registry (the demo's, a training one): every page says so, and only it may be
    # reset to its starting state (kiosk.registry.practice).
    practice: Mapped[bool] = mapped_column(default=False)


# The programme is one row; `THE_PROGRAMME` selects it (the CHECK `single_row` holds it to 1).
PROGRAMME_ID = 1
THE_PROGRAMME = Programme.id == PROGRAMME_ID


class Place(Base):
    """A patron's one outcome in the programme: a seat or a place in the waiting line.

    The primary key on patron_id is the database's "one outcome per patron".
    """

    __tablename__ = "places"
    __table_args__ = (
        CheckConstraint("status IN ('seated', 'waiting', 'offered')", name="status_known"),
        CheckConstraint(
            "(status = 'waiting') = (queue_no IS NOT NULL)", name="queue_only_when_waiting"
        ),
        CheckConstraint(
            "(status = 'offered') = (offer_expires_at IS NOT NULL)", name="expiry_only_offered"
        ),
        Index("ix_places_waiting", "status", "queue_no"),
    )
    patron_id: Mapped[int] = mapped_column(
        ForeignKey("patrons.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(10))
    queue_no: Mapped[int | None] = mapped_column(Integer, unique=True)
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    seated_at: Mapped[datetime | None] = mapped_column(DateTime)
    # An offered place holds a seat (it is counted in seats_taken) until this moment (UTC).
    offer_expires_at: Mapped[datetime | None] = mapped_column(DateTime)


class EnrolmentRow(Base):
    """A course chosen by a patron; active while they hold a seat, pending while they wait."""

    __tablename__ = "enrolments"
    __table_args__ = (UniqueConstraint("patron_id", "course_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    course: Mapped[Course] = relationship()


class AuditEntry(Base):
    """Who did what, when, from which terminal or desk."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    terminal: Mapped[str] = mapped_column(String(80), default="")
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    # The patron acted on, as a pseudonym (patron#id), and the institution concerned: the
    # audit page filters on both; a librarian sees their own institution's entries.
    subject: Mapped[str] = mapped_column(String(40), default="")
    institution: Mapped[str] = mapped_column(String(12), default="")


class Staff(Base):
    """A librarian, coordinator or IT admin; logs in on the staff pages, never as a patron."""

    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint("role IN ('librarian', 'coordinator', 'it_admin')", name="role_known"),
        CheckConstraint("role != 'librarian' OR institution_id IS NOT NULL",
                        name="librarian_has_institution"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(12))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"))
    library_id: Mapped[int | None] = mapped_column(ForeignKey("libraries.id"))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    institution: Mapped[Institution | None] = relationship()
    library: Mapped[Library | None] = relationship()


class StaffSession(Base):
    """A staff log-in at a desk or a kiosk (take-over); revoked at log-out."""

    __tablename__ = "staff_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    place: Mapped[str] = mapped_column(String(80), default="")  # the desk or terminal


class Notice(Base):
    """An e-mail to a patron, written in their language, waiting to be sent (the outbox).

    Written in the transaction of the action it tells about; sent later by a worker, so a
    mail server that is down never blocks the patron. Gone with the patron (erasure)."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_due", "sent_at", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int | None] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    language: Mapped[str] = mapped_column(String(2))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(String(200), default="")
    # A notice about an offer is only true until the offer ends (naive UTC): never sent later.
    not_after: Mapped[datetime | None] = mapped_column(DateTime)
    # Set instead of sending when what it tells is no longer so (the offer ended, was taken
    # or declined first): neither sent nor failed, and not tried again.
    obsolete_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The one-click unsubscribe address of a notice the patron asked for (new courses):
    # sent as its List-Unsubscribe header (RFC 8058); empty for every other notice.
    unsubscribe_url: Mapped[str] = mapped_column(String(500), default="", server_default="")


class AlertSubscription(Base):
    """A patron asked to hear by e-mail of new courses in one category (kiosk.registry.alerts),
    with its own consent, given at `consented_at`. Gone with the patron (erasure)."""

    __tablename__ = "alert_subscriptions"
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"),
                                           primary_key=True)
    category_code: Mapped[str] = mapped_column(
        ForeignKey("categories.code", ondelete="CASCADE"), primary_key=True)
    consented_at: Mapped[datetime] = mapped_column(DateTime)


class CoursePublication(Base):
    """A course was published (added, back from retirement, made module of the month): its
    subscribers are told once it has settled (`kiosk registry purge`, kiosk.registry.alerts),
    all the courses of a batch in one message; `told_at` set then."""

    __tablename__ = "course_publications"
    __table_args__ = (Index("ix_course_publications_due", "told_at", "published_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    published_at: Mapped[datetime] = mapped_column(DateTime)
    told_at: Mapped[datetime | None] = mapped_column(DateTime)


class AlertSent(Base):
    """A course a patron was told about: never the same course twice to the same patron."""

    __tablename__ = "alerts_sent"
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"),
                                           primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"),
                                           primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime)


class DuplicateFlag(Base):
    """Two accounts with the same name and date of birth, for staff to merge or dismiss."""

    __tablename__ = "duplicate_flags"
    __table_args__ = (UniqueConstraint("patron_id", "other_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"))
    other_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_by: Mapped[str] = mapped_column(String(80), default="")
    resolution: Mapped[str] = mapped_column(String(10), default="")  # merged / dismissed


class Terminal(Base):
    """A library PC allowed to call the registry API with a bearer token (stored hashed)."""

    __tablename__ = "terminals"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    version: Mapped[str] = mapped_column(String(40), default="")
    library: Mapped[Library] = relationship()


class IdempotencyRecord(Base):
    """The first answer to a keyed write, replayed for a retry with the same key and body."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("terminal_id", "key"),
        CheckConstraint("state IN ('running', 'done')", name="state_known"),
        Index("ix_idempotency_created", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


PING_AFTER_IDLE = 5.0  # seconds
# A write waiting for the programme row (PostgreSQL) queues for at most two locks in turn —
# the row's tuple lock behind the other waiters, then the transaction holding the row — and
# lock_timeout bounds each wait, not their sum: so whoever holds the row (a long transaction,
# an operator, a stuck vacuum), every waiter answers "busy" within 2 × LOCK_TIMEOUT_MS, under
# the 3 s the terminals are promised, whatever its place in the queue.
LOCK_TIMEOUT_MS = 1200
# Connections each registry process keeps (PostgreSQL). A request holds at most two at once:
# a keyed API call runs its use case inside the write that records its key, and a use case's
# `read()` takes a connection of its own. A gunicorn worker of kiosk-registry.service runs 2
# request threads (4 connections) and its mail and academy senders (one each): 6 at most.
# 4 stay open, for the steady load; the overflow, opened only in a burst and closed when
# returned, covers the rest with 2 to spare. `kiosk registry doctor` adds them up over the
# workers against max_connections, and warns when a worker's threads need more.
POOL_SIZE = 4
MAX_OVERFLOW = 4
# How long a request waits for a pooled connection (seconds). The pool is sized so that none
# waits in normal running (above): a wait means trouble (a connection leak, a stuck request
# holding two), and then "busy, try again" soon beats a request held up for SQLAlchemy's
# default of 30 s. With the two lock waits (2 × LOCK_TIMEOUT_MS) it stays under the 3 s the
# terminals are promised.
POOL_TIMEOUT_S = 0.5
# How long opening a PostgreSQL connection may take (seconds; libpq's least is 2).
CONNECT_TIMEOUT_S = 5
# How the registry reaches PostgreSQL: directly, or through PgBouncer in transaction pooling
# mode (each transaction may run on another server connection).
DIRECT, PGBOUNCER = "none", "pgbouncer"
POOLERS = (DIRECT, PGBOUNCER)
ISOLATION_LEVELS = ("READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")


def begin_statements(isolation: str, lock_timeout_ms: int,
                     durable: bool = True) -> tuple[str, ...]:
    """What starts a PostgreSQL transaction with its settings (`SET LOCAL`: they end with
    it), sent with the transaction's first statement (`prepared.begin_later`)."""
    if isolation not in ISOLATION_LEVELS:
        raise ValueError(f"unknown isolation level {isolation!r}")
    begin = (f"BEGIN ISOLATION LEVEL {isolation}",
             f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
    return begin if durable else (*begin, "SET LOCAL synchronous_commit = off")


def begin_statement(isolation: str, lock_timeout_ms: int, durable: bool = True) -> str:
    """The same as one simple-protocol query, as it goes before one of SQLAlchemy's
    statements: one round trip, as a bare BEGIN."""
    return "; ".join(begin_statements(isolation, lock_timeout_ms, durable))


def make_engine(url: str, isolation: str = "READ COMMITTED",
                lock_timeout_ms: int = LOCK_TIMEOUT_MS, *, pool_size: int = POOL_SIZE,
                max_overflow: int = MAX_OVERFLOW, pooler: str = DIRECT,
                pool_timeout: float = POOL_TIMEOUT_S) -> Engine:
    """An engine with the locking behaviour the seat rules rely on.

    `isolation` is for PostgreSQL and only tests change it (to show why it is pinned).
    `pooler`: PGBOUNCER when `url` is PgBouncer in transaction pooling mode."""
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, see below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA busy_timeout = 30000")
            if not memory:
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    if pooler not in POOLERS:
        raise ValueError(f"unknown pooler {pooler!r}")
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    # Every transaction starts with a query of ours (`begin_statements`), as SQLite's does:
    # READ COMMITTED is pinned there (every seat decision re-reads after taking the row lock,
    # which under REPEATABLE READ would fail with serialization errors instead of waiting),
    # and so is lock_timeout, a bounded wait for the programme row: past it the store answers
    # "busy", never hangs. Set in the transaction, not as a start-up option of the connection,
    # which PgBouncer refuses in transaction pooling mode, and in the same round trip as the
    # BEGIN, itself sent with the transaction's first statement: none more per transaction.
    # The driver is in autocommit so that it sends no BEGIN of its own; it still sends the
    # COMMIT or ROLLBACK of the transaction we opened.
    # Prepared statements live on one server connection; through PgBouncer (before 1.21) the
    # next transaction may run on another, so they are off there. Elsewhere the hot path's
    # statements are prepared on each connection (kiosk.registry.libpq), and psycopg prepares
    # none of its own: after any ROLLBACK it deallocates every statement of the connection.
    connect_args: dict[str, Any] = {"prepare_threshold": None}
    # A deadline on opening a connection too (psycopg's default is 130 s): a database host
    # that went silent answers "busy" after CONNECT_TIMEOUT_S, not a request held for minutes.
    # A connect_timeout written in the URL wins.
    if "connect_timeout=" not in url:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=pool_size,
                           max_overflow=max_overflow, pool_timeout=pool_timeout,
                           connect_args=connect_args)
    durable_begin = begin_statements(isolation, lock_timeout_ms)
    quick_begin = begin_statements(isolation, lock_timeout_ms, durable=False)

    if pooler != PGBOUNCER:
        @event.listens_for(engine, "connect")
        def _prepare_here(_dbapi_conn: Any, record: Any) -> None:
            keep_prepared(record.info)

    @event.listens_for(engine, "begin")
    def _postgresql_begin(conn: Connection) -> None:
        durable = conn.get_execution_options().get("durable", True)
        begin_later(conn, durable_begin if durable else quick_begin)

    @event.listens_for(engine, "before_cursor_execute")
    def _begin_first(conn: Connection, cursor: Any, *_statement: Any) -> None:
        send_begin(conn, cursor)

    # A pooled connection is checked before use only after it lay idle (when a database
    # restart may have closed it unseen): a ping on every checkout is one more round trip on
    # every request. A connection in steady use that fails anyway is a disconnect: the whole
    # pool is dropped and the request answers "busy" (retried by the terminal), once.
    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("returned_at", 0.0) < PING_AFTER_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure: the pool makes a new one
            raise DisconnectionError() from exc

    @event.listens_for(engine.pool, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    return engine


def _busy(exc: DBAPIError) -> RegistryError:
    """`reconnect`: the connection was lost (the database restarted, or ended it): the pool
    has been dropped, and the same request on a fresh connection may well succeed."""
    return RegistryError("busy", retry_after=1, reconnect=bool(exc.connection_invalidated))


def _means_busy(exc: DBAPIError) -> bool:
    """A lock wait past its bound, SQLite's write lock busy too long, or the connection lost
    at any step (nothing committed) is "busy, try again", never half a change; other database
    errors (an integrity violation, say) stay what they are."""
    return isinstance(exc, OperationalError) or exc.connection_invalidated


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        try:
            with self.engine.connect() as conn, Session(bind=conn) as session:
                try:
                    yield session
                finally:
                    session.rollback()
        except DBAPIError as exc:
            if _means_busy(exc):
                raise _busy(exc) from exc
            raise
        except PoolTimeout as exc:  # every pooled connection in use for POOL_TIMEOUT_S
            raise RegistryError("busy", retry_after=1) from exc

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[Session]:
        """A transaction that commits on success; on SQLite it takes the write lock at once.

        Inside another `write()` of the same context it joins that transaction, so a caller
        can commit a use case together with its own bookkeeping (the idempotency record).
        `durable=False` (PostgreSQL) commits without waiting for the disk: only for records
        that a later durable commit makes durable anyway, or whose loss is harmless.
        """
        outer = _ambient.get()
        if outer is not None:
            yield outer
            return
        # Read by the engine's "begin" listener: SQLite's write lock at once; PostgreSQL's
        # synchronous_commit off in the BEGIN's own round trip.
        opts = {"sqlite_begin": "IMMEDIATE"} if self.is_sqlite else {"durable": durable}
        try:
            # Leaving the `with` without commit rolls back (or drops a dead connection).
            with self.engine.connect().execution_options(**opts) as conn:
                conn.begin()
                # The session joins the connection's transaction; we commit it, not it.
                with Session(bind=conn, join_transaction_mode="rollback_only") as session:
                    reset = _ambient.set(session)
                    try:
                        yield session
                        session.flush()
                        deferred = session.info.pop(_AT_COMMIT, None)
                        if deferred:
                            commit_with(conn, deferred)
                        else:  # a statement sent ahead of none: it goes, checked, first
                            send_pending(conn)
                        conn.commit()
                    finally:
                        _ambient.reset(reset)
        except DBAPIError as exc:
            if _means_busy(exc):
                raise _busy(exc) from exc
            raise
        except PoolTimeout as exc:
            raise RegistryError("busy", retry_after=1) from exc

    @contextmanager
    def alone(self, job: str) -> Iterator[bool]:
        """`with store.alone("housekeeping") as mine:` True when no other process, on any
        host, runs `job` on this database meanwhile (a PostgreSQL advisory lock, held by a
        transaction on a connection of its own and released when it ends, or when that
        connection dies); False when one does: skip. SQLite is one host's file: always True.

        A transaction's lock, not a session's: through PgBouncer in transaction pooling mode
        a session lock would stay on whichever server connection took it, and its unlock
        could run on another."""
        if self.is_sqlite:
            yield True
            return
        key = int.from_bytes(hashlib.sha256(f"kiosk:{job}".encode()).digest()[:8], "big",
                             signed=True)
        with self.engine.connect() as conn, conn.begin():
            mine = bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                     {"k": key}).scalar())
            yield mine

    def insert_ignoring_duplicates(self, model: type[Base]) -> Insert:
        return insert_ignoring_duplicates(model, self.engine.dialect.name)


def at_commit(s: Runner, statement: Prepared, params: Mapping[str, Any]) -> None:
    """Inside `Store.write()`: a write whose rows nobody reads in the same transaction, which
    commits with it (the key's answer, a claim's e-mail, an academy change). On PostgreSQL it
    is sent with the COMMIT, in the same round trip (one round trip less, while the programme
    lock may be held); on SQLite, or outside a write, it runs now."""
    conn = s.connection() if isinstance(s, Session) else s
    session = s if isinstance(s, Session) else _ambient.get()
    if session is not None and session.connection() is not conn:
        session = None  # a connection of another transaction than this thread's write
    if session is None or conn.dialect.name == "sqlite":
        statement.run(conn, params)
    else:
        session.info.setdefault(_AT_COMMIT, []).append(statement.bound(conn, params))


def empty(s: Session) -> None:
    """Every row of every table removed, children first, in the caller's transaction: only
    for a practice registry's reset (`practice.reset`), which loads the demo's data again in
    the same transaction. The schema, its revision and the id sequences stay."""
    s.flush()
    for table in reversed(Base.metadata.sorted_tables):
        s.execute(table.delete())


def insert_ignoring_duplicates(model: type[Base], dialect: str) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING in this database's dialect."""
    dialect_insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    return dialect_insert(model).on_conflict_do_nothing()


class AcademyChange(Base):
    """"This patron's seat, courses or account changed": the academy's platform must be made
    to match the registry (the academy's outbox, `academy.py`; sent by `academy_sender.py`).

    Level-triggered: a row carries no state, only whom to look at; the sender reads the
    patron's state at send time, so several rows of one patron are satisfied by one sync and
    their order cannot be got wrong. Written in the transaction of the change (a rolled-back
    change leaves none). No foreign key: the row of an erased patron must outlive them, and
    `external_id` still finds their user on the platform to delete it."""

    __tablename__ = "academy_changes"
    __table_args__ = (Index("ix_academy_changes_due", "done_at", "patron_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    done_at: Mapped[datetime | None] = mapped_column(DateTime)
    # What the platform was made to do ("created", "updated", "deactivated", "deleted",
    # "unchanged") once done; the kind of error while not (never personal data).
    outcome: Mapped[str] = mapped_column(String(20), default="")
    last_error: Mapped[str] = mapped_column(String(200), default="")


class StaffFormAnswer(Base):
    """A staff form sent with its hidden key (kiosk.staff.once): *running* while its view
    runs, then *done* with the answer to replay (the redirect and the messages it flashed) if
    the same form is sent again. `key` names the form key and the address together, so two
    buttons of one page never share a row; `request_hash` names what was sent. Purged with
    the idempotency keys, after 24 hours."""

    __tablename__ = "staff_form_answers"
    __table_args__ = (
        UniqueConstraint("staff_id", "key"),
        CheckConstraint("state IN ('running', 'done')", name="state_known"),
        Index("ix_staff_form_answers_created", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))
    location: Mapped[str | None] = mapped_column(Text)
    messages: Mapped[list | None] = mapped_column(JSON)  # [[category, text], …]
    created_at: Mapped[datetime] = mapped_column(DateTime)
