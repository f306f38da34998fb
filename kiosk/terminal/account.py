"""Create a library account, log in, and see the new card number."""

from __future__ import annotations

from datetime import date

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user
from werkzeug.wrappers import Response

from ..i18n import current_language
from ..registry.domain import (
    NewPatron,
    PatronView,
    RegistryError,
    SignUpRules,
    Standing,
    format_card_number,
    format_phone,
)
from ..registry_setup import registry
from ..security import end_visit, safe_next
from . import assist, reference
from .forms import (
    ChangePasswordForm,
    EraseForm,
    LoginForm,
    MyDetailsForm,
    RegisterForm,
    follow_sign_up_rules,
    month_options,
    sign_up_key,
)
from .messages import UNAVAILABLE, account_locked, field_message, message, refusal_on_form
from .patron import Patron

bp = Blueprint("account", __name__, url_prefix="/<lang:lang>")

def _library_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """Libraries grouped by institution, for <optgroup>s."""
    lang = current_language()
    return [
        (inst.names.get(lang, inst.code), [(lib.code, lib.name) for lib in inst.libraries])
        for inst in reference.institutions()
    ]


def _prepare(form: RegisterForm) -> None:
    form.birth_month.choices = month_options(current_language(), _("Month"))
    if not form.is_submitted() and not form.library.data:
        form.library.data = current_app.config["LIBRARY_CODE"]


def _birth_date(form: RegisterForm) -> str:
    """The three boxes as 'year-month-day'; the registry says whether it is a real date."""
    parts = (form.birth_year.data, form.birth_month.data, form.birth_day.data)
    return "-".join((p or "").strip() for p in parts)


def _sign_up_rules(form: RegisterForm) -> SignUpRules:
    """What the chosen library's institution asks; with no library chosen (or one the
    kiosks do not offer), the programme's rules until one is."""
    return (reference.sign_up_rules(form.library.data or "")
            or SignUpRules(min_age=current_app.config["MIN_AGE"]))


def _shown_for_other_rules(form: RegisterForm, rules: SignUpRules) -> bool:
    """The form was shown for a library whose institution asks other things (the patron
    chose another library): it is shown again for the chosen one rather than sent, so no
    JavaScript is needed. (A form without the field, of an older page, is sent: the registry
    checks every sign-up against the library's rules anyway.)"""
    shown = form.sign_up_shown.data
    return bool(shown) and shown != sign_up_key(rules)


def _show_errors(form: RegisterForm, fields: dict[str, str], rules: SignUpRules) -> None:
    target = {"birth_date": form.birth_day, "library_code": form.library}
    for name, code in fields.items():
        field = target.get(name) or getattr(form, name, None)
        if field is not None:
            params = {"age": rules.min_age} if code == "too_young" else {}
            field.errors = [*field.errors, field_message(name, code, **params)]


@bp.route("/account/new", methods=["GET", "POST"])
def register() -> str | Response | tuple[str, int]:
    form = RegisterForm()
    _prepare(form)
    rules = _sign_up_rules(form)
    follow_sign_up_rules(form, rules)
    email_taken = False
    problem = None
    changed_library = False
    helper = assist.assistant()
    if helper is not None and not assist.handed_back() and request.form.get("hand_back"):
        # Assisted: the patron types their password privately; what is typed stays, and
        # the librarian's "identity document checked" is kept where the patron cannot tick it.
        assist.hand_back_keeping(bool(form.identity_checked.data))  # CSRF: checked app-wide
        form.password.data = ""
        form.sign_up_shown.data = sign_up_key(rules)
        return render_template("account/register.html", form=form, rules=rules,
                               library_groups=_library_groups(), email_taken=False,
                               problem=None, step=1, assist_form_id="register-form")
    if form.is_submitted() and _shown_for_other_rules(form, rules):
        changed_library = True  # what was typed stays; the password is typed again
    elif form.validate_on_submit():
        data = NewPatron(
            first_name=form.first_name.data or "",
            last_name=form.last_name.data or "",
            email=form.email.data or "",
            birth_date=_birth_date(form),
            postcode=form.postcode.data or "",
            library_code=form.library.data or "",
            phone=form.phone.data or "",
            password=form.password.data or "",
            language=current_language(),
            consent=bool(form.consent.data),
        )
        try:
            staff_token, identity_checked = _assisted_sign_up(form)
            made = registry().register_account(data, staff_token=staff_token,
                                               identity_checked=identity_checked)
            card = made.card_number
        except RegistryError as error:
            if error.code in UNAVAILABLE:  # keep everything typed for the retry
                problem = message(error.code)
            elif error.code != "invalid":
                raise
            else:
                email_taken = error.fields.get("email") == "email_taken"
                _show_errors(form, error.fields, rules)
        else:
            token, patron = registry().login(card, data.password)
            _start_patron_visit(token, patron)
            session["just_registered"] = True
            # Only a yes/no: whose account it may duplicate stays in the registry.
            session["possible_duplicate"] = made.possible_duplicate
            return redirect(url_for("account.created"))
    form.sign_up_shown.data = sign_up_key(rules)
    page = render_template(
        "account/register.html",
        form=form,
        rules=rules,
        changed_library=changed_library,
        library_groups=_library_groups(),
        email_taken=email_taken,
        problem=problem,
        step=1,
        assist_form_id="register-form",
    )
    return page, 422 if form.errors or problem else 200


def _assisted_sign_up(form: RegisterForm) -> tuple[str | None, bool]:
    """In assisted mode the sign-up is tagged (the librarian's token), and says whether the
    librarian saw an identity document (ticked by them, or kept from before they handed
    back); otherwise (None, False)."""
    token = assist.staff_token()
    if not token:
        return None, False
    checked = (assist.identity_checked_when_handed_back() if assist.handed_back()
               else bool(form.identity_checked.data))
    return token, checked


@bp.get("/account/created")
def created() -> str | Response:
    """The new card number, from the registry: the visit cookie holds nothing personal."""
    if not session.get("just_registered") or not current_user.is_authenticated:
        return redirect(url_for("start.home"))
    view = current_user.view
    card = format_card_number(view.card_number)
    days_left, until = None, ""
    if view.pending_until is not None:  # "verify" institutions: show a document first
        days_left = max(1, (view.pending_until - date.today()).days)
        until = format_date(view.pending_until, "long")
    return render_template("account/created.html", card=card, step=1,
                           pending_until=until, days_left=days_left,
                           library=reference.library_name(view.library_code),
                           possible_duplicate=session.get("possible_duplicate", False))


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    form = LoginForm()
    cards = _member_cards()
    if cards:
        form.identifier.label.text = _("Library card number")
        form.password.label.text = _("PIN or password")
    next_url = safe_next(request.args.get("next"), url_for("catalogue.index"))
    error = None
    if form.validate_on_submit():
        try:
            token, patron = registry().login(
                form.identifier.data or "", form.password.data or "",
                library_code=current_app.config["LIBRARY_CODE"], language=current_language())
        except RegistryError as refusal:
            if refusal.code == "account_locked":
                error = account_locked(refusal)
            elif refusal.code in ("login_failed", "card_needs_attention", *UNAVAILABLE):
                error = message(refusal.code)
            else:
                raise
            form.password.data = ""
        else:
            _start_patron_visit(token, patron)
            if patron.must_change_password:  # a printed one-time password: theirs first
                return redirect(url_for("account.change_password"))
            return _offer_first(token, next_url)
    return render_template("account/login.html", form=form, error=error, step=1,
                           member_cards=cards), 422 if form.errors or error else 200


def _member_cards() -> bool:
    """The kiosk's institution checks library cards (the list may be out of reach: no)."""
    try:
        return reference.member_cards(current_app.config["LIBRARY_CODE"])
    except RegistryError:
        return False


def _offer_first(token: str, then: str) -> Response:
    """A seat held for the patron (offer and hold): the answer comes before anything else."""
    if registry().status(token, current_language()).standing is Standing.OFFERED:
        return redirect(url_for("enrol.offer"))
    return redirect(then)


def _start_patron_visit(token: str, patron: PatronView) -> None:
    """A fresh session at log-in: only the visit's clock and the text size carry over."""
    # Assisted mode (the librarian's token and state) goes on across the patron's log-in.
    keep = {k: session[k] for k in ("text_size", "started", "seen", assist.TOKEN_KEY,
                                    assist.STATE_KEY) if k in session}
    session.clear()
    session.update(keep)
    login_user(Patron(token, patron))


@bp.route("/my/data", methods=["GET", "POST"])
@login_required
def my_data() -> str | Response | tuple[str, int]:
    """Everything the registry holds about the patron, on screen only (nothing is printed or
    kept on this PC); below it, the patron changes their e-mail address (typing their
    password again) and the language of our e-mails."""
    form = MyDetailsForm()
    member = bool(current_user.view.library_card)
    error = None
    if form.validate_on_submit():
        try:
            changed = registry().change_my_details(
                current_user.token, "" if member else form.email.data or "",
                form.language.data or "", form.password.data or "")
        except RegistryError as refusal:
            if refusal.code == "invalid":
                for name, code in refusal.fields.items():
                    field = getattr(form, name, None)
                    if field is None:
                        raise
                    field.errors = [*field.errors, field_message(name, code)]
            elif refusal.code in UNAVAILABLE:
                error = message(refusal.code)
            else:
                raise
        else:
            if "email" in changed:
                flash(_("Your e-mail address is changed. We sent an e-mail to the old and the "
                        "new address."))
            elif changed:
                flash(_("From now on we write to you in this language."))
            else:
                flash(_("Nothing was changed."))
            return redirect(url_for("account.my_data"))
    data = registry().my_data(current_user.token, current_language())
    if not form.is_submitted():
        form.email.data, form.language.data = data.email or "", data.language
    form.password.data = ""
    library = reference.library_name(data.library_code)
    status = 422 if form.errors or error else 200
    return render_template("account/data.html", data=data, library=library, form=form,
                           error=error, member=member,
                           card=data.library_card or format_card_number(data.card_number),
                           phone=format_phone(data.phone)), status


@bp.route("/my/erase", methods=["GET", "POST"])
@login_required
def erase() -> str | Response | tuple[str, int]:
    """Erase the account, after the password is typed again: their seat goes to the next in
    line, and the visit ends."""
    form = EraseForm()
    if current_user.view.library_card:
        form.password.label.text = _("Your PIN")
    error = None
    if form.validate_on_submit():
        try:
            registry().erase_account(current_user.token, form.password.data or "")
        except RegistryError as refusal:
            if refusal.code == "invalid" and "password" in refusal.fields:
                form.password.errors = [message(refusal.fields["password"])]
            elif refusal.code in UNAVAILABLE:
                error = message(refusal.code)
            else:
                raise
        else:
            end_visit()
            session["notice"] = "account_erased"
            return redirect(url_for("start.home"))
    return render_template("account/erase.html", form=form, error=error), \
        422 if form.errors or error else 200


# While a patron holds a printed one-time password, only these pages are open to them.
_OPEN_BEFORE_OWN_PASSWORD = {"account.change_password", "start.logout", "start.reset",
                             "start.extend", "start.text_size", "static"}


@bp.before_app_request
def own_password_first() -> Response | None:
    """After a one-time password set at the desk, the patron chooses their own before
    anything else, at whichever kiosk they log in (the flag comes with every `whoami`)."""
    if request.endpoint in _OPEN_BEFORE_OWN_PASSWORD or request.blueprint not in (
            "start", "account", "catalogue", "enrol", "alerts"):
        return None
    if current_user.is_authenticated and current_user.view.must_change_password:
        return redirect(url_for("account.change_password"))
    return None


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> str | Response | tuple[str, int]:
    if current_user.view.library_card:  # their PIN is their library's, changed there
        return redirect(url_for("enrol.my_courses"))
    form = ChangePasswordForm()
    error = None
    if form.validate_on_submit():
        try:
            registry().change_password(current_user.token, form.old_password.data or "",
                                       form.new_password.data or "")
        except RegistryError as refusal:
            error = refusal_on_form(form, refusal)
        else:
            flash(_("Your new password is set. Use it from now on."))
            return _offer_first(current_user.token, url_for("catalogue.index"))
    form.old_password.data = form.new_password.data = ""
    status = 422 if form.errors or error else 200
    return render_template("account/password.html", form=form, error=error,
                           must=current_user.view.must_change_password), status

