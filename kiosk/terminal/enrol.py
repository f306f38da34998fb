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
from ..registry.domain import (
    CourseView,
    Enrolment,
    PatronStatus,
    RegistryError,
    Standing,
    format_card_number,
)
from ..registry_setup import registry
from . import assist, consequences, reference
from .forms import ActionForm, ConfirmForm

bp = Blueprint("enrol", __name__, url_prefix="/<lang:lang>")


def _token() -> str:
    return current_user.token


@bp.route("/courses/<slug>/enrol", methods=["GET", "POST"])
@login_required
def confirm(slug: str) -> str | Response:
    course = reference.course(slug, current_language())
    form = ActionForm()
    if form.validate_on_submit():
        registry().claim(_token(), slug, staff_token=assist.staff_token())
        return redirect(url_for("enrol.receipt", slug=slug))
    status = registry().status(_token(), current_language())
    already = any(e.course_slug == slug for e in status.enrolments)
    return render_template(
        "enrol/confirm.html",
        course=course,
        already=already,
        outlook=None if already else registry().claim_outlook(_token()),
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
        outlook=registry().claim_outlook(_token()) if status.standing is Standing.WAITING
        else None,
        academy=academy,
        qr=qr_svg(academy),
        card=current_user.view.library_card or format_card_number(current_user.view.card_number),
        member=bool(current_user.view.library_card),
        step=4,
    )


@bp.get("/my")
@login_required
def my_courses() -> str:
    status = registry().status(_token(), current_language())
    return render_template("enrol/my.html", status=status, academy=registry().academy_url())


# Each change on 'My courses' is asked once more, then done: (title, safe choice, button).
_ACTIONS = {
    "withdraw": lambda: (
        _("Stop this course?"), _("Keep this course"), _("Yes, stop this course"),
    ),
    "leave": lambda: (
        _("Leave the waiting list?"), _("Stay on the waiting list"),
        _("Yes, leave the waiting list"),
    ),
    "give-up": lambda: (
        _("Give up your seat?"), _("Keep my seat"), _("Yes, give up my seat"),
    ),
}


def _consequences(action: str, slug: str | None) -> list[str]:
    """What the change will do, by the patron's place and the programme's seat rules."""
    if action == "leave":
        return consequences.leave()
    programme = registry().programme_status()
    if action == "give-up":
        return consequences.give_up(programme)
    assert slug is not None
    status = registry().status(_token(), current_language())
    return consequences.withdraw(status, slug, programme)


def _course_to_stop(slug: str) -> CourseView | Enrolment:
    """A course from the catalogue, or one the patron chose before it was retired: a retired
    course is off the catalogue but stays among the patron's courses, and they may stop it."""
    try:
        return reference.course(slug, current_language())
    except RegistryError as missing:
        if missing.code != "course_not_found":
            raise
        status = registry().status(_token(), current_language())
        chosen = next((e for e in status.enrolments if e.course_slug == slug), None)
        if chosen is None:
            raise
        return chosen


@bp.route("/my/<action>", methods=["GET", "POST"], defaults={"slug": None})
@bp.route("/my/<action>/<slug>", methods=["GET", "POST"])
@login_required
def change(action: str, slug: str | None) -> str | Response:
    if action not in _ACTIONS or (action == "withdraw") != bool(slug):
        abort(404)
    # Known course first: an unknown one (even with a NUL byte, which PostgreSQL refuses in
    # a query) is "course not found", never sent to the registry.
    course = _course_to_stop(slug) if slug else None
    form = ConfirmForm()
    if form.confirmed():
        if action == "withdraw":
            assert slug is not None
            registry().withdraw(_token(), slug, staff_token=assist.staff_token())
        elif action == "leave":
            registry().leave_waiting_list(_token(), staff_token=assist.staff_token())
        else:
            registry().give_up_seat(_token(), staff_token=assist.staff_token())
        return redirect(url_for("enrol.my_courses", done=action))
    title, keep, button = _ACTIONS[action]()
    return render_template(
        "enrol/change.html", title=title, lines=_consequences(action, slug), keep=keep,
        back=url_for("enrol.my_courses"), button=button, course=course, courses=[], action=None,
        form=ConfirmForm(formdata=None)
    )


# --- A seat offered (offer and hold) ------------------------------------------------------------


@bp.get("/my/offer")
@login_required
def offer() -> str | Response:
    """The seat held for the patron, until when, and the two answers."""
    status = registry().status(_token(), current_language())
    if status.standing is not Standing.OFFERED:
        return redirect(url_for("enrol.my_courses"))
    return render_template("enrol/offer.html", status=status, form=ActionForm(formdata=None))


@bp.get("/my/offer/decline")
@login_required
def decline_offer() -> str | Response:
    """"No thanks" asked once more: what it gives away, "Keep my seat" first."""
    status = registry().status(_token(), current_language())
    if status.standing is not Standing.OFFERED:
        return redirect(url_for("enrol.my_courses"))
    return _decline_page(status)


def _decline_page(status: PatronStatus) -> str:
    return render_template(
        "enrol/change.html", title=_("Say no thanks to this seat?"),
        lines=consequences.decline(registry().programme_status()), keep=_("Keep my seat"),
        back=url_for("enrol.offer"), button=_("Yes, give this seat away"), course=None,
        courses=status.enrolments, form=ConfirmForm(formdata=None),
        action=url_for("enrol.answer_offer", answer="decline"))


@bp.post("/my/offer/<answer>")
@login_required
def answer_offer(answer: str) -> Response | str | tuple[str, int]:
    if answer not in ("accept", "decline"):
        abort(404)
    if not ActionForm().validate_on_submit():
        return redirect(url_for("enrol.offer"))
    if answer == "decline" and not ConfirmForm().confirmed():
        # The one tap of an older page, or a script: nothing given away before it is asked.
        status = registry().status(_token(), current_language())
        if status.standing is not Standing.OFFERED:
            return redirect(url_for("enrol.my_courses"))
        return _decline_page(status)
    try:
        if answer == "accept":
            registry().accept_offer(_token())
        else:
            registry().decline_offer(_token())
    except RegistryError as refusal:
        if refusal.code not in ("offer_expired", "no_offer"):
            raise
        status = registry().status(_token(), current_language())
        return render_template("enrol/offer.html", status=status, refusal=refusal.code,
                               form=ActionForm(formdata=None)), 409
    return redirect(url_for("enrol.my_courses", done="offer-" + answer))
