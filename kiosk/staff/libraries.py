"""The coordinator's institutions and libraries: the list, add and rename, retire and bring
back. The rules live in kiosk.registry.libraries_admin; this module only translates forms
and refusals."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField

from ..registry.domain import (
    LANGUAGES,
    MIN_AGE_HIGHEST,
    MIN_AGE_LOWEST,
    RegistryError,
)
from ..registry.libraries_admin import InstitutionRow, LibrariesAdmin, LibraryRow
from ..registry.roles import Permission
from ..terminal.forms import ActionForm, options
from .base import current_staff, nav_item, place, requires, service, show_refusal
from .labels import SIGN_UP_FIELDS
from .once import once

bp = Blueprint("libraries", __name__)

nav_item(Permission.PROGRAMME, "staff.libraries.index", _l("Libraries"))

_NAME = {"maxlength": 120, "autocomplete": "off"}
_CODE = {"autocapitalize": "characters", "spellcheck": "false", "autocomplete": "off"}


class InstitutionForm(FlaskForm):
    code = StringField(_l("Code"), render_kw={**_CODE, "maxlength": 12})
    card_prefix = StringField(_l("Card prefix"),
                              render_kw={"inputmode": "numeric", "maxlength": 4,
                                         "autocomplete": "off"})
    name_nl = StringField(_l("Name in Dutch"), render_kw={**_NAME, "lang": "nl"})
    name_fr = StringField(_l("Name in French"), render_kw={**_NAME, "lang": "fr"})
    name_en = StringField(_l("Name in English"), render_kw={**_NAME, "lang": "en"})


class LibraryForm(FlaskForm):
    library_code = StringField(_l("Code"), render_kw={**_CODE, "maxlength": 40})
    library_name = StringField(_l("Name"), render_kw=_NAME)


class SignUpRulesForm(FlaskForm):
    # Any value goes to the registry, which names a wrong one ("choice_unknown").
    phone = SelectField(_l("Phone number"), choices=[], validate_choice=False)
    postcode = SelectField(_l("Postcode"), choices=[], validate_choice=False)
    min_age = StringField(_l("Minimum age"),
                          render_kw={"inputmode": "numeric", "maxlength": 2,
                                     "autocomplete": "off"})


def admin() -> LibrariesAdmin:
    return service().libraries_admin


def _actor() -> str:
    staff = current_staff()
    assert staff is not None  # `requires` let only staff in
    return staff.actor


def _institution(code: str) -> InstitutionRow:
    found = next((i for i in admin().institutions() if i.code == code), None)
    if found is None:
        raise RegistryError("not_found")
    return found


def _library(code: str) -> tuple[InstitutionRow, LibraryRow]:
    for institution in admin().institutions():
        for library in institution.libraries:
            if library.code == code:
                return institution, library
    raise RegistryError("not_found")


def _names(form: InstitutionForm) -> dict[str, str]:
    return {lang: getattr(form, f"name_{lang}").data or "" for lang in LANGUAGES}


def _status(form: FlaskForm) -> int:
    return 422 if any(f.errors for f in form) else 200


@bp.get("/libraries")
@requires(Permission.PROGRAMME)
def index() -> str:
    return render_template("staff/libraries/index.html", institutions=admin().institutions())


# --- Institutions ------------------------------------------------------------------------


@bp.route("/libraries/institutions/new", methods=["GET", "POST"])
@requires(Permission.PROGRAMME)
@once
def add_institution() -> str | Response | tuple[str, int]:
    form = InstitutionForm()
    if form.validate_on_submit():
        try:
            admin().add_institution(form.code.data or "", form.card_prefix.data or "",
                                    _names(form), actor=_actor(), where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("The institution %(code)s is added. Add its libraries now.",
                    code=(form.code.data or "").strip().upper()))
            return redirect(url_for("staff.libraries.index"))
    return render_template("staff/libraries/institution.html", form=form,
                           institution=None), _status(form)


@bp.route("/libraries/institutions/<institution>", methods=["GET", "POST"])
@requires(Permission.PROGRAMME)
@once
def edit_institution(institution: str) -> str | Response | tuple[str, int]:
    row = _institution(institution)  # unknown: "not found" (404)
    form = InstitutionForm()
    if not form.is_submitted():
        for lang in LANGUAGES:
            getattr(form, f"name_{lang}").data = row.names.get(lang, "")
    if form.validate_on_submit():
        try:
            admin().rename_institution(institution, _names(form), actor=_actor(),
                                       where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("The names of %(code)s are saved.", code=institution))
            return redirect(url_for("staff.libraries.index"))
    return render_template("staff/libraries/institution.html", form=form,
                           institution=row, sign_up=service().sign_up_rules.rules(institution),
                           field_rules=SIGN_UP_FIELDS), _status(form)


@bp.route("/libraries/institutions/<institution>/sign-up", methods=["GET", "POST"])
@requires(Permission.PROGRAMME)
@once
def sign_up_rules(institution: str) -> str | Response | tuple[str, int]:
    """What the institution's sign-up asks and its minimum age; for sign-ups from then on."""
    row = _institution(institution)  # unknown: "not found" (404)
    book = service().sign_up_rules
    form = SignUpRulesForm()
    form.phone.choices = form.postcode.choices = options(SIGN_UP_FIELDS.items())
    if not form.is_submitted():
        rules = book.rules(institution)
        form.phone.data, form.postcode.data = str(rules.phone), str(rules.postcode)
        form.min_age.data = str(rules.min_age)
    if form.validate_on_submit():
        try:
            changed = book.set_rules(institution, form.phone.data or "",
                                     form.postcode.data or "", form.min_age.data or "",
                                     actor=_actor(), where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal,
                         params={"lowest": MIN_AGE_LOWEST, "highest": MIN_AGE_HIGHEST})
        else:
            flash(_("The sign-up of %(code)s is saved. It counts for new accounts; existing "
                    "accounts stay as they are.", code=institution) if changed else
                  _("Nothing changed in the sign-up of %(code)s.", code=institution))
            return redirect(url_for("staff.libraries.edit_institution",
                                    institution=institution))
    return render_template("staff/libraries/sign_up.html", form=form, institution=row,
                           lowest=MIN_AGE_LOWEST, highest=MIN_AGE_HIGHEST), _status(form)


@bp.post("/libraries/institutions/<institution>/retire")
@requires(Permission.PROGRAMME)
@once
def retire_institution(institution: str) -> Response:
    return _set_institution(institution, retired=True)


@bp.post("/libraries/institutions/<institution>/restore")
@requires(Permission.PROGRAMME)
@once
def restore_institution(institution: str) -> Response:
    return _set_institution(institution, retired=False)


def _set_institution(code: str, *, retired: bool) -> Response:
    if ActionForm().validate_on_submit():
        admin().set_institution_retired(code, retired, actor=_actor(), where=place())
        flash(_("%(code)s is retired: its libraries are no longer offered on the kiosks. "
                "Its patrons keep their accounts.", code=code) if retired else
              _("%(code)s is offered again on the kiosks.", code=code))
    return redirect(url_for("staff.libraries.index"))


# --- Libraries ---------------------------------------------------------------------------


@bp.route("/libraries/institutions/<institution>/new-library", methods=["GET", "POST"])
@requires(Permission.PROGRAMME)
@once
def add_library(institution: str) -> str | Response | tuple[str, int]:
    row = _institution(institution)
    form = LibraryForm()
    if form.validate_on_submit():
        try:
            admin().add_library(institution, form.library_code.data or "",
                                form.library_name.data or "", actor=_actor(), where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("The library %(name)s is added.", name=form.library_name.data))
            return redirect(url_for("staff.libraries.index"))
    return render_template("staff/libraries/library.html", form=form, institution=row,
                           library=None), _status(form)


@bp.route("/libraries/<library>", methods=["GET", "POST"])
@requires(Permission.PROGRAMME)
@once
def edit_library(library: str) -> str | Response | tuple[str, int]:
    institution, row = _library(library)
    form = LibraryForm()
    if not form.is_submitted():
        form.library_code.data, form.library_name.data = row.code, row.name
    if form.validate_on_submit():
        try:
            admin().rename_library(library, form.library_name.data or "", actor=_actor(),
                                   where=place())
        except RegistryError as refusal:
            show_refusal(form, refusal)
        else:
            flash(_("The library %(name)s is saved.", name=form.library_name.data))
            return redirect(url_for("staff.libraries.index"))
    return render_template("staff/libraries/library.html", form=form, institution=institution,
                           library=row), _status(form)


@bp.post("/libraries/<library>/retire")
@requires(Permission.PROGRAMME)
@once
def retire_library(library: str) -> Response:
    return _set_library(library, retired=True)


@bp.post("/libraries/<library>/restore")
@requires(Permission.PROGRAMME)
@once
def restore_library(library: str) -> Response:
    return _set_library(library, retired=False)


def _set_library(code: str, *, retired: bool) -> Response:
    if ActionForm().validate_on_submit():
        admin().set_library_retired(code, retired, actor=_actor(), where=place())
        flash(_("%(code)s is retired: the kiosks no longer offer it. Its patrons keep their "
                "accounts.", code=code) if retired else
              _("%(code)s is offered again on the kiosks.", code=code))
    return redirect(url_for("staff.libraries.index"))
