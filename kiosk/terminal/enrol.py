"""Enrol, the receipt, and 'My courses': withdraw, leave the waiting list, give up the seat."""

from __future__ import annotations

import functools

import segno
from flask import Blueprint, abort, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from werkzeug.wrappers import Response

from ..i18n import current_language
from ..registry.domain import format_card_number
from ..registry_setup import registry
from . import reference
from .forms import ActionForm

bp = Blueprint("enrol", __name__, url_prefix="/<lang:lang>")


def _token() -> str:
    return current_user.token


@bp.route("/courses/<slug>/enrol", methods=["GET", "POST"])
@login_required
def confirm(slug: str) -> str | Response:
    course = reference.course(slug, current_language())
    form = ActionForm()
    if form.validate_on_submit():
        registry().claim(_token(), slug)
        return redirect(url_for("enrol.receipt", slug=slug))
    status = registry().status(_token(), current_language())
    already = any(e.course_slug == slug for e in status.enrolments)
    return render_template(
        "enrol/confirm.html",
        course=course,
        status=status,
        already=already,
        programme=registry().programme_status(),
        form=form,
        step=3,
    )


@functools.lru_cache(maxsize=8)
def qr_svg(url: str) -> Markup:
    """Inline SVG (no image request, no script): the academy address for a phone camera."""
    svg = segno.make(url, error="m").svg_inline(border=2, omitsize=True, dark="#000", light="#fff")
    return Markup(svg)


@bp.get("/courses/<slug>/done")
@login_required
def receipt(slug: str) -> str:
    lang = current_language()
    status = registry().status(_token(), lang)
    enrolment = next((e for e in status.enrolments if e.course_slug == slug), None)
    if enrolment is None:
        abort(404)
    academy = registry().academy_url()
    return render_template(
        "enrol/receipt.html",
        enrolment=enrolment,
        status=status,
        academy=academy,
        qr=qr_svg(academy),
        card=format_card_number(current_user.view.card_number),
        step=4,
    )


@bp.get("/my")
@login_required
def my_courses() -> str:
    status = registry().status(_token(), current_language())
    return render_template("enrol/my.html", status=status, academy=registry().academy_url())


# Each change on 'My courses' is asked once more, then done: (title, explanation, button).
_ACTIONS = {
    "withdraw": lambda: (
        _("Stop this course?"),
        _("If it is your last course, your seat goes to the next person on the waiting list."),
        _("Yes, stop this course"),
    ),
    "leave": lambda: (
        _("Leave the waiting list?"),
        _("You lose your place in line. You can join again later, at the back of the line."),
        _("Yes, leave the waiting list"),
    ),
    "give-up": lambda: (
        _("Give up your seat?"),
        _("All your courses stop and your seat goes to the next person on the waiting list."),
        _("Yes, give up my seat"),
    ),
}


@bp.route("/my/<action>", methods=["GET", "POST"], defaults={"slug": None})
@bp.route("/my/<action>/<slug>", methods=["GET", "POST"])
@login_required
def change(action: str, slug: str | None) -> str | Response:
    if action not in _ACTIONS or (action == "withdraw") != bool(slug):
        abort(404)
    # Known course first: an unknown one (even with a NUL byte, which PostgreSQL refuses in
    # a query) is "course not found", never sent to the registry.
    course = reference.course(slug, current_language()) if slug else None
    form = ActionForm()
    if form.validate_on_submit():
        if action == "withdraw":
            assert slug is not None
            registry().withdraw(_token(), slug)
        elif action == "leave":
            registry().leave_waiting_list(_token())
        else:
            registry().give_up_seat(_token())
        return redirect(url_for("enrol.my_courses", done=action))
    title, text, button = _ACTIONS[action]()
    return render_template(
        "enrol/change.html", title=title, text=text, button=button, course=course, form=form
    )
