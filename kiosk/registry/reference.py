"""Reference data as the kiosks show it: institutions and libraries, the course catalogue in a
language, one course, the programme's seat counts, the academy's address. Reads only; each
one read transaction.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from .context import RegistryContext
from .days import belgian_date
from .domain import (
    Catalogue,
    CategoryView,
    CourseView,
    InstitutionView,
    LibraryView,
    ProgrammeStatus,
    RegistryError,
)
from .signup_rules import SignUpRulesBook
from .store import (
    THE_PROGRAMME,
    Category,
    Course,
    CourseText,
    Institution,
    MemberSystem,
    Programme,
    Runner,
)


class Reference:
    def __init__(self, ctx: RegistryContext, *, sign_up: SignUpRulesBook):
        self.ctx = ctx
        self.sign_up = sign_up

    def institutions(self) -> list[InstitutionView]:
        """The institutions and libraries the kiosks offer: the retired ones left out (the
        console lists every one: `libraries_admin`)."""
        with self.ctx.store.read() as s:
            rows = s.scalars(select(Institution).where(Institution.retired.is_(False))
                             .order_by(Institution.code)).all()
            with_cards = set(s.scalars(select(MemberSystem.institution_id)))
            return [
                InstitutionView(
                    code=i.code,
                    names=dict(i.names),
                    libraries=[LibraryView(code=lib.code, name=lib.name) for lib in i.libraries
                               if not lib.retired],
                    member_cards=i.id in with_cards,
                    sign_up=self.sign_up.of(i),
                )
                for i in rows
            ]

    def catalogue(self, lang: str) -> Catalogue:
        today = belgian_date(self.ctx.clock())  # a module of the month runs on Belgian days
        with self.ctx.store.read() as s:
            cats = s.scalars(select(Category).order_by(Category.position)).all()
            courses = s.scalars(
                select(Course).where(Course.retired.is_(False)).order_by(Course.position)
            ).all()
            return Catalogue(
                categories=[CategoryView(c.code, c.names.get(lang, c.code)) for c in cats],
                courses=[self.course_view(c, lang, today) for c in courses],
            )

    def course(self, slug: str, lang: str) -> CourseView:
        with self.ctx.store.read() as s:
            course = self.active_course(s, slug)
            return self.course_view(course, lang, belgian_date(self.ctx.clock()))

    def programme_status(self) -> ProgrammeStatus:
        with self.ctx.store.read() as s:
            row = s.execute(
                select(Programme.cap, Programme.seats_taken, Programme.waiting,
                       Programme.promotion)
                .where(THE_PROGRAMME)
            ).first()
            if row is None:
                raise RegistryError("not_set_up")
            return ProgrammeStatus(cap=row[0], seats_taken=row[1], waiting=row[2] or 0,
                                   promotion=row[3] or "grant")

    def academy_url(self) -> str:
        with self.ctx.store.read() as s:
            return s.scalar(select(Programme.academy_url).where(THE_PROGRAMME)) or ""

    # --- Inside a transaction ------------------------------------------------------------

    @staticmethod
    def active_course_id(s: Runner, slug: str) -> int:
        course_id = s.scalar(select(Course.id).where(Course.slug == slug,
                                                     Course.retired.is_(False)))
        if course_id is None:
            raise RegistryError("course_not_found")
        return course_id

    @staticmethod
    def active_course(s: Session, slug: str) -> Course:
        course = s.scalar(select(Course).where(Course.slug == slug, Course.retired.is_(False)))
        if course is None:
            raise RegistryError("course_not_found")
        return course

    @staticmethod
    def text(course: Course, lang: str) -> CourseText:
        texts = {t.lang: t for t in course.texts}
        return texts.get(lang) or texts.get("en") or next(iter(texts.values()))

    def course_view(self, c: Course, lang: str, today: date) -> CourseView:
        text = self.text(c, lang)
        featured = bool(
            c.featured_from and c.featured_until and c.featured_from <= today <= c.featured_until
        )
        return CourseView(c.slug, c.category_code, text.title, text.summary, c.hours, featured)
