"""The coordinator's catalogue pages: the course list, add and edit a course (in nl, fr and
en), retire and bring back, the module of the month. The rules live in
kiosk.registry.catalogue_admin; this module only translates forms and refusals."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField, TextAreaField

from ..i18n import current_language, long_date
from ..registry.catalogue_admin import CatalogueAdmin, CourseDraft, CourseRow
from ..registry.domain import LANGUAGES, RegistryError, matches_all_words
from ..registry.roles import Permission
from ..terminal.forms import ActionForm, ConfirmForm, options
from ..terminal.reference import FRESH_FOR
from . import consequences
from .base import (
    confirmation,
    current_staff,
    nav_item,
    place,
    requires,
    service,
    show_refusal,
)
from .once import once

bp = Blueprint("courses", __name__)

nav_item(Permission.CATALOGUE, "staff.courses.index", _l("Courses"))

# How long a kiosk may show the catalogue it fetched (kiosk.terminal.reference): the
# longest a change takes to reach every kiosk. Said on the pages, so nobody waits longer.
KIOSK_DELAY = int(FRESH_FOR)


class CourseForm(FlaskForm):
    # Plain text fields: the registry checks the values and says what is wrong in words a
    # coordinator understands (WTForms' own number errors are not translated).
    title_nl = StringField(_l("Title in Dutch"), render_kw={"lang": "nl"})
    summary_nl = TextAreaField(_l("Summary in Dutch"), render_kw={"lang": "nl", "rows": 3})
    title_fr = StringField(_l("Title in French"), render_kw={"lang": "fr"})
    summary_fr = TextAreaField(_l("Summary in French"), render_kw={"lang": "fr", "rows": 3})
    title_en = StringField(_l("Title in English"), render_kw={"lang": "en"})
    summary_en = TextAreaField(_l("Summary in English"), render_kw={"lang": "en", "rows": 3})
    category = SelectField(_l("Category"), choices=[], validate_choice=False)
    hours = StringField(_l("Hours of study"), render_kw={"inputmode": "numeric", "maxlength": 3,
                                                         "autocomplete": "off"})
    position = StringField(_l("Position in its category"),
                           render_kw={"inputmode": "numeric", "maxlength": 4,
                                      "autocomplete": "off"})
    slug = StringField(_l("Web address name"),
                       render_kw={"autocapitalize": "none", "spellcheck": "false",
                                  "autocomplete": "off", "maxlength": 80})


class FeatureForm(FlaskForm):
    course = SelectField(_l("Course"), choices=[], validate_choice=False)
    # A date picker (no maxlength: HTML allows it on text-like inputs only).
    featured_from = StringField(_l("First day"), render_kw={"type": "date"})
    featured_until = StringField(_l("Last day"), render_kw={"type": "date"})


def admin() -> CatalogueAdmin:
    return service().courses_admin


def _actor() -> str:
    staff = current_staff()
    assert staff is not None  # `requires` let only staff in
    return staff.actor


def _forget_catalogue() -> None:
    """Where the kiosk runs in this same app (the embedded registry), it shows the change at
    once; kiosks elsewhere fetch the catalogue again within KIOSK_DELAY seconds."""
    cache = current_app.extensions.get("reference_cache")
    if cache:
        for key in list(cache):
            if key and key[0] == "catalogue":
                cache.pop(key, None)


def _row(slug: str) -> CourseRow | None:
    return next((r for r in admin().courses(current_language()) if r.slug == slug), None)


def _has_errors(form: FlaskForm) -> bool:
    return any(f.errors for f in form)


# --- The list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryPart:
    """One category of the course list: folded away (<details>) unless it is the one chosen
    or a search found courses in it, so 30 courses are a screen of headings, not a scroll."""

    code: str
    name: str
    rows: list[CourseRow]
    open: bool


def category_parts(rows: list[CourseRow], categories: list[tuple[str, str]], chosen: str,
                   query: str) -> list[CategoryPart]:
    """The courses by category in kiosk order; with a search, only the courses it finds, in
    the categories they are in, each of those open."""
    if query:
        rows = [r for r in rows if matches_all_words(query, f"{r.title} {r.slug}")]
    return [CategoryPart(code, name, found, open=bool(query) or code == chosen)
            for code, name in categories
            if (found := [r for r in rows if r.category_code == code]) or not query]


@bp.get("/courses")
@requires(Permission.CATALOGUE)
def index() -> str:
    lang = current_language()
    rows = admin().courses(lang)
    active = sum(1 for r in rows if not r.retired)
    query = request.args.get("q", "").strip()[:100]
    parts = category_parts(rows, admin().categories(lang), request.args.get("category", ""),
                           query)
    return render_template("staff/courses/index.html", parts=parts, query=query,
                           found=sum(len(p.rows) for p in parts), active=active,
                           retired=len(rows) - active, today=admin().today(),
                           delay=KIOSK_DELAY, alerts=service().alerts.counts(lang))


def _back_to(slug: str) -> Response:
    """The course list with this course's category open."""
    row = _row(slug)
    return redirect(url_for("staff.courses.index", category=row.category_code if row else None))


# --- Add and edit ---------------------------------------------------------------------------


def _category_choices(form: CourseForm) -> None:
    form.category.choices = options([("", _("Choose a category")),
                                     *admin().categories(current_language())])


def _draft(form: CourseForm) -> CourseDraft:
    return CourseDraft(
        slug=form.slug.data or "", category=form.category.data or "",
        hours=form.hours.data or "", position=form.position.data or "",
        titles={lang: getattr(form, f"title_{lang}").data or "" for lang in LANGUAGES},
        summaries={lang: getattr(form, f"summary_{lang}").data or "" for lang in LANGUAGES},
    )


@bp.route("/courses/new", methods=["GET", "POST"])
@requires(Permission.CATALOGUE)
@once
def add() -> str | Response | tuple[str, int]:
    form = CourseForm()
    _category_choices(form)
    if form.validate_on_submit():
        try:
            slug = admin().add(_draft(form), actor=_actor(), where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            _forget_catalogue()
            flash(_("The course “%(title)s” is in the catalogue. Kiosks show it within "
                    "%(seconds)s seconds.", title=_title(slug), seconds=KIOSK_DELAY))
            return redirect(url_for("staff.courses.index"))
    return render_template("staff/courses/form.html", form=form, details=None, row=None,
                           delay=KIOSK_DELAY), 422 if _has_errors(form) else 200


@bp.route("/courses/<slug>/edit", methods=["GET", "POST"])
@requires(Permission.CATALOGUE)
@once
def edit(slug: str) -> str | Response | tuple[str, int]:
    details = admin().details(slug)  # an unknown slug: "not found" (404)
    form = CourseForm()
    _category_choices(form)
    if not form.is_submitted():
        form.slug.data, form.category.data = details.slug, details.category
        form.hours.data, form.position.data = str(details.hours), str(details.position)
        for lang in LANGUAGES:
            getattr(form, f"title_{lang}").data = details.titles.get(lang, "")
            getattr(form, f"summary_{lang}").data = details.summaries.get(lang, "")
    if form.validate_on_submit():
        try:
            new_slug = admin().change(slug, _draft(form), actor=_actor(), where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            _forget_catalogue()
            flash(_("The changes to “%(title)s” are saved. Kiosks show them within "
                    "%(seconds)s seconds.", title=_title(new_slug), seconds=KIOSK_DELAY))
            return redirect(url_for("staff.courses.index"))
    return render_template("staff/courses/form.html", form=form, details=details,
                           row=_row(slug), delay=KIOSK_DELAY), 422 if _has_errors(form) else 200


def _title(slug: str) -> str:
    row = _row(slug)
    return row.title if row else slug


# --- Retire and bring back --------------------------------------------------------------------


@bp.route("/courses/<slug>/retire", methods=["GET", "POST"])
@requires(Permission.CATALOGUE)
@once
def retire(slug: str) -> Response | str:
    """Asked once more (GET, or a POST without confirm=yes), then done."""
    if not ConfirmForm().confirmed():
        row = _row(slug)
        if row is None:
            abort(404)
        if row.retired:
            return _back_to(slug)
        return confirmation(_("Retire “%(title)s”?", title=row.title),
                            consequences.retire_course(row.enrolments, KIOSK_DELAY),
                            url_for("staff.courses.index", category=row.category_code),
                            _("Yes, retire the course"))
    if ActionForm().validate_on_submit():
        admin().retire(slug, actor=_actor(), where=place())
        _forget_catalogue()
        row = _row(slug)
        count = row.enrolments if row else 0
        flash(_("“%(title)s” is retired: kiosks stop offering it within %(seconds)s seconds.",
                title=_title(slug), seconds=KIOSK_DELAY))
        if count:
            flash(ngettext("%(num)s patron who chose it keeps it among their courses.",
                           "%(num)s patrons who chose it keep it among their courses.", count))
    return _back_to(slug)


@bp.post("/courses/<slug>/restore")
@requires(Permission.CATALOGUE)
@once
def restore(slug: str) -> Response:
    if ActionForm().validate_on_submit():
        admin().restore(slug, actor=_actor(), where=place())
        _forget_catalogue()
        flash(_("“%(title)s” is offered again: kiosks show it within %(seconds)s seconds.",
                title=_title(slug), seconds=KIOSK_DELAY))
    return _back_to(slug)


# --- Module of the month --------------------------------------------------------------------


def _next_month(today: date) -> tuple[date, date]:
    first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


@bp.route("/courses/module-of-the-month", methods=["GET", "POST"])
@requires(Permission.CATALOGUE)
@once
def module_of_the_month() -> str | Response | tuple[str, int]:
    rows = admin().courses(current_language())
    today = admin().today()
    form = FeatureForm()
    form.course.choices = options([("", _("Choose a course")),
                                   *((r.slug, r.title) for r in rows if not r.retired)])
    if not form.is_submitted():
        first, last = _next_month(today)
        form.featured_from.data, form.featured_until.data = first.isoformat(), last.isoformat()
    if form.validate_on_submit():
        try:
            starts, ends = admin().set_module_of_the_month(
                form.course.data or "", form.featured_from.data or "",
                form.featured_until.data or "", actor=_actor(), where=place())
        except RegistryError as refusal:
            params: dict[str, object] = {}
            begins, stops = refusal.detail.get("starts"), refusal.detail.get("ends")
            if "other" in refusal.detail and isinstance(begins, date) \
                    and isinstance(stops, date):
                other = next((r for r in rows if r.slug == refusal.detail["other"]), None)
                params = {"title": other.title if other else refusal.detail["other"],
                          "starts": long_date(begins), "ends": long_date(stops)}
            show_refusal(form, refusal, params=params)
        else:
            _forget_catalogue()
            flash(_("“%(title)s” is the module of the month from %(starts)s until %(ends)s.",
                    title=_title(form.course.data or ""), starts=long_date(starts),
                    ends=long_date(ends)))
            return redirect(url_for("staff.courses.module_of_the_month"))
    periods = sorted((r for r in rows if r.featured_from and r.featured_until and not r.retired),
                     key=lambda r: r.featured_from or today)
    return render_template("staff/courses/module_of_the_month.html", form=form,
                           periods=periods, today=today,
                           delay=KIOSK_DELAY), 422 if _has_errors(form) else 200


@bp.post("/courses/<slug>/module-of-the-month/clear")
@requires(Permission.CATALOGUE)
@once
def clear_module_of_the_month(slug: str) -> Response:
    if ActionForm().validate_on_submit():
        admin().clear_module_of_the_month(slug, actor=_actor(), where=place())
        _forget_catalogue()
        flash(_("“%(title)s” is no longer the module of the month.", title=_title(slug)))
    return redirect(url_for("staff.courses.module_of_the_month"))
