"""Branch IT: the terminals (online, offline, outdated, revoked), the maintenance message, and
each institution's member system (library cards)."""

from __future__ import annotations

from datetime import UTC

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from ..i18n import belgian_time
from ..registry.days import BELGIUM
from ..registry.domain import RegistryError, is_outdated, terminal_state
from ..registry.member_system import MemberSystemConfig
from ..registry.roles import Permission
from ..terminal.forms import ActionForm, ConfirmForm
from ..terminal.messages import field_message
from ..version import __version__
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
from .forms import MaintenanceForm, MemberSystemForm
from .once import once

bp = Blueprint("it", __name__)

nav_item(Permission.TERMINALS, "staff.it.terminals", _l("Terminals"))
nav_item(Permission.MAINTENANCE, "staff.it.maintenance", _l("Maintenance message"))
nav_item(Permission.MEMBER_SYSTEMS, "staff.it.member_systems", _l("Library cards"))


@bp.get("/terminals")
@requires(Permission.TERMINALS)
def terminals() -> str:
    now = service().clock()
    rows = [(t, terminal_state(t, now, __version__)) for t in service().terminals()]
    counts = {state: sum(1 for _t, s in rows if s == state)
              for state in ("online", "offline", "outdated", "revoked")}
    libraries = {lib.code: lib.name for i in service().institutions() for lib in i.libraries}
    return render_template("staff/terminals.html", rows=rows, counts=counts, libraries=libraries,
                           version=__version__,
                           outdated=lambda t: is_outdated(t, __version__))


@bp.route("/terminals/<int:terminal_id>/revoke", methods=["GET", "POST"])
@requires(Permission.TERMINALS)
@once
def revoke(terminal_id: int) -> Response | str:
    """Asked once more (GET, or a POST without confirm=yes), then done."""
    if not ConfirmForm().confirmed():
        terminal = next((t for t in service().terminals() if t.id == terminal_id), None)
        if terminal is None:
            abort(404)
        if terminal.revoked:
            return redirect(url_for("staff.it.terminals"))
        library = next((lib.name for i in service().institutions() for lib in i.libraries
                        if lib.code == terminal.library_code), terminal.library_code)
        return confirmation(_("Revoke the token of terminal %(name)s?", name=terminal.name),
                            consequences.revoke_terminal(terminal, library),
                            url_for("staff.it.terminals"), _("Yes, revoke the token"))
    if ActionForm().validate_on_submit():
        staff = current_staff()
        assert staff is not None
        service().revoke_terminal(terminal_id, actor=staff.actor, where=place())
        flash(_("Terminal %(id)s can no longer reach the registry. Give the PC a new token "
                "with `kiosk registry add-terminal` to bring it back.", id=terminal_id))
    return redirect(url_for("staff.it.terminals"))


@bp.route("/maintenance", methods=["GET", "POST"])
@requires(Permission.MAINTENANCE)
@once
def maintenance() -> str | Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    form = MaintenanceForm()
    current = service().maintenance()
    if not form.is_submitted() and current is not None:
        form.nl.data, form.fr.data, form.en.data = (current.messages.get(k, "")
                                                    for k in ("nl", "fr", "en"))
        form.until.data = belgian_time(current.until).replace(tzinfo=None)
    if form.validate_on_submit():
        until = form.until.data
        if until is None:
            form.until.errors = [*form.until.errors, field_message("until", "required")]
        else:
            utc = until.replace(tzinfo=BELGIUM).astimezone(UTC).replace(tzinfo=None)
            try:
                service().set_maintenance({"nl": form.nl.data or "", "fr": form.fr.data or "",
                                           "en": form.en.data or ""}, utc,
                                          actor=staff.actor, where=place())
            except RegistryError as refusal:
                show_refusal(form, refusal)
            else:
                flash(_("Every kiosk now shows the maintenance message."))
                return redirect(url_for("staff.it.maintenance"))
    status = 422 if form.errors else 200
    return render_template("staff/maintenance.html", form=form, current=current), status


@bp.post("/maintenance/clear")
@requires(Permission.MAINTENANCE)
@once
def clear_maintenance() -> Response:
    staff = current_staff()
    assert staff is not None
    if ActionForm().validate_on_submit():
        service().clear_maintenance(actor=staff.actor, where=place())
        flash(_("The maintenance message is gone: kiosks show the courses again."))
    return redirect(url_for("staff.it.maintenance"))


# --- Library cards: each institution's member system (SIP2) ------------------------------


@bp.get("/library-cards")
@requires(Permission.MEMBER_SYSTEMS)
def member_systems() -> str:
    """Which institutions' members sign in with their library card, and how the registry
    reaches their member system (never its password: only the file that holds it)."""
    settings = {s.institution_code: s for s in service().members.settings()}
    return render_template("staff/member_systems.html", institutions=service().institutions(),
                           settings=settings)


@bp.route("/library-cards/<institution>", methods=["GET", "POST"])
@requires(Permission.MEMBER_SYSTEMS)
@once
def member_system(institution: str) -> str | Response | tuple[str, int]:
    staff = current_staff()
    assert staff is not None
    known = {i.code: i for i in service().institutions()}
    if institution not in known:
        abort(404)
    current = next((s for s in service().members.settings()
                    if s.institution_code == institution), None)
    form = MemberSystemForm(obj=current.config if current else None)
    if form.validate_on_submit():
        config = MemberSystemConfig(
            host=(form.host.data or "").strip(), port=form.port.data or 0,
            tls=bool(form.tls.data), login_user=(form.login_user.data or "").strip(),
            password_file=(form.password_file.data or "").strip(),
            location_code=(form.location_code.data or "").strip(),
            sip_institution=(form.sip_institution.data or "").strip(),
            timeout=float(form.timeout.data or 0))
        try:
            service().members.configure(institution, config, actor=staff.actor)
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("Members of %(institution)s now sign in with their library card. Check "
                    "below that the member system answers.", institution=institution))
            return redirect(url_for("staff.it.member_systems"))
    status = 422 if form.errors else 200
    return render_template("staff/member_system.html", form=form, institution=known[institution],
                           current=current), status


@bp.post("/library-cards/<institution>/remove")
@requires(Permission.MEMBER_SYSTEMS)
@once
def remove_member_system(institution: str) -> Response:
    staff = current_staff()
    assert staff is not None
    if ActionForm().validate_on_submit():
        try:
            service().members.remove(institution, actor=staff.actor)
        except RegistryError:
            abort(404)
        flash(_("Members of %(institution)s no longer sign in with their library card.",
                institution=institution))
    return redirect(url_for("staff.it.member_systems"))


@bp.post("/library-cards/check")
@requires(Permission.MEMBER_SYSTEMS)
def check_member_systems() -> Response:
    """Ask each member system now (a SIP log-in and a question about a card that does not
    exist): the answer, or why there is none, for each."""
    if ActionForm().validate_on_submit():
        for institution, ok, what in service().members.doctor():
            if ok:
                flash(_("%(institution)s: the member system answers.", institution=institution))
            else:
                flash(_("%(institution)s: the member system does not answer (%(why)s).",
                        institution=institution, why=what))
    return redirect(url_for("staff.it.member_systems"))
