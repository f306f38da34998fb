"""The course catalogue: categories, the module of the month, a filter, a search box."""

from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from flask_babel import ngettext

from ..i18n import current_language
from ..registry.domain import matches_all_words
from ..registry_setup import registry
from . import reference

bp = Blueprint("catalogue", __name__, url_prefix="/<lang:lang>/courses")


@bp.get("/")
def index() -> str:
    lang = current_language()
    catalogue = reference.catalogue(lang)
    category = request.args.get("category", "")
    query = request.args.get("q", "").strip()[:100]
    known = {c.code for c in catalogue.categories}
    if category not in known:
        category = ""
    courses = catalogue.courses
    if category:
        courses = [c for c in courses if c.category == category]
    if query:
        courses = [c for c in courses if matches_all_words(query, f"{c.title} {c.summary}")]
    # Per page, not per card: 30 cards need only a handful of distinct labels.
    hours = {c.hours: ngettext("about %(num)s hour", "about %(num)s hours", c.hours)
             for c in courses}
    groups = [
        (cat, [c for c in courses if c.category == cat.code])
        for cat in catalogue.categories
    ]
    return render_template(
        "catalogue/index.html",
        groups=[(cat, items) for cat, items in groups if items],
        categories=catalogue.categories,
        category=category,
        query=query,
        found=len(courses),
        featured=catalogue.module_of_the_month,
        hours=hours,
        course_url=url_for("catalogue.course", slug="-").rstrip("-"),
        programme=registry().programme_status(),
        step=2,
    )


@bp.get("/<slug>")
def course(slug: str) -> str:
    catalogue = reference.catalogue(current_language())
    course = reference.course(slug, current_language())
    category = next((c for c in catalogue.categories if c.code == course.category), None)
    return render_template(
        "catalogue/course.html",
        course=course,
        category=category,
        programme=registry().programme_status(),
        step=2,
    )
