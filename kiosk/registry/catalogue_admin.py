"""The coordinator's catalogue: add, edit, retire and restore courses; the module of the month.

The first half is plain rules (no Flask, no SQL): what a course needs to be offered, how a
slug is made, which days a module of the month may take. The second half is the use cases,
each one write transaction with its audit entry.

A retired course leaves the kiosk catalogue but keeps its enrolments: the patrons who chose
it still see it under "my courses" (their enrolments point at the course row, which stays).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .alerts import published
from .context import RegistryContext
from .days import belgian_date, parse_day
from .domain import LANGUAGES, RegistryError, ascii_digits, has_control_chars, has_visible_chars
from .reference import Reference
from .staff import record
from .store import Category, Course, CourseText, EnrolmentRow

SLUG_MAX = 80  # courses.slug
TITLE_MAX = 160  # course_texts.title
SUMMARY_MAX = 1000
HOURS_MAX = 999
POSITION_MAX = 9999
SLUG_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


# --- Rules -----------------------------------------------------------------------------


def slug_from_title(title: str) -> str:
    """"Veilig online bankieren!" → "veilig-online-bankieren": accents dropped, anything but
    a-z and 0-9 becomes one hyphen, at most SLUG_MAX characters."""
    text = unicodedata.normalize("NFKD", title or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return slug[:SLUG_MAX].rstrip("-")


def unique_slug(base: str, taken: Collection[str]) -> str:
    """`base`, or `base-2`, `base-3`… (still within SLUG_MAX) when another course has it."""
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[:SLUG_MAX - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        n += 1


@dataclass(frozen=True)
class CourseDraft:
    """A course as typed on the form: every value a string, checked by `validate_course`."""

    slug: str = ""
    category: str = ""
    hours: str = ""
    position: str = ""
    titles: Mapping[str, str] = field(default_factory=dict)  # {"nl": …, "fr": …, "en": …}
    summaries: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CleanCourse:
    slug: str
    category: str
    hours: int
    position: int | None  # None: after the last course
    titles: dict[str, str]
    summaries: dict[str, str]


def _has_bad_chars(value: str) -> bool:
    # Line ends and tabs are only whitespace in a pasted summary; other controls are refused.
    return has_control_chars(re.sub(r"[\r\n\t]", " ", value))


def _whole_number(text: str, low: int, high: int) -> int | None:
    digits = ascii_digits(text).strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 6):
        return None
    number = int(digits)
    return number if low <= number <= high else None


def validate_course(draft: CourseDraft, *, categories: Collection[str],
                    taken_slugs: Collection[str]) -> CleanCourse:
    """Every field checked at once; answers the clean course or raises
    RegistryError("invalid", {field: code}) with the form's field names (title_fr, …).

    `taken_slugs`: the slugs of the other courses (retired ones too: a slug is never reused
    while its course exists). An empty slug is made from the English title."""
    errors: dict[str, str] = {}
    titles: dict[str, str] = {}
    summaries: dict[str, str] = {}
    for lang in LANGUAGES:
        for name, raw, limit, into in (
            (f"title_{lang}", draft.titles.get(lang) or "", TITLE_MAX, titles),
            (f"summary_{lang}", draft.summaries.get(lang) or "", SUMMARY_MAX, summaries),
        ):
            text = " ".join(unicodedata.normalize("NFC", raw).split())
            if _has_bad_chars(raw):
                errors[name] = "invalid_characters"
            elif not has_visible_chars(text):
                errors[name] = "required"
            elif len(text) > limit:
                errors[name] = "too_long"
            into[lang] = text

    slug = (draft.slug or "").strip().lower()
    if slug:
        if len(slug) > SLUG_MAX:
            errors["slug"] = "too_long"
        elif not SLUG_RE.fullmatch(slug):
            errors["slug"] = "slug_invalid"
        elif slug in taken_slugs:
            errors["slug"] = "slug_taken"
    elif "title_en" not in errors:
        base = slug_from_title(titles["en"])
        if base:
            slug = unique_slug(base, taken_slugs)
        else:
            errors["slug"] = "slug_cannot_generate"

    category = (draft.category or "").strip()
    if not category:
        errors["category"] = "required"
    elif category not in categories:
        errors["category"] = "category_unknown"

    hours = None
    if not (draft.hours or "").strip():
        errors["hours"] = "required"
    elif (hours := _whole_number(draft.hours, 1, HOURS_MAX)) is None:
        errors["hours"] = "hours_invalid"

    position = None
    if (draft.position or "").strip():
        position = _whole_number(draft.position, 0, POSITION_MAX)
        if position is None:
            errors["position"] = "course_position_invalid"

    if errors:
        raise RegistryError("invalid", errors)
    assert hours is not None
    return CleanCourse(slug=slug, category=category, hours=hours, position=position,
                       titles=titles, summaries=summaries)


@dataclass(frozen=True)
class Period:
    slug: str
    starts: date
    ends: date


def validate_period(starts: str | date, ends: str | date, today: date,
                    started: date | None = None) -> tuple[date, date]:
    """The first and last day (both included) of a module of the month. Neither may have
    passed already, except that a period that has begun may keep its first day (`started`:
    the course's current first day, when it is one): a change of its last day must not make
    the coordinator move its start."""
    errors: dict[str, str] = {}
    days: list[date | None] = []
    for name, value in (("featured_from", starts), ("featured_until", ends)):
        day = value if isinstance(value, date) else parse_day(value)
        if day is None:
            errors[name] = "required" if not str(value or "").strip() else "date_invalid"
        days.append(day)
    first, last = days
    if first is not None and first < today and first != started:
        errors["featured_from"] = "date_in_past"
    if first is not None and last is not None:
        if last < first:
            errors["featured_until"] = "until_before_from"
        elif last < today:
            errors["featured_until"] = "date_in_past"
    if errors:
        raise RegistryError("invalid", errors)
    assert first is not None and last is not None
    return first, last


def overlapping(period: Period, others: Iterable[Period], today: date) -> Period | None:
    """The other module of the month that would share a day with `period`, if any.

    Only days from today on count: a period that has ended takes no kiosk day any more."""
    first = max(period.starts, today)
    for other in others:
        if other.slug != period.slug and other.starts <= period.ends and first <= other.ends \
                and other.ends >= today:
            return other
    return None


# --- What the pages show -------------------------------------------------------------------


@dataclass(frozen=True)
class CourseRow:
    """One line of the coordinator's course list."""

    slug: str
    title: str
    category_code: str
    category: str
    hours: int
    position: int
    enrolments: int
    retired: bool
    featured_from: date | None
    featured_until: date | None
    featured_now: bool


@dataclass(frozen=True)
class CourseDetails:
    """A course as the edit form shows it."""

    slug: str
    category: str
    hours: int
    position: int
    titles: dict[str, str]
    summaries: dict[str, str]
    retired: bool


# --- Use cases -----------------------------------------------------------------------------


class CatalogueAdmin:
    """`RegistryService.courses_admin`: the coordinator's changes to the catalogue."""

    def __init__(self, ctx: RegistryContext, *, reference: Reference):
        self.ctx = ctx
        self.store = ctx.store
        self.reference = reference

    def today(self) -> date:
        return belgian_date(self.ctx.clock())

    # Reads ---------------------------------------------------------------------------------

    def courses(self, lang: str) -> list[CourseRow]:
        """Every course, active and retired, in kiosk order (category, then position)."""
        today = self.today()
        with self.store.read() as s:
            counts = dict(s.execute(select(EnrolmentRow.course_id, func.count())
                                    .group_by(EnrolmentRow.course_id)).all())
            names = {c.code: (c.names.get(lang) or c.code, c.position)
                     for c in s.scalars(select(Category)).all()}
            rows = s.scalars(select(Course)).all()
            result = [
                CourseRow(
                    slug=c.slug, title=self.reference.text(c, lang).title,
                    category_code=c.category_code,
                    category=names.get(c.category_code, (c.category_code, 0))[0],
                    hours=c.hours, position=c.position, enrolments=counts.get(c.id, 0),
                    retired=c.retired, featured_from=c.featured_from,
                    featured_until=c.featured_until,
                    featured_now=bool(not c.retired and c.featured_from and c.featured_until
                                      and c.featured_from <= today <= c.featured_until),
                )
                for c in rows
            ]
        order = {code: pos for code, (_name, pos) in names.items()}
        return sorted(result, key=lambda r: (r.retired, order.get(r.category_code, 0),
                                             r.position, r.slug))

    def categories(self, lang: str) -> list[tuple[str, str]]:
        """(code, name in `lang`) in kiosk order, for the category list."""
        with self.store.read() as s:
            return [(c.code, c.names.get(lang) or c.code)
                    for c in s.scalars(select(Category).order_by(Category.position)).all()]

    def details(self, slug: str) -> CourseDetails:
        with self.store.read() as s:
            c = self._course(s, slug)
            texts = {t.lang: t for t in c.texts}
            return CourseDetails(
                slug=c.slug, category=c.category_code, hours=c.hours, position=c.position,
                titles={lang: t.title for lang, t in texts.items()},
                summaries={lang: t.summary for lang, t in texts.items()}, retired=c.retired)

    # Changes ---------------------------------------------------------------------------------

    def add(self, draft: CourseDraft, *, actor: str, where: str = "") -> str:
        """A new course, offered on the kiosks at once; answers its slug."""
        with self.store.write() as s:
            self._serialise(s)
            clean = self._validate(s, draft, own_id=None)
            position = clean.position
            if position is None:
                position = (s.scalar(select(func.max(Course.position))) or 0) + 1
            course = Course(slug=clean.slug, category_code=clean.category, hours=clean.hours,
                            position=position, retired=False)
            course.texts = [CourseText(lang=lang, title=clean.titles[lang],
                                       summary=clean.summaries[lang]) for lang in LANGUAGES]
            s.add(course)
            s.flush()
            published(s, course.id, self.ctx.clock())
            record(s, self.ctx.clock(), actor, "course_added", where=where,
                   slug=clean.slug, category=clean.category)
            return clean.slug

    def change(self, slug: str, draft: CourseDraft, *, actor: str, where: str = "") -> str:
        """New values for a course (its enrolments stay); answers its (maybe new) slug."""
        with self.store.write() as s:
            self._serialise(s)
            course = self._course(s, slug)
            clean = self._validate(s, draft, own_id=course.id)
            before = self._values(course)
            course.slug, course.category_code, course.hours = (clean.slug, clean.category,
                                                               clean.hours)
            if clean.position is not None:
                course.position = clean.position
            texts = {t.lang: t for t in course.texts}
            for lang in LANGUAGES:
                text = texts.get(lang)
                if text is None:
                    course.texts.append(CourseText(lang=lang, title=clean.titles[lang],
                                                   summary=clean.summaries[lang]))
                else:
                    text.title, text.summary = clean.titles[lang], clean.summaries[lang]
            after = self._values(course)
            changed = sorted(k for k in after if before.get(k) != after[k])
            if changed:
                detail: dict[str, Any] = {"slug": course.slug, "changed": changed}
                if course.slug != slug:
                    detail["old_slug"] = slug
                record(s, self.ctx.clock(), actor, "course_changed", where=where,
                       **detail)
            return course.slug

    def retire(self, slug: str, *, actor: str, where: str = "") -> None:
        """Off the kiosk catalogue; its enrolments stay. A module of the month it still had
        to run is taken off too, so its days are free for another course."""
        with self.store.write() as s:
            self._serialise(s)
            course = self._course(s, slug)
            if course.retired:
                return
            course.retired = True
            detail: dict[str, Any] = {"slug": course.slug}
            if course.featured_until is not None and course.featured_until >= self.today():
                detail["featured_cleared"] = True
                course.featured_from = course.featured_until = None
            record(s, self.ctx.clock(), actor, "course_retired", where=where, **detail)

    def restore(self, slug: str, *, actor: str, where: str = "") -> None:
        """Back on the kiosk catalogue."""
        with self.store.write() as s:
            self._serialise(s)
            course = self._course(s, slug)
            if not course.retired:
                return
            course.retired = False
            published(s, course.id, self.ctx.clock())
            record(s, self.ctx.clock(), actor, "course_restored", where=where,
                   slug=course.slug)

    def set_module_of_the_month(self, slug: str, starts: str | date, ends: str | date, *,
                                actor: str, where: str = "") -> tuple[date, date]:
        """Feature a course on the kiosks from `starts` to `ends` (Belgian days, both
        included); refused when another course is featured on one of those days."""
        today = self.today()
        errors: dict[str, str] = {}
        with self.store.write() as s:
            self._serialise(s)
            course = self._find(s, slug) if slug else None
            try:
                # A period still running may keep its first day; an ended one may not.
                running = (course.featured_from if course is not None
                           and course.featured_until is not None
                           and course.featured_until >= today else None)
                first, last = validate_period(starts, ends, today, started=running)
            except RegistryError as refusal:
                errors.update(refusal.fields)
            if not slug:
                errors["course"] = "required"
            elif course is None:
                errors["course"] = "course_not_found"
            elif course.retired:
                errors["course"] = "course_retired"
            if errors:
                raise RegistryError("invalid", errors)
            assert course is not None
            others = [Period(c.slug, c.featured_from, c.featured_until)
                      for c in s.scalars(select(Course).where(
                          Course.retired.is_(False), Course.featured_from.is_not(None),
                          Course.featured_until.is_not(None))).all()
                      if c.featured_from is not None and c.featured_until is not None]
            clash = overlapping(Period(course.slug, first, last), others, today)
            if clash is not None:
                raise RegistryError("invalid", {"featured_from": "featured_overlap"},
                                    other=clash.slug, starts=clash.starts, ends=clash.ends)
            course.featured_from, course.featured_until = first, last
            published(s, course.id, self.ctx.clock())
            record(s, self.ctx.clock(), actor, "module_of_the_month_set", where=where,
                   slug=course.slug, starts=first.isoformat(), ends=last.isoformat())
            return first, last

    def clear_module_of_the_month(self, slug: str, *, actor: str, where: str = "") -> None:
        """The course is no longer (or will not be) the module of the month."""
        with self.store.write() as s:
            self._serialise(s)
            course = self._course(s, slug)
            if course.featured_from is None and course.featured_until is None:
                return
            course.featured_from = course.featured_until = None
            record(s, self.ctx.clock(), actor, "module_of_the_month_cleared",
                   where=where, slug=course.slug)

    # Inside a transaction -------------------------------------------------------------------

    def _serialise(self, s: Session) -> None:
        # Catalogue changes are rare: they queue behind the programme row's lock, so two
        # coordinators cannot both take a slug or two overlapping months (no constraint in
        # the schema can say "no two periods overlap").
        self.ctx.seats(s)

    def _validate(self, s: Session, draft: CourseDraft, own_id: int | None) -> CleanCourse:
        taken = {slug for course_id, slug in s.execute(select(Course.id, Course.slug))
                 if course_id != own_id}
        categories = set(s.scalars(select(Category.code)).all())
        return validate_course(draft, categories=categories, taken_slugs=taken)

    @staticmethod
    def _find(s: Session, slug: str) -> Course | None:
        # A slug that cannot exist is never sent to the database (a NUL byte would make
        # PostgreSQL fail the query rather than find nothing).
        if not (len(slug) <= SLUG_MAX and SLUG_RE.fullmatch(slug)):
            return None
        return s.scalar(select(Course).where(Course.slug == slug))

    def _course(self, s: Session, slug: str) -> Course:
        course = self._find(s, slug)
        if course is None:
            raise RegistryError("not_found")
        return course

    @staticmethod
    def _values(course: Course) -> dict[str, object]:
        """What the audit entry compares: names of fields, never their text."""
        values: dict[str, object] = {"slug": course.slug, "category": course.category_code,
                                     "hours": course.hours, "position": course.position}
        for t in course.texts:
            values[f"title_{t.lang}"] = t.title
            values[f"summary_{t.lang}"] = t.summary
        return values
