"""The start screen, the language choice, the privacy statement, and ending a visit."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ..security import csrf, end_visit, safe_next
from .forms import ActionForm

bp = Blueprint("start", __name__)

TEXT_SIZES = ("normal", "large", "larger")


@bp.get("/")
def root() -> Response:
    return redirect(url_for("start.home", lang=current_app.config["DEFAULT_LANGUAGE"]))


@bp.get("/<lang:lang>/")
def home() -> str:
    notice = session.pop("notice", None)
    return render_template("start/home.html", notice=notice, step=1)


@bp.get("/<lang:lang>/privacy")
def privacy() -> str:
    return render_template("start/privacy.html")


@bp.post("/<lang:lang>/text-size/<size>")
def text_size(size: str) -> Response:
    if ActionForm().validate_on_submit() and size in TEXT_SIZES:
        session["text_size"] = size
    return redirect(safe_next(request.form.get("next"), url_for("start.home")))


@bp.post("/<lang:lang>/logout")
def logout() -> Response:
    end_visit()
    session["notice"] = "logged_out"
    return redirect(url_for("start.home"))


@bp.post("/visit/reset")
@csrf.exempt
def reset() -> Response:
    """The idle timer ran out: wipe the visit and return to the branch's language.

    Exempt from CSRF: it only ends a visit (a cross-site post carries no Lax cookie anyway),
    and an out-of-date token must not turn the reset into an "expired" page.
    """
    end_visit()
    return redirect(url_for("start.home", lang=current_app.config["DEFAULT_LANGUAGE"]))


@bp.post("/visit/extend")
@csrf.exempt
def extend() -> tuple[str, int]:
    """'Still there? — Yes': the before-request hook has already counted this as activity.

    Exempt from CSRF: it changes nothing but a timestamp, and a stale token must not turn a
    patron's 'yes' into an error page.
    """
    return "", 204
