"""New-course alerts: a patron asks to hear by e-mail of new courses in the categories they
choose, with a consent of its own (nothing to do with the account's privacy consent).

- Choosing (`choice`, `choose`): at the kiosk, in "My courses"; no category is "stop all".
- Publishing (`published`): the catalogue's use cases (kiosk.registry.catalogue_admin) note a
  course added, back from retirement or made module of the month, in their own transaction.
- Telling (`tell_subscribers`, run by `kiosk registry purge` and the registry's background
  job): every publication older than the settle time is told in one go, so a catalogue change
  of thirty courses gives each subscriber one message listing them, in their language, through
  the outbox (kiosk.registry.notices). A course is never told twice to the same patron
  (`alerts_sent`).
- Stopping by link (`stop_by_link`): each message carries a signed link (itsdangerous, the
  registry's secret key, a salt of its own; it never expires) that works without logging in,
  also as the RFC 8058 one-click `List-Unsubscribe`.
- The coordinator sees how many patrons chose each category (`counts`), never who.
Erasure takes a patron's subscriptions and what they were told with their row (ON DELETE
CASCADE); a practice reset empties these tables with all the others.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from . import notices
from .context import RegistryContext
from .domain import LANGUAGES, AlertChoice, CategoryView, RegistryError
from .patron_sessions import PatronSessions
from .staff import pseudonym, record
from .store import (
    AlertSent,
    AlertSubscription,
    Category,
    Course,
    CoursePublication,
    Patron,
    Runner,
)

# Publications wait this long before they are told: the coordinator's next courses of the same
# session (an import, a run of edits) go in the same message (ALERTS_SETTLE_MINUTES).
SETTLE = timedelta(minutes=10)
# The signed link's salt: a token made for another purpose with the same key is refused here.
SALT = "kiosk-new-course-alerts-stop"
# Where the link points, on the host named by PUBLIC_URL (kiosk.mail_links serves it).
STOP_PATH = "/{lang}/new-courses/stop/{token}"


def published(s: Runner, course_id: int, now: datetime) -> None:
    """Note, in the catalogue change's transaction, that a course is (again) on offer."""
    s.execute(insert(CoursePublication).values(course_id=course_id, published_at=now,
                                                told_at=None))


class Alerts:
    """`RegistryService.alerts`. `secret_key` and `link_base` (PUBLIC_URL) are the registry's
    settings, given when the service is built (kiosk.registry_setup)."""

    def __init__(self, ctx: RegistryContext, *, sessions: PatronSessions):
        self.ctx = ctx
        self.sessions = sessions
        self.secret_key = ""
        self.link_base = ""
        self.settle = SETTLE

    # The patron's choice -------------------------------------------------------------------

    def available(self, s: Runner) -> bool:
        """Whether messages can go at all: mail is on and links have an address."""
        return notices.enabled(s) and bool(self.link_base.strip())

    def choice(self, token: str, lang: str) -> AlertChoice:
        """The categories, those the patron chose, and whether a message can reach them."""
        def read(s: Session, patron: Patron) -> AlertChoice:
            return AlertChoice(
                categories=_categories(s, lang),
                chosen=_chosen(s, patron.id),
                available=self.available(s),
                has_email=bool((patron.email or "").strip()))
        return self.sessions.reading(token, read)

    def choose(self, token: str, categories: Collection[str], consent: bool) -> None:
        """The patron's categories from now on (none: stop all). A category not chosen
        before needs the consent box ticked; any needs an e-mail address on the account."""
        wanted = set(categories)
        now = self.ctx.clock()
        with self.ctx.store.write() as s:
            patron_id = self.sessions.patron_id_for(s, token)
            known = set(s.scalars(select(Category.code)).all())
            email = s.scalar(select(Patron.email).where(Patron.id == patron_id))
            if not wanted <= known:
                raise RegistryError("invalid", {"categories": "category_unknown"})
            had = set(_chosen(s, patron_id))
            if wanted - had and not consent:  # each new category: the box ticked again
                raise RegistryError("invalid", {"consent": "alerts_consent_required"})
            if wanted and not (email or "").strip():
                raise RegistryError("invalid", {"categories": "alerts_need_email"})
            if had == wanted:
                return
            s.execute(delete(AlertSubscription).where(
                AlertSubscription.patron_id == patron_id,
                AlertSubscription.category_code.not_in(wanted)))
            for code in sorted(wanted - had):
                s.add(AlertSubscription(patron_id=patron_id, category_code=code,
                                        consented_at=now))
            record(s, now, pseudonym(patron_id), "alerts_chosen", subject=pseudonym(patron_id),
                   categories=sorted(wanted))

    # The signed link -----------------------------------------------------------------------

    def _signer(self) -> URLSafeSerializer:
        if not self.secret_key:
            raise RuntimeError("the registry's secret key is not set")
        return URLSafeSerializer(self.secret_key, salt=SALT)

    def stop_token(self, patron_id: int) -> str:
        return str(self._signer().dumps({"patron": patron_id}))

    def stop_url(self, patron_id: int, lang: str) -> str:
        lang = lang if lang in LANGUAGES else "en"
        return self.link_base.rstrip("/") + STOP_PATH.format(
            lang=lang, token=self.stop_token(patron_id))

    def patron_of(self, token: str) -> int | None:
        """The patron a link was made for; None for a forged, damaged or foreign one."""
        try:
            data = self._signer().loads(token)
        except BadSignature:
            return None
        patron_id = data.get("patron") if isinstance(data, dict) else None
        return patron_id if isinstance(patron_id, int) and patron_id > 0 else None

    def stop_by_link(self, token: str, where: str = "") -> None:
        """Every subscription of the link's patron ends (nothing to end is fine: a second
        click, an erased patron). A link that is not ours is refused: `invalid_link`."""
        patron_id = self.patron_of(token)
        if patron_id is None:
            raise RegistryError("invalid_link")
        with self.ctx.store.write() as s:
            gone = s.connection().execute(delete(AlertSubscription).where(
                AlertSubscription.patron_id == patron_id)).rowcount
            if gone:
                record(s, self.ctx.clock(), pseudonym(patron_id), "alerts_stopped",
                       where=where, subject=pseudonym(patron_id))

    # Telling -------------------------------------------------------------------------------

    def tell_subscribers(self) -> int:
        """Turn every publication older than the settle time into one message per subscriber
        listing the courses they were not told of yet; answers how many messages were queued.
        A course retired meanwhile is not told. With mail off nothing is queued, and the
        publications are done with all the same (mail turned on later does not send old
        news)."""
        now = self.ctx.clock()
        with self.ctx.store.read() as s:  # most rounds: nothing due, and no write lock taken
            if s.scalar(select(CoursePublication.id).where(
                    CoursePublication.told_at.is_(None),
                    CoursePublication.published_at <= now - self.settle).limit(1)) is None:
                return 0
        with self.ctx.store.write() as s:
            # Claimed by the update itself: a second sender (another worker, the hourly
            # job) running meanwhile waits for this one's rows and then finds none left.
            claimed = set(s.execute(
                update(CoursePublication)
                .where(CoursePublication.told_at.is_(None),
                       CoursePublication.published_at <= now - self.settle)
                .values(told_at=now)
                .returning(CoursePublication.course_id)
                .execution_options(synchronize_session=False)).scalars().all())
            if not claimed or not self.available(s):
                return 0
            due = s.execute(select(Course.id, Course.category_code)
                            .where(Course.id.in_(claimed), Course.retired.is_(False))).all()
            by_category: dict[str, set[int]] = {}
            for course_id, category in due:
                by_category.setdefault(category, set()).add(course_id)
            wishes: dict[int, set[int]] = {}
            language: dict[int, str] = {}  # read here, not one query a patron in the loop
            for patron_id, category, lang in s.execute(
                    select(AlertSubscription.patron_id, AlertSubscription.category_code,
                           Patron.language)
                    .join(Patron, Patron.id == AlertSubscription.patron_id)
                    .where(AlertSubscription.category_code.in_(by_category),
                           Patron.email.is_not(None), Patron.email != "")):
                wishes.setdefault(patron_id, set()).update(by_category[category])
                language[patron_id] = lang
            told = {(row.patron_id, row.course_id) for row in s.execute(
                select(AlertSent.patron_id, AlertSent.course_id)
                .where(AlertSent.patron_id.in_(wishes)))}
            queued = 0
            for patron_id in sorted(wishes):
                news = sorted(c for c in wishes[patron_id] if (patron_id, c) not in told)
                if not news:
                    continue
                notices.enqueue(s, patron_id, "new_courses", now,
                                unsubscribe_url=self.stop_url(patron_id,
                                                              language[patron_id] or "en"),
                                course_ids=",".join(map(str, news)))
                s.execute(insert(AlertSent), [{"patron_id": patron_id, "course_id": c,
                                               "sent_at": now} for c in news])
                queued += 1
            return queued

    # The coordinator's figures ---------------------------------------------------------------

    def counts(self, lang: str) -> list[tuple[str, int]]:
        """(category name in `lang`, patrons who chose it) for every category, in kiosk
        order: no names, only numbers."""
        with self.ctx.store.read() as s:
            chosen: dict[str, int] = {code: n for code, n in s.execute(
                select(AlertSubscription.category_code, func.count())
                .group_by(AlertSubscription.category_code))}
            return [(view.name, int(chosen.get(view.code, 0)))
                    for view in _categories(s, lang)]


def _categories(s: Runner, lang: str) -> list[CategoryView]:
    return [CategoryView(code=code, name=(names or {}).get(lang) or code)
            for code, names in s.execute(select(Category.code, Category.names)
                                         .order_by(Category.position, Category.code))]


def _chosen(s: Runner, patron_id: int) -> list[str]:
    return list(s.scalars(select(AlertSubscription.category_code)
                          .join(Category, Category.code == AlertSubscription.category_code)
                          .where(AlertSubscription.patron_id == patron_id)
                          .order_by(Category.position, Category.code)).all())
