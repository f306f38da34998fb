"""The possible-duplicates queue: two accounts with the same name and date of birth, side by
side; staff merge them (keeping the account they choose) or dismiss the warning. A pair with
another institution's account shows that side masked and leaves the merge to a coordinator;
dismissing stays open to both librarians, as it changes no account. Only translation happens
here: the rules are in kiosk.registry.verification."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import RadioField
from wtforms.validators import InputRequired

from ..i18n import current_language
from ..registry.domain import RegistryError, format_card_number, format_phone
from ..registry.roles import Permission
from ..registry.verification import DuplicatePair
from ..terminal.forms import ActionForm, options
from ..terminal.messages import MESSAGES, message
from .base import current_staff, nav_item, place, requires, service
from .labels import Names
from .once import once

bp = Blueprint("duplicates", __name__)

nav_item(Permission.DUPLICATES, "staff.duplicates.index", _l("Possible duplicates"))



class MergeForm(FlaskForm):
    keep = RadioField(_l("Keep this account"), coerce=int, choices=[],
                      validators=[InputRequired(MESSAGES["keep_unknown"])])


def _pair(flag_id: int) -> DuplicatePair | Response:
    """The flag, if one of its accounts belongs to this staff member's institution (the
    registry answers "not_found", a 404, otherwise); one a colleague has dismissed meanwhile
    sends them back to the queue with a word."""
    staff = current_staff()
    assert staff is not None
    try:
        return service().verification.duplicate(flag_id, staff)
    except RegistryError as refusal:
        if refusal.code != "duplicate_resolved":
            raise
        flash(message("duplicate_resolved"))
        return redirect(url_for("staff.duplicates.index"))


def _merge_form(pair: DuplicatePair, formdata: bool = True) -> MergeForm:
    form = MergeForm() if formdata else MergeForm(formdata=None)
    form.keep.choices = options(
        (side.patron_id, _("The account with card %(card)s", card=format_card_number(
            side.card_number))) for side in (pair.older, pair.newer))
    return form


@bp.get("/duplicates")
@requires(Permission.DUPLICATES)
def index() -> str:
    staff = current_staff()
    assert staff is not None
    pairs = service().verification.duplicates(staff)
    return render_template("staff/duplicates/index.html", pairs=pairs)


@bp.get("/duplicates/<int:flag_id>")
@requires(Permission.DUPLICATES)
def compare(flag_id: int) -> str | tuple[str, int] | Response:
    pair = _pair(flag_id)
    if isinstance(pair, Response):
        return pair
    return _compare_page(pair, _merge_form(pair, formdata=False))


def _compare_page(pair: DuplicatePair, form: MergeForm,
                  status: int = 200) -> tuple[str, int] | str:
    page = render_template("staff/duplicates/compare.html", pair=pair, form=form,
                           course=Names.read(service(), current_language()).course,
                           card=format_card_number, phone=format_phone)
    return (page, status) if status != 200 else page


@bp.post("/duplicates/<int:flag_id>/merge")
@requires(Permission.DUPLICATES)
@once
def merge(flag_id: int) -> Response | tuple[str, int] | str:
    staff = current_staff()
    assert staff is not None
    pair = _pair(flag_id)
    if isinstance(pair, Response):
        return pair
    if not pair.mergeable:
        abort(404)  # a forged form: as for a flag they may not see
    form = _merge_form(pair)
    if form.validate_on_submit():
        try:
            service().verification.merge(flag_id, form.keep.data, staff, where=place())
        except RegistryError as refusal:
            if refusal.code != "invalid" or "keep" not in refusal.fields:
                raise
            form.keep.errors = [*form.keep.errors, message(refusal.fields["keep"])]
        else:
            kept = pair.older if pair.older.patron_id == form.keep.data else pair.newer
            flash(_("The two accounts are one now: card %(card)s is kept, the other account "
                    "is erased.", card=format_card_number(kept.card_number)))
            return redirect(url_for("staff.duplicates.index"))
    return _compare_page(pair, form, status=422)


@bp.post("/duplicates/<int:flag_id>/dismiss")
@requires(Permission.DUPLICATES)
@once
def dismiss(flag_id: int) -> Response:
    staff = current_staff()
    assert staff is not None
    pair = _pair(flag_id)
    if isinstance(pair, Response):
        return pair
    if ActionForm().validate_on_submit():
        service().verification.dismiss(flag_id, staff, where=place())
        flash(_("The warning is dismissed: these are two different people, both accounts "
                "stay."))
    return redirect(url_for("staff.duplicates.index"))
