"""Hypothesis fuzzing of every patron form of the terminal, on SQLite and on PostgreSQL.

The forms: the account form, log in, and every button that changes something (enrol, stop a
course, leave the waiting list, give up the seat, log out, text size, idle reset, "still
there"). The inputs: NUL bytes and other control characters, 10,000-character strings,
right-to-left text and bidi overrides, emoji and astral characters, NFD and compatibility
forms (fullwidth and Arabic-Indic digits, ligatures), lone surrogates (sent as the bytes a
browser would send, which are not UTF-8), whitespace only, impossible dates.

Every test also checks, through `calm`, the first promise: no 5xx and no traceback, the page
in the language of its address. Examples are derandomised (the same ones in CI and locally)
and few enough to keep the module well under 90 seconds on both databases.
"""

from __future__ import annotations

import html
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import polib
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale, gettext
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import String, func, select
from werkzeug.test import TestResponse

from kiosk.paths import resource_dir
from kiosk.registry import domain
from kiosk.registry.domain import RegistryError
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Patron
from kiosk.terminal.messages import MESSAGES, REQUIRED
from tests.support.factories import TODAY, build_app, patron_data

pytestmark = pytest.mark.slow  # property-based: hundreds of forms a test

LANGS = ("nl", "fr", "en")
MIN_AGE = 16
RULES = domain.SignUpRules(min_age=MIN_AGE)  # the programme's: postcode required
_unique = itertools.count(1)

FUZZ = settings(
    deadline=None,  # argon2id is slow on purpose, and the machine is shared
    derandomize=True,  # the same examples in CI and locally
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


# --- What is sent ---------------------------------------------------------------------------

BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Hand-picked troublemakers; Hypothesis mixes them with generated text below.
SAMPLES = [
    "\x00", "Mia\x00", "\x00" * 5, "\x01\x02\x1b[31m", "\x7f", "\x85", "a\rb\nc", "\x0b\x0c",
    "x" * 10_000, "é" * 10_000, "9" * 10_000, " " * 10_000,
    "محمد العلي", "שׁרה כהן", "\u202eJan", "\u202dMia\u202c", "\u2067Ali\u2069", "\u200fنور",
    "😀", "👩‍👩‍👧‍👦", "🇧🇪", "𝔐𝔦𝔞", "\U0010fffd", "\U000e0001", "𐍈",
    "Zoe\u0308", "e\u0301", "a" + "\u0301" * 200, "ｍｉａ", "２０００", "٢٠٠٠", "①", "²", "ﬁ",
    "", " ", "\t\n", "\u3000", "\xa0", "\u200b", "\ufeff", "\u2028",
    "\ud800", "a\udfffb",  # lone surrogates: sent as bytes that are not UTF-8
    "<script>alert(1)</script>", "' OR 1=1 --", "%00", "&amp;", '"\'>',
    "1", "0", "-1", "9999", "10000", "31", "30", "13", "00",
]

weird_chars = st.characters(
    categories=["Cc", "Cf", "Cs", "Co", "Mn", "Me", "Zs", "Zl", "Zp", "Nd", "No", "So", "Lo"]
)
nasty_text = st.one_of(
    st.sampled_from(SAMPLES),
    st.text(weird_chars, max_size=30),
    st.text(max_size=30),
    st.builds(lambda ch: ch * 10_000, st.characters()),  # 10,000 of one (maybe astral) char
)


def spoiled(value: str) -> st.SearchStrategy[str]:
    """A good value with a troublemaker put in somewhere."""
    return st.builds(
        lambda junk, at: value[: at % (len(value) + 1)] + junk + value[at % (len(value) + 1):],
        nasty_text, st.integers(min_value=0, max_value=64),
    )


def good_or_nasty(value: str) -> st.SearchStrategy[str]:
    return st.one_of(st.just(value), nasty_text, spoiled(value))


def good_form(n: int | None = None) -> dict[str, str]:
    n = next(_unique) if n is None else n
    return {
        "first_name": "Élise", "last_name": f"Dubois{n}", "email": f"elise.fuzz{n}@example.be",
        "birth_day": "3", "birth_month": "4", "birth_year": "1950", "postcode": "1000",
        "library": "MUN-MUNTPUNT", "phone": "0470 12 34 56", "password": "longenough",
        "consent": "y",
    }


@st.composite
def account_forms(draw: st.DrawFn) -> dict[str, str]:
    """The account form with one to four of its fields spoiled (more would mostly be too
    large to be read at all)."""
    form = good_form()
    names = draw(st.lists(st.sampled_from(sorted(form)), min_size=1, max_size=4, unique=True))
    for name in names:
        form[name] = draw(st.one_of(nasty_text, spoiled(form[name])))
    return form


def encode(fields: dict[str, str]) -> bytes:
    """URL-encoded as a browser does; a lone surrogate becomes the bytes it would send."""
    def q(text: str) -> str:
        return quote(text.encode("utf-8", "surrogatepass"), safe="")
    return "&".join(f"{q(k)}={q(v)}" for k, v in fields.items()).encode("ascii")


def post(client: FlaskClient, url: str, fields: dict[str, str]) -> TestResponse:
    return client.post(url, data=encode(fields), content_type="application/x-www-form-urlencoded")


def path_segment(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# --- What is checked -------------------------------------------------------------------------


class Texts:
    """The terminal's messages in each language: the field ones from messages.py (by code,
    and the "required" one of each field), and every translated text of the catalogue for
    whole pages."""

    def __init__(self, app: Flask):
        self.fields: dict[str, set[str]] = {}
        self.login: dict[str, list[re.Pattern[str]]] = {}
        self.pages: dict[str, set[str]] = {}
        for lang in LANGS:
            with app.test_request_context(f"/{lang}/"), force_locale(lang):
                texts = {code: str(text) for code, text in MESSAGES.items()}
                required = {str(text) for text in REQUIRED.values()}
            self.fields[lang] = required | {
                (text % {"age": MIN_AGE}) if code == "too_young" else text
                for code, text in texts.items() if "%(" not in text or code == "too_young"
            }
            self.login[lang] = [
                re.compile(re.escape(texts[code]).replace(re.escape("%(time)s"), ".+") + "$")
                for code in ("login_failed", "account_locked", "unavailable", "busy")
            ]
            catalogue = polib.pofile(str(resource_dir("translations") / lang / "LC_MESSAGES"
                                         / "messages.po"))
            self.pages[lang] = {e.msgstr for e in catalogue if e.msgstr}
        self.english = self.fields["en"]


def page_lang(response: TestResponse) -> str | None:
    found = re.search(r'<html lang="([a-z]+)"', response.get_data(as_text=True))
    return found.group(1) if found else None


def calm(response: TestResponse, lang: str | None, texts: Texts) -> str:
    """No 5xx, no traceback; an error page in the address's language with a translated text,
    or a refused form (422) with translated messages beside its fields."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, body[:2000]
    assert "Traceback" not in body and 'File "' not in body
    redirect = response.status_code in (301, 302, 303, 307, 308)
    if lang and "<html" in body and not redirect:
        assert page_lang(response) == lang
    if response.status_code == 422 and field_errors(body):
        assert_translated_field_errors(body, lang or "nl", texts)
    elif response.status_code >= 400 and body:
        lead = re.search(r'<p class="lead">([^<]*)</p>', body)
        assert lead, body[:2000]
        assert html.unescape(lead.group(1)) in texts.pages[lang or "nl"], lead.group(1)
    if redirect:
        target = urlsplit(response.location)
        assert target.scheme in ("", "http") and target.netloc in ("", "localhost")
        assert target.path.startswith("/") and not target.path.startswith("//")
    return body


def input_value(body: str, field_id: str) -> str:
    tag = re.search(rf'<input [^>]*\bid="{field_id}"[^>]*>', body, re.DOTALL)
    assert tag, field_id
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else ""


def field_errors(body: str) -> dict[str, str]:
    return {
        field: html.unescape(text)
        for field, text in re.findall(r'<p class="error" id="([^"]+)-error">([^<]*)</p>', body)
    }


def assert_translated_field_errors(body: str, lang: str, texts: Texts) -> dict[str, str]:
    errors = field_errors(body)
    for field, text in errors.items():
        assert text in texts.fields[lang], (field, text)
        if lang != "en":  # an English fallback on a Dutch or French page
            assert text not in texts.english, (field, text)
    return errors


def has_unsafe_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs", "Co") or ch in BIDI_CONTROLS
               for ch in value)


def newest_patron(app: Flask) -> Patron:
    service: RegistryService = app.extensions["registry_service"]
    with service.store.read() as s:
        row = s.scalars(select(Patron).order_by(Patron.id.desc()).limit(1)).one()
        s.expunge(row)
        return row


def patron_count(app: Flask) -> int:
    with app.extensions["registry_service"].store.read() as s:
        return s.scalar(select(func.count(Patron.id))) or 0


def assert_fits_and_is_clean(row: Patron) -> None:
    """Every String(n) column within n, and the texts a librarian reads free of controls."""
    for column in Patron.__table__.columns:
        value = getattr(row, column.key)
        if isinstance(column.type, String) and column.type.length and value is not None:
            assert len(value) <= column.type.length, (column.key, len(value))
    for value in (row.first_name, row.last_name, row.email, row.postcode, row.phone):
        assert not has_unsafe_chars(value), repr(value)
    for name in (row.first_name, row.last_name):
        assert unicodedata.is_normalized("NFC", name) and name == name.strip() and name
    assert row.postcode.isascii() and row.postcode.isdigit() and len(row.postcode) == 4
    assert row.phone == "" or re.fullmatch(r"\+\d{8,15}", row.phone)


# --- The rules themselves, shared by the terminal and the API (no database) -------------------


@st.composite
def new_patrons(draw: st.DrawFn) -> domain.NewPatron:
    good = patron_data(next(_unique), phone="0470 12 34 56")
    texts = ("first_name", "last_name", "email", "birth_date", "postcode", "library_code",
             "password", "phone", "language")
    spoil = draw(st.lists(st.sampled_from(texts), max_size=3, unique=True))
    values = {name: getattr(good, name) for name in texts}
    for name in spoil:
        values[name] = draw(good_or_nasty(values[name]))
    return domain.NewPatron(**values, consent=draw(st.booleans()))


@fuzz(300)
@given(data=new_patrons())
def test_validation_refuses_with_field_codes_or_answers_values_that_fit_and_are_clean(
    data: domain.NewPatron,
) -> None:
    try:
        clean = domain.validate_new_patron(data, today=TODAY, rules=RULES,
                                           library_codes={"ANT-PERMEKE"})
    except RegistryError as refusal:
        event("refused")
        assert refusal.code == "invalid" and refusal.fields
        assert set(refusal.fields.values()) <= set(MESSAGES)  # every code has its message
        return
    sizes = {c.key: c.type.length for c in Patron.__table__.columns
             if isinstance(c.type, String) and c.type.length}
    for name in ("first_name", "last_name", "email", "postcode", "phone", "language"):
        value = getattr(clean, name)
        assert len(value) <= sizes[name] and not has_unsafe_chars(value), (name, value)
    assert domain.has_visible_chars(clean.first_name) and domain.has_visible_chars(
        clean.last_name)
    assert clean.postcode.isascii() and len(clean.postcode) == 4


@fuzz(300)
@given(text=st.one_of(nasty_text, st.text(st.characters(categories=["Nd", "No", "Zs", "Pd"]))))
def test_card_numbers_and_log_in_names_never_raise_whatever_was_typed(text: str) -> None:
    card = domain.normalise_card_input(text)
    if domain.is_valid_card_number(card):  # '²' and friends once reached int() here
        assert card.isascii() and card.isdigit()
    domain.normalise_login_identifier(text)
    domain.normalise_password(text)


def test_bidi_overrides_and_invisible_names_are_refused() -> None:
    def refused(**fields: str) -> dict[str, str]:
        with pytest.raises(RegistryError) as caught:
            domain.validate_new_patron(patron_data(**fields), today=TODAY, rules=RULES,
                                       library_codes={"ANT-PERMEKE"})
        return caught.value.fields

    assert refused(first_name="\u202eJan") == {"first_name": "invalid_characters"}
    assert refused(last_name="\u2067Ali\u2069") == {"last_name": "invalid_characters"}
    assert refused(first_name="\u200b\u200d") == {"first_name": "required"}
    assert refused(password="\x00" + "x" * 10) == {"password": "invalid_characters"}


# --- The app on each database ----------------------------------------------------------------


def make_app(tmp_path: Path, url: str, **extra: object) -> Flask:
    return build_app(tmp_path, DATABASE_URL=url, MIN_AGE=MIN_AGE, **extra)


@pytest.fixture
def fuzz_app(db_url, tmp_path: Path) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    """The terminal with its embedded registry on SQLite, or on a fresh PostgreSQL database."""
    app = make_app(tmp_path, db_url())
    yield app
    app.extensions["registry_service"].store.engine.dispose()


@pytest.fixture
def texts(fuzz_app: Flask) -> Texts:
    return Texts(fuzz_app)


@pytest.fixture
def patron(fuzz_app: Flask) -> dict[str, str]:
    """An account with non-ASCII e-mail and password, made through the registry."""
    data = patron_data(first_name="Zoë", email=f"zoë.fuzz{next(_unique)}@example.be",
                       password="pass wörd ﬁne")
    card = fuzz_app.extensions["registry_service"].register(data)
    return {"card": card, "email": data.email, "password": data.password}


def log_in(client: FlaskClient, patron: dict[str, str]) -> None:
    response = client.post("/en/login", data={"identifier": patron["card"],
                                              "password": patron["password"]})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]


# --- The account form ------------------------------------------------------------------------


@fuzz(100)
@given(form=account_forms(), lang=st.sampled_from(LANGS))
def test_account_form_refusals_are_translated_keep_the_input_and_storage_fits_columns(
    fuzz_app: Flask, texts: Texts, form: dict[str, str], lang: str
) -> None:
    response = post(fuzz_app.test_client(), f"/{lang}/account/new", form)
    event(f"status {response.status_code}")
    body = calm(response, lang, texts)
    if response.status_code == 302:  # accepted: what was stored fits and is clean
        assert response.location.endswith(f"/{lang}/account/created")
        assert_fits_and_is_clean(newest_patron(fuzz_app))
        return
    if response.status_code == 413:  # more than MAX_CONTENT_LENGTH: the "too much text" page
        return
    assert response.status_code == 422
    assert assert_translated_field_errors(body, lang, texts)  # refused: at least one message
    for name in ("first_name", "last_name", "email", "birth_day", "birth_year", "postcode",
                 "phone"):
        value = form[name]
        if not any(unicodedata.category(ch) == "Cs" for ch in value):  # arrives re-quoted
            assert input_value(body, name) == value, name
    assert input_value(body, "password") == ""  # a password is never sent back


# Values a patron may really type and that must be accepted, normalised where it helps.
acceptable_names = st.sampled_from([
    "محمد", "שׂרה", "Zoe\u0308", "Ｍｉａ", "José María", "  Anne   Marie ", "Ægir", "李小龍",
    "Nguyễn", "N\u0303guye\u0302\u0303n", "Ølaf 😀", "X Æ A-12", "d'Hondt", "x" * 60,
    "\u1e9b\u0323" * 30, "Ali\u200cReza", "🇧🇪",
])
acceptable_postcodes = st.sampled_from(["1000", "２０００", "٩٠٠٠", "۳۵۰۰", " 8400 ", "४०००"])
acceptable_years = st.sampled_from(["1950", "１９５０", "١٩٥٠", " 1950 ", "1907"])
acceptable_phones = st.sampled_from(["", "0470 12 34 56", "０４７０１２３４５６", "+32 2 211 02 70",
                                     "٠٤٧٠١٢٣٤٥٦"])


@st.composite
def acceptable_forms(draw: st.DrawFn) -> dict[str, str]:
    n = next(_unique)
    local = draw(st.sampled_from(["zoë", "Zoe\u0308", "ELISE", "o'brien", "مريم", "δοκιμή"]))
    return {
        **good_form(n),
        "first_name": draw(acceptable_names), "last_name": draw(acceptable_names),
        "email": f"{local}.{n}@{draw(st.sampled_from(['example.be', 'café.be', 'EXAMPLE.BE']))}",
        "postcode": draw(acceptable_postcodes), "birth_year": draw(acceptable_years),
        "birth_day": draw(st.sampled_from(["3", "03", "３", "٣"])),
        "phone": draw(acceptable_phones),
        "password": draw(st.sampled_from(["longenough", "pass wörd", "😀" * 8, "        "])),
    }


@fuzz(25)
@given(form=acceptable_forms(), lang=st.sampled_from(LANGS))
def test_unusual_but_real_input_is_accepted_normalised_and_stored_within_columns(
    fuzz_app: Flask, texts: Texts, form: dict[str, str], lang: str
) -> None:
    response = post(fuzz_app.test_client(), f"/{lang}/account/new", form)
    body = calm(response, lang, texts)
    assert response.status_code == 302, field_errors(body)
    row = newest_patron(fuzz_app)
    assert_fits_and_is_clean(row)
    assert row.first_name == " ".join(unicodedata.normalize("NFC", form["first_name"]).split())
    assert row.postcode == unicodedata.normalize("NFKC", form["postcode"]).strip().translate(
        {ord(ch): str(unicodedata.decimal(ch)) for ch in form["postcode"] if ch.isdecimal()})
    assert row.birth_date.year in (1950, 1907) and row.birth_date.day == 3
    assert unicodedata.is_normalized("NFC", row.email) and row.email == row.email.lower()


@fuzz(30)
@given(
    field=st.sampled_from(["first_name", "last_name", "email", "postcode", "phone", "password"]),
    lang=st.sampled_from(LANGS),
    at=st.integers(min_value=0, max_value=20),
    extra=st.sampled_from(["\x00", "\x00\x00", "\x00" + "x" * 100]),
)
def test_nul_bytes_are_refused_at_the_edge_with_a_translated_message(
    fuzz_app: Flask, texts: Texts, field: str, lang: str, at: int, extra: str
) -> None:
    form = good_form()
    value = form[field]
    form[field] = value[: at % (len(value) + 1)] + extra + value[at % (len(value) + 1):]
    before = patron_count(fuzz_app)
    response = post(fuzz_app.test_client(), f"/{lang}/account/new", form)
    body = calm(response, lang, texts)
    assert response.status_code == 422
    errors = assert_translated_field_errors(body, lang, texts)
    with fuzz_app.test_request_context(f"/{lang}/"), force_locale(lang):
        assert errors == {field: str(MESSAGES["invalid_characters"])}
    assert patron_count(fuzz_app) == before


impossible_dates = st.one_of(
    st.tuples(st.sampled_from(["1", "0", "-1", "-2000", "9999", "10000", "0000", "2999", "١",
                               "１", "99999999999999999999"]),
              st.sampled_from(["1", "2", "12"]), st.sampled_from(["1", "28"])),
    st.tuples(st.sampled_from(["1950", "2000", "1904"]), st.just("2"),
              st.sampled_from(["30", "31", "0", "32", "-1", "²"])),
    st.tuples(st.integers(-10**6, 10**6).map(str), st.integers(-20, 20).map(str),
              st.integers(-40, 40).map(str)),
)


@fuzz(40)
@given(date=impossible_dates, lang=st.sampled_from(LANGS))
def test_impossible_or_out_of_range_birth_dates_are_refused_kindly(
    fuzz_app: Flask, texts: Texts, date: tuple[str, str, str], lang: str
) -> None:
    year, month, day = date
    form = {**good_form(), "birth_year": year, "birth_month": month, "birth_day": day}
    response = post(fuzz_app.test_client(), f"/{lang}/account/new", form)
    body = calm(response, lang, texts)
    if response.status_code == 302:  # a real date, at least 16 and under 120 years ago
        born = newest_patron(fuzz_app).birth_date
        as_typed = tuple(int(unicodedata.normalize("NFKC", part)) for part in date)
        assert 1900 < born.year <= 2100 and (born.year, born.month, born.day) == as_typed
        return
    errors = assert_translated_field_errors(body, lang, texts)
    assert set(errors) == {"birth"}  # beside the date, nothing else blamed


# --- Log in ----------------------------------------------------------------------------------


FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


@st.composite
def login_attempts(draw: st.DrawFn, patron: dict[str, str]) -> dict[str, str]:
    card, email, password = patron["card"], patron["email"], patron["password"]
    spaced = f"{card[:4]} {card[4:8]} {card[8:]}"
    identifier = draw(st.one_of(
        good_or_nasty(card), good_or_nasty(email),
        st.sampled_from([spaced, card.translate(FULLWIDTH), card.translate(SUPERSCRIPT),
                         unicodedata.normalize("NFD", email).upper(), "\t" + card + "\r\n",
                         "²" * 13, "@", "@" * 300, "a@" + "b" * 10_000]),
    ))
    return {"identifier": identifier, "password": draw(good_or_nasty(password))}


@fuzz(50)
@given(data=st.data(), lang=st.sampled_from(LANGS))
def test_log_in_form_refuses_in_the_page_language_and_never_fails(
    fuzz_app: Flask, texts: Texts, patron: dict[str, str], data: st.DataObject, lang: str
) -> None:
    attempt = data.draw(login_attempts(patron))
    response = post(fuzz_app.test_client(), f"/{lang}/login", attempt)
    event(f"status {response.status_code}")
    body = calm(response, lang, texts)
    if response.status_code == 302:
        return
    assert response.status_code in (422, 413)
    if response.status_code == 413:
        return
    errors = assert_translated_field_errors(body, lang, texts)
    alert = re.search(r'aria-labelledby="login-error-title">\s*<h2[^>]*>[^<]*</h2>\s*'
                      r'<p>([^<]*)</p>', body)
    assert errors or alert, body[:2000]
    if alert:
        text = html.unescape(alert.group(1))
        assert any(p.match(text) for p in texts.login[lang]), text
    if not any(unicodedata.category(ch) == "Cs" for ch in attempt["identifier"]):
        assert input_value(body, "identifier") == attempt["identifier"]  # kept to correct
    assert input_value(body, "password") == ""  # a password is never sent back


def test_the_same_account_logs_in_however_the_keyboard_composed_it(
    fuzz_app: Flask, texts: Texts
) -> None:
    """NFD e-mail and password, capitals, a card number typed in fullwidth digits."""
    form = {**good_form(), "email": "zoë.nfc@example.be", "password": "crème brûlée"}
    assert post(fuzz_app.test_client(), "/nl/account/new", form).status_code == 302
    card = newest_patron(fuzz_app).card_number
    for identifier, password in [
        (unicodedata.normalize("NFD", "Zoë.NFC@Example.be"), "crème brûlée"),
        ("zoë.nfc@example.be", unicodedata.normalize("NFD", "crème brûlée")),
        (f"{card[:4]} {card[4:8]} {card[8:]}".translate(FULLWIDTH), "crème brûlée"),
        ("\t" + card + "\r\n", "crème brûlée"),  # a scanner's suffix
    ]:
        response = post(fuzz_app.test_client(), "/fr/login",
                        {"identifier": identifier, "password": password})
        calm(response, "fr", texts)
        assert response.status_code == 302, (identifier, field_errors(response.get_data(
            as_text=True)))


def test_a_registered_password_in_nfd_logs_in_when_typed_composed(
    fuzz_app: Flask, texts: Texts
) -> None:
    form = {**good_form(), "password": unicodedata.normalize("NFD", "Åsa på ön")}
    assert post(fuzz_app.test_client(), "/en/account/new", form).status_code == 302
    response = post(fuzz_app.test_client(), "/en/login",
                    {"identifier": newest_patron(fuzz_app).email, "password": "Åsa på ön"})
    calm(response, "en", texts)
    assert response.status_code == 302


# --- Every other form: the buttons -----------------------------------------------------------

SLUG = "spanish-beginners"
# Shorter than the 10,000 of `nasty_text`: a path or a token that long is refused before
# any form is read.
short_nasty = st.one_of(
    st.sampled_from([s for s in SAMPLES if len(s) < 1000]),
    st.text(weird_chars, max_size=30),
    st.text(max_size=30),
    st.builds(lambda ch: ch * 1000, st.characters()),
)
slugs = st.one_of(st.just(SLUG), short_nasty, spoiled(SLUG))
BUTTONS = [
    "/{lang}/courses/{slug}/enrol", "/{lang}/my/withdraw/{slug}", "/{lang}/my/leave",
    "/{lang}/my/give-up", "/{lang}/my/{slug}", "/{lang}/logout", "/{lang}/text-size/{slug}",
    "/{lang}/text-size/large", "/visit/reset", "/visit/extend", "/{lang}/my/erase",
]
small_nasty = st.one_of(short_nasty, st.builds(lambda ch: "/" + ch * 500, st.characters()))


def every_button_with(slug: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """An explicit example per button, so each form meets this slug whatever is generated."""
    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        for button in BUTTONS:
            test = example(button=button, slug=slug, lang="nl", extra={"next": slug})(test)
        return test
    return decorate


@fuzz(40)
@every_button_with("\x00")
@given(
    button=st.sampled_from(BUTTONS),
    slug=slugs,
    lang=st.sampled_from(LANGS),
    # "confirm": "yes" too, so the confirmed second step of a change is reached as well.
    extra=st.dictionaries(st.sampled_from(["next", "csrf_token", "slug", "size", "confirm",
                                           "\x00", "é"]),
                          st.one_of(st.just("yes"), small_nasty), max_size=3),
)
def test_every_button_form_answers_without_a_server_error_in_the_page_language(
    fuzz_app: Flask, texts: Texts, patron: dict[str, str], button: str, slug: str, lang: str,
    extra: dict[str, str]
) -> None:
    client = fuzz_app.test_client()
    log_in(client, patron)
    url = button.format(lang=lang, slug=path_segment(slug))
    response = post(client, url, extra)
    event(f"{button} {response.status_code}")
    shown_lang = lang if url.startswith(f"/{lang}/") else None
    body = calm(response, shown_lang, texts)
    if response.status_code == 409:  # e.g. withdraw from a course never chosen
        lead = html.unescape(re.search(r'<p class="lead">([^<]*)</p>', body).group(1))
        assert lead in texts.fields[lang]


@pytest.fixture
def csrf_app(db_url, tmp_path: Path) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    app = make_app(tmp_path, db_url(), WTF_CSRF_ENABLED=True)
    yield app
    app.extensions["registry_service"].store.engine.dispose()


@pytest.fixture
def csrf_texts(csrf_app: Flask) -> Texts:
    return Texts(csrf_app)


@fuzz(30)
@given(
    button=st.sampled_from(["/{lang}/account/new", "/{lang}/login", *BUTTONS[:8]]),
    token=short_nasty,
    lang=st.sampled_from(LANGS),
)
def test_a_spoiled_form_token_is_the_expired_page_in_the_page_language(
    csrf_app: Flask, csrf_texts: Texts, button: str, token: str, lang: str
) -> None:
    texts = csrf_texts
    url = button.format(lang=lang, slug=SLUG)
    response = post(csrf_app.test_client(), url, {**good_form(), "csrf_token": token})
    calm(response, lang, texts)
    assert response.status_code == 400
    with csrf_app.test_request_context(f"/{lang}/"), force_locale(lang):
        title = str(escape(gettext("This page has expired")))
    assert f"<h1>{title}</h1>" in response.get_data(as_text=True)
