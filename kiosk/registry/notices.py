"""E-mail notices to patrons: written into the outbox (`notices`) in the patron's language, in
the transaction of the action they tell about; sent later by `kiosk.registry.mailer`.

No Flask here: the text is rendered with babel's own Translations from the project's
catalogues, and every sentence is a literal `_("…")` so `kiosk translations update` finds it.
Mail is off (nothing is even queued) unless the registry was given an SMTP server: see
`enable` and SMTP_HOST.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from babel.dates import format_date, format_datetime
from babel.support import NullTranslations, Translations
from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from ..catalogs import compile_catalogues
from ..paths import resource_dir
from .context import RegistryContext
from .days import BELGIUM
from .domain import LOCALES, format_card_number
from .prepared import Prepared
from .staff import record
from .store import (
    THE_PROGRAMME,
    Course,
    CourseText,
    EnrolmentRow,
    Library,
    Notice,
    Patron,
    Place,
    Programme,
    Runner,
    Store,
    at_commit,
)

KINDS = ("account_created", "enrolled", "waiting_list_joined", "promoted", "offer_made",
         "offer_expiring", "receipt", "email_changed", "new_courses")
# Notices about an offer: true only while that offer stands, so never sent after its end
# (`not_after`) nor once it was accepted, declined or passed on (see `outdated`).
TIME_BOUND = ("offer_made", "offer_expiring")
SENT_RECENTLY = timedelta(days=7)  # the dashboard's "sent" figure
# Dates in Belgian long format (LOCALES), as on the kiosk (kiosk/i18n.py); Belgian time.
KEEP_SENT = timedelta(days=30)
# Sending attempts before a notice is given up (kiosk.registry.mailer sends; the outbox
# counts and purges the given-up ones): about three days, longer than an offer's hold.
MAX_ATTEMPTS = 8
# The engine execution option that says "this registry sends mail" (see `enable`): read from
# whatever the caller's transaction runs on, Session or Connection, with no global state.
_OPTION = "kiosk_notices"

Gettext = Callable[[str], str]

_catalogues: dict[str, NullTranslations] = {}
_catalogues_lock = threading.Lock()


def enable(store: Store, on: bool = True) -> None:
    """Turn queuing on for this registry (SMTP_HOST set) or off (empty: not even queued)."""
    store.engine.update_execution_options(**{_OPTION: bool(on)})


def enabled(s: Runner) -> bool:
    """Whether notices are queued in this transaction's registry (a desk page can say
    "e-mail is not set up" instead of offering to send a receipt)."""
    conn = s.connection() if isinstance(s, Session) else s
    return bool(conn.get_execution_options().get(_OPTION, False))


def translations(lang: str) -> NullTranslations:
    """The catalogue of one language, loaded once per process (compiled first if a checkout
    has only the .po files, as kiosk/i18n.py does for the pages)."""
    with _catalogues_lock:
        if lang not in _catalogues:
            directory = resource_dir("translations")
            if not _catalogues:
                try:
                    compile_catalogues(directory)
                except OSError:  # an installed, read-only copy ships them compiled
                    pass
            _catalogues[lang] = Translations.load(str(directory), [lang], domain="messages")
        return _catalogues[lang]


def long_date(value: date | datetime, lang: str) -> str:
    """A date (or naive-UTC datetime) as a Belgian long date, e.g. "27 maart 2026"."""
    locale = LOCALES.get(lang, "en_GB")
    if isinstance(value, datetime):
        return format_datetime(_utc(value), format="d MMMM y, HH:mm", tzinfo=BELGIUM,
                               locale=locale)
    return format_date(value, format="long", locale=locale)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _as_date_text(value: str, lang: str) -> str:
    """A parameter given as ISO text (until=expires.isoformat()) is written in the patron's
    language; any other text is used as it stands."""
    if len(value) < 10 or not value[:4].isdigit() or value[4:5] != "-":
        return value
    try:
        if len(value) == 10:
            return long_date(date.fromisoformat(value), lang)
        return long_date(datetime.fromisoformat(value), lang)
    except ValueError:
        return value


def enqueue(s: Runner, patron_id: int, kind: str, now: datetime, *, address: str = "",
            unsubscribe_url: str = "", **params: str) -> None:
    """Queue one e-mail to a patron, rendered now in their language, in the caller's
    transaction (it commits or rolls back with the action it tells about).

    `params` are texts for the message: `course` (a title), `until` (ISO date or datetime
    text is written as a Belgian long date in the patron's language, other text as is),
    `position` (place in line), `course_slug` (the title is then looked up in the patron's
    language). Without `course`/`course_slug` the patron's courses are listed where useful.
    For an offer notice (TIME_BOUND), `until` is also its `not_after`: never sent later.
    `address`: where to send it instead of the patron's address (an "email_changed" notice
    also goes to the address they had; `side` "old" or "new" says which one it is).
    `course_ids` (comma-separated ids) lists courses by their title in the patron's language
    (new_courses); `unsubscribe_url` is the one-click address of a notice the patron asked for:
    written in it and sent as its List-Unsubscribe header.
    Does nothing when mail is off, for an unknown patron or one without an e-mail address.
    `s` may also be a Connection.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    found = draft(s, patron_id, address=address, course_slug=params.get("course_slug", ""))
    if found is not None:
        s.execute(insert(Notice).values(found.values(kind, now, unsubscribe_url=unsubscribe_url,
                                                     **params)))


# A notice's row as `Draft.queue_at_commit` sends it with the COMMIT (the binds are named
# apart from the columns, which insert() reserves).
_NOTICE_ROW = Prepared(insert(Notice).values(
    {column: bindparam(f"v_{column}") for column in (
        "patron_id", "kind", "language", "to_address", "subject", "body", "created_at",
        "attempts", "next_attempt_at", "sent_at", "last_error", "not_after",
        "unsubscribe_url")}))


@dataclass
class Draft:
    """One patron's notice with all it reads from the registry read already: `values` only
    renders. A claim drafts its notice before it takes the programme lock and sends the row
    with its COMMIT, so that no statement and little Python run while the lock is held."""

    patron_id: int
    to_address: str
    first_name: str
    card_number: str
    library: str
    lang: str
    course_title: str  # the title of `course_slug` in the patron's language, if one was given
    facts: _Facts

    def values(self, kind: str, now: datetime, *, unsubscribe_url: str = "",
               **params: str) -> dict[str, object]:
        """The notice's row: its columns and their values."""
        not_after = _moment(params.get("until", "")) if kind in TIME_BOUND else None
        texts = {key: _as_date_text(str(value), self.lang) for key, value in params.items()}
        if unsubscribe_url:
            texts["unsubscribe"] = unsubscribe_url
        if texts.get("course_slug") and not texts.get("course"):
            texts["course"] = self.course_title
        subject, body = render(kind, self.lang, first_name=self.first_name,
                               card_number=self.card_number, library=self.library,
                               facts=self.facts, params=texts)
        return {"patron_id": self.patron_id, "kind": kind, "language": self.lang,
                "to_address": self.to_address, "subject": subject[:200], "body": body,
                "created_at": now, "attempts": 0, "next_attempt_at": now, "sent_at": None,
                "last_error": "", "not_after": not_after, "unsubscribe_url": unsubscribe_url}

    def queue_at_commit(self, s: Runner, kind: str, now: datetime, **params: str) -> None:
        """Queue it in `s`'s write, its row sent with the COMMIT (`store.at_commit`)."""
        row = self.values(kind, now, **params)
        at_commit(s, _NOTICE_ROW, {f"v_{key}": value for key, value in row.items()})


def _title(lang: ColumnElement[str] | InstrumentedAttribute[str] | str) -> ScalarSelect[str]:
    """The title of the course named by the `slug` parameter in `lang`."""
    return (select(CourseText.title).join(Course, Course.id == CourseText.course_id)
            .where(Course.slug == bindparam("slug"), CourseText.lang == lang)
            .limit(1).scalar_subquery())


# What a notice to one patron needs: who they are, the title of the course it may name (in
# their language, else English, else any: as _title_by_id) and the academy's address (what
# "enrolled" mentions). Columns of a statement that joins Patron and Library and binds `slug`:
# `_DRAFT` below, or the read of a use case that needs them with its own (the claim's).
DRAFT_COLUMNS = (
    Patron.email, Patron.first_name, Patron.language, Patron.card_number,
    Library.name.label("library"),
    func.coalesce(_title(Patron.language), _title("en"),
                  select(CourseText.title)
                  .join(Course, Course.id == CourseText.course_id)
                  .where(Course.slug == bindparam("slug")).limit(1).scalar_subquery(),
                  bindparam("slug")).label("course_title"),
    select(Programme.academy_url).where(THE_PROGRAMME).scalar_subquery().label("academy_url"))

_DRAFT = Prepared(select(*DRAFT_COLUMNS).join(Library, Library.id == Patron.library_id)
                  .where(Patron.id == bindparam("patron_id")))


def draft(s: Runner, patron_id: int, *, address: str = "", course_slug: str = "") -> Draft | None:
    """A notice to `patron_id` ready to render (see Draft), in one read, or None when mail
    is off, for an unknown patron or one without an e-mail address."""
    if not enabled(s):
        return None
    conn = s.connection() if isinstance(s, Session) else s
    if isinstance(s, Session):
        s.flush()  # a patron made in this transaction is read too
    return draft_from(s, patron_id, _DRAFT.first(conn, {"patron_id": patron_id,
                                                        "slug": course_slug}),
                      address=address, course_slug=course_slug)


def draft_from(s: Runner, patron_id: int, patron: Any, *, address: str = "",
               course_slug: str = "") -> Draft | None:
    """The draft from a row with `DRAFT_COLUMNS` (None: no such patron), read with `slug` =
    `course_slug`; None for a patron without an e-mail address."""
    to_address = (address or patron.email) if patron is not None else ""
    if patron is None or not (to_address or "").strip():
        return None
    lang = patron.language if patron.language in LOCALES else "en"
    return Draft(patron_id, to_address, patron.first_name, patron.card_number, patron.library,
                 lang, patron.course_title if course_slug else "",
                 _Facts(s, patron_id, lang, patron.academy_url or ""))


def _moment(value: object) -> datetime | None:
    """`until` as the naive-UTC moment it names (a promotion passes expires.isoformat())."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def outdated(s: Runner, kind: str, patron_id: int | None, not_after: datetime | None,
             now: datetime) -> bool:
    """Whether a notice tells something no longer true, so sending it now would mislead: an
    offer notice after the offer's end, or once the patron's place is no longer that offer
    (accepted, declined, passed on; a later offer has another end). Other kinds never are."""
    if kind not in TIME_BOUND:
        return False
    if patron_id is None or (not_after is not None and not_after <= now):
        return True
    place = s.execute(select(Place.status, Place.offer_expires_at)
                      .where(Place.patron_id == patron_id)).first()
    if place is None or place.status != "offered":
        return True
    return not_after is not None and place.offer_expires_at != not_after


class _Facts:
    """What a message may mention, read from the registry only when it does (the academy's
    address is read ahead by `draft`, with the patron)."""

    def __init__(self, s: Runner, patron_id: int, lang: str, academy_url: str):
        self.s, self.patron_id, self.lang = s, patron_id, lang
        self._academy_url = academy_url

    def academy_url(self) -> str:
        return self._academy_url

    def courses(self) -> list[str]:
        rows = self.s.execute(
            select(Course.id, EnrolmentRow.id.label("row"))
            .join(EnrolmentRow, EnrolmentRow.course_id == Course.id)
            .where(EnrolmentRow.patron_id == self.patron_id)
            .order_by(EnrolmentRow.created_at, EnrolmentRow.id)
        ).all()
        return [_title_by_id(self.s, course_id, self.lang) for course_id, _ in rows]

    def titles(self, course_ids: str) -> list[str]:
        """The titles of courses given as comma-separated ids, in the patron's language."""
        ids = [int(part) for part in course_ids.split(",") if part.strip().isdigit()]
        return [_title_by_id(self.s, course_id, self.lang) for course_id in ids]

    def place(self) -> tuple[str | None, int | None]:
        """(status, position in line) of the patron now."""
        row = self.s.execute(select(Place.status, Place.queue_no)
                             .where(Place.patron_id == self.patron_id)).first()
        if row is None:
            return None, None
        if row.status != "waiting":
            return row.status, None
        ahead = self.s.scalar(select(func.count()).where(
            Place.status == "waiting", Place.queue_no < row.queue_no)) or 0
        return row.status, ahead + 1


def _title_by_id(s: Runner, course_id: int, lang: str) -> str:
    titles = dict(s.execute(select(CourseText.lang, CourseText.title)
                            .where(CourseText.course_id == course_id)).all())
    return titles.get(lang) or titles.get("en") or next(iter(titles.values()), "")


def render(kind: str, lang: str, *, first_name: str, card_number: str, library: str,
           facts: _Facts, params: dict[str, str]) -> tuple[str, str]:
    """Subject and plain-text body of one notice in `lang`: short, friendly, signed."""
    catalogue = translations(lang)
    _ = catalogue.gettext
    url = facts.academy_url()
    course = params.get("course", "")
    lines: list[str]

    if kind == "account_created":
        subject = _("Your library account is ready")
        lines = [
            _("Welcome! Your library account has been created."),
            _("Your library card number: %(card)s") % {"card": format_card_number(card_number)},
            _("Your library: %(library)s") % {"library": library},
            _("With it you can enrol in the online courses, at any library kiosk."),
        ]
    elif kind == "enrolled":
        subject = _("You are enrolled: %(course)s") % {"course": course or _("online course")}
        lines = [_("Good news: you have a seat in the programme.")]
        if course:
            lines.append(_("Your course: %(course)s") % {"course": course})
        if url:
            lines.append(_("Start learning at home on %(url)s") % {"url": url})
    elif kind == "waiting_list_joined":
        subject = _("You are on the waiting list")
        line_place = params.get("position") or str(facts.place()[1] or "")
        lines = [_("All seats are taken for now, so you are on the waiting list.")]
        if line_place:
            lines.append(_("Your place in line: %(position)s") % {"position": line_place})
        if course:
            lines.append(_("Your course: %(course)s") % {"course": course})
        lines.append(_("We will write to you as soon as a seat is free for you."))
    elif kind == "promoted":
        subject = _("A seat is free for you")
        lines = [_("Good news: a seat became free and it is yours now.")]
        lines += _course_lines(_, course, facts)
        if url:
            lines.append(_("Start learning at home on %(url)s") % {"url": url})
    elif kind == "offer_made":
        subject = _("A seat is waiting for you")
        lines = [_("Good news: a seat became free and we are keeping it for you.")]
        if params.get("until"):
            lines.append(_("Take it before %(until)s: log in at any library kiosk and accept "
                           "the offer.") % {"until": params["until"]})
        else:
            lines.append(_("Log in at any library kiosk to accept the offer."))
        lines += _course_lines(_, course, facts)
        lines.append(_("If you do not take it in time, it goes to the next person in line."))
    elif kind == "offer_expiring":
        subject = _("Your seat offer expires soon")
        if params.get("until"):
            lines = [_("The seat we are keeping for you is yours until %(until)s.")
                     % {"until": params["until"]}]
        else:
            lines = [_("The seat we are keeping for you will soon go to the next in line.")]
        lines.append(_("Log in at any library kiosk to accept the offer."))
    elif kind == "receipt":
        subject = _("Your enrolment at the library")
        status, position = facts.place()
        lines = [_("Here is what we did together at the library."),
                 _("Your library card number: %(card)s")
                 % {"card": format_card_number(card_number)},
                 _("Your library: %(library)s") % {"library": library}]
        if status == "seated":
            lines.append(_("You have a seat in the programme"))
        elif status == "offered":
            lines.append(_("A seat is waiting for you: log in at a library kiosk to accept it."))
        elif status == "waiting":
            lines.append(_("You are on the waiting list, place %(position)s.")
                         % {"position": position})
        lines += _course_lines(_, course, facts)
        if url and status == "seated":
            lines.append(_("Start learning at home on %(url)s") % {"url": url})
    elif kind == "email_changed":
        subject = _("Your e-mail address has changed")
        if params.get("side") == "old":
            lines = [_("The e-mail address of your library account was changed. From now on "
                       "we write to the new address."),
                     _("Did you not ask for this? Ask at your library's desk straight away.")]
        else:
            lines = [_("This is now the e-mail address of your library account."),
                     _("Your library card number: %(card)s")
                     % {"card": format_card_number(card_number)}]
    elif kind == "new_courses":
        subject = _("New online courses at the library")
        lines = [_("There are new courses in the subjects you chose:"),
                 *(f"- {title}" for title in facts.titles(params.get("course_ids", ""))),
                 "", _("You can enrol at any library kiosk.")]
        if params.get("unsubscribe"):
            lines += ["", _("You get this e-mail because you asked for it at the kiosk. To stop "
                            "these e-mails, open this link: %(url)s")
                      % {"url": params["unsubscribe"]}]
    else:  # pragma: no cover - KINDS is checked by enqueue
        raise ValueError(kind)

    greeting = _("Hello %(first_name)s,") % {"first_name": first_name}
    closing = [_("Questions? Ask at your library's desk."), "", _("Kind regards,"),
               _("Online courses at the library")]
    body = "\n".join([greeting, "", *lines, "", *closing]) + "\n"
    return subject.replace("\n", " "), body


def _course_lines(_: Gettext, course: str, facts: _Facts) -> list[str]:
    if course:
        return [_("Your course: %(course)s") % {"course": course}]
    titles = facts.courses()
    if not titles:
        return []
    return [_("Your courses:"), *(f"- {title}" for title in titles)]


# --- The outbox itself ------------------------------------------------------------------


def purge_sent(store: Store, now: datetime) -> int:
    """Retention: sent notices after 30 days, those given up after 30 days (a coordinator
    has seen them by then), and those that became obsolete 30 days ago; answers how many
    went."""
    cutoff = now - KEEP_SENT
    with store.write() as s:
        result = s.connection().execute(delete(Notice).where(or_(
            Notice.sent_at < cutoff,
            Notice.obsolete_at < cutoff,
            and_(Notice.sent_at.is_(None), Notice.attempts >= MAX_ATTEMPTS,
                 Notice.created_at < cutoff))))
        return result.rowcount or 0


def _given_up() -> ColumnElement[bool]:
    return and_(Notice.sent_at.is_(None), Notice.obsolete_at.is_(None),
                Notice.attempts >= MAX_ATTEMPTS)


def backlog(s: Runner) -> tuple[int, int]:
    """(waiting to be sent, given up): what `Notices.counts` calls queued and failed, in one
    statement over the unsent notices only (the index on sent_at), for /metrics."""
    row = s.execute(select(func.count().filter(Notice.attempts < MAX_ATTEMPTS),
                           func.count().filter(Notice.attempts >= MAX_ATTEMPTS))
                    .where(Notice.sent_at.is_(None), Notice.obsolete_at.is_(None))).one()
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class Outbox:
    """The outbox as the coordinator's dashboard shows it: counts and kinds of error only."""

    enabled: bool
    queued: int
    sent_recently: int  # in the last SENT_RECENTLY
    given_up: int
    reasons: list[tuple[str, int]]  # the given-up ones by their last error (no address)


class Notices:
    """The outbox seen from the registry service: on/off, counts, retention, and a fresh
    start for the given-up ones."""

    def __init__(self, ctx: RegistryContext):
        self.ctx = ctx

    @property
    def enabled(self) -> bool:
        return bool(self.ctx.store.engine.get_execution_options().get(_OPTION, False))

    @enabled.setter
    def enabled(self, on: bool) -> None:
        enable(self.ctx.store, on)

    def counts(self) -> dict[str, int]:
        """How many notices wait, were sent, were given up, or became obsolete (no
        personal data)."""
        with self.ctx.store.read() as s:
            sent = s.scalar(select(func.count()).where(Notice.sent_at.is_not(None))) or 0
            failed = s.scalar(select(func.count()).where(_given_up())) or 0
            queued = s.scalar(select(func.count()).where(
                Notice.sent_at.is_(None), Notice.obsolete_at.is_(None),
                Notice.attempts < MAX_ATTEMPTS)) or 0
            obsolete = s.scalar(select(func.count()).where(
                Notice.obsolete_at.is_not(None))) or 0
        return {"queued": queued, "sent": sent, "failed": failed, "obsolete": obsolete}

    def outbox(self) -> Outbox:
        """The dashboard's figures: waiting, sent in the last week, given up and why."""
        counts = self.counts()
        since = self.ctx.clock() - SENT_RECENTLY
        with self.ctx.store.read() as s:
            recent = s.scalar(select(func.count()).where(Notice.sent_at >= since)) or 0
            reasons = [(error or "?", n) for error, n in s.execute(
                select(Notice.last_error, func.count()).where(_given_up())
                .group_by(Notice.last_error).order_by(func.count().desc(), Notice.last_error))]
        return Outbox(enabled=self.enabled, queued=counts["queued"], sent_recently=recent,
                      given_up=counts["failed"], reasons=reasons)

    def send_again(self, *, actor: str, where: str = "") -> int:
        """Give every given-up notice a fresh start (the coordinator fixed the address or
        the server); answers how many. An offer notice whose offer is over meanwhile is
        still never sent: the sender marks it obsolete instead."""
        now = self.ctx.clock()
        with self.ctx.store.write() as s:
            result = s.connection().execute(
                update(Notice).where(_given_up())
                .values(attempts=0, next_attempt_at=now, last_error=""))
            count = result.rowcount or 0
            if count:
                record(s, now, actor, "notices_resent", where=where, count=count)
            return count

    def purge(self) -> int:
        return purge_sent(self.ctx.store, self.ctx.clock())
