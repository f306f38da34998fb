"""'New courses by e-mail', from My courses: the patron chooses categories, with a consent of
their own; none is "stop all" (kiosk.registry.alerts)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ..i18n import current_language
from ..registry.domain import RegistryError
from ..registry_setup import registry
from .forms import AlertsForm, options
from .messages import refusal_on_form

bp = Blueprint("alerts", __name__, url_prefix="/<lang:lang>")

STOP = "stop"  # the value of the "stop all" button


@bp.route("/my/new-courses", methods=["GET", "POST"])
@login_required
def choose() -> str | Response | tuple[str, int]:
    choice = registry().alerts(current_user.token, current_language())
    form = AlertsForm()
    form.categories.choices = options((c.code, c.name) for c in choice.categories)
    if request.method == "GET":
        form.categories.data = list(choice.chosen)
    error = None
    if form.validate_on_submit():
        stop = request.form.get("action") == STOP
        wanted = [] if stop else list(form.categories.data or [])
        try:
            registry().choose_alerts(current_user.token, wanted, bool(form.consent.data))
        except RegistryError as refusal:
            error = refusal_on_form(form, refusal)
        else:
            return redirect(url_for("alerts.choose", done="saved" if wanted else "stopped"))
    form.consent.data = False  # asked anew, never ticked in advance
    status = 422 if form.errors or error else 200
    return render_template("enrol/alerts.html", form=form, choice=choice, error=error,
                           stop=STOP), status
