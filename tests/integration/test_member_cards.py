"""Members sign in with the library card they already have: the PIN is checked by their
institution's member system over SIP2 (a real pysip2 server on loopback, and a proxy that
breaks the line), and the card is linked to one account of ours."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pysip2 import PatronInformationResponse, decode_as
from sqlalchemy import func, select

from kiosk.cli import main as kiosk_cli
from kiosk.registry.academy_sender import send_due
from kiosk.registry.demo_member_system import Card, DemoMemberSystem
from kiosk.registry.domain import LoginPolicy, RegistryError, Standing
from kiosk.registry.member_system import (
    MemberSystemConfig,
    MemberSystemDown,
    Verdict,
    check_card,
    judge,
    split_name,
)
from kiosk.registry.roles import Role, StaffView
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, Patron
from tests.support.factories import build_app, log_in_staff, patron_data
from tests.support.live_server import serve
from tests.support.scim_server import scim_config, start_platform
from tests.support.sip_faults import Fault, FaultyLine, closed_port

LIBRARY = "ANT-PERMEKE"
LOGIN = ("kiosk-ant", "s1p-secret")
CARDS = (
    Card("21000123456", "1234", "Peeters, An", "An.Peeters@Example.be"),
    Card("21000654321", "4321", "Mohamed El Amrani"),
    Card("21000999999", "9999", "Janssens, Luc", blocked=True),
    Card("21000888888", "8888", "Dubois, Marie", expired=True),
    Card("21000777777", "7777", "Traag, Tom", delay=3.0),
)
TIMEOUT = 1.0  # seconds: the whole check


@pytest.fixture(scope="module")
def member_system() -> Iterator[DemoMemberSystem]:
    with DemoMemberSystem(CARDS, login=LOGIN) as system:
        yield system


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "sip.secret"
    path.write_text(LOGIN[1] + "\n", encoding="utf-8")
    return path


def config(port: int, secret: Path, **overrides: object) -> MemberSystemConfig:
    values: dict = {"host": "127.0.0.1", "port": port, "login_user": LOGIN[0],
                    "password_file": str(secret), "timeout": TIMEOUT}
    return MemberSystemConfig(**{**values, **overrides})


@pytest.fixture
def app(tmp_path: Path, member_system: DemoMemberSystem, secret: Path) -> Flask:
    app = build_app(tmp_path / "kiosk", LIBRARY_CODE=LIBRARY)
    service(app).members.configure("ANT", config(member_system.port, secret), actor="test")
    return app


def service(app: Flask) -> RegistryService:
    return app.extensions["registry_service"]


def members(app: Flask) -> list[dict]:
    """The linked members' rows, as columns (and their library's code and institution)."""
    with service(app).store.read() as s:
        rows = s.scalars(select(Patron).where(Patron.member_barcode.is_not(None))).all()
        return [{**{c.name: getattr(p, c.name) for c in Patron.__table__.columns},
                 "library": p.library.code, "institution_id": p.library.institution_id}
                for p in rows]


def sign_in(app: Flask, card: str, pin: str):  # type: ignore[no-untyped-def]
    return service(app).login(card, pin, library_code=LIBRARY, language="fr")


def use(app: Flask, port: int, secret: Path) -> None:
    """Point ANT's member system at another port (a faulty line, a closed port)."""
    service(app).members.configure("ANT", config(port, secret), actor="test")


# --- The journey ------------------------------------------------------------------------


def test_a_member_signs_in_with_card_and_pin_and_gets_one_account(app: Flask) -> None:
    token, view = sign_in(app, "2100 0123 456", "1234")
    assert view.library_card == "21000123456" and view.first_name == "An"
    assert service(app).whoami(token).library_card == "21000123456"
    again, _ = sign_in(app, "21000123456", "1234")
    [member] = members(app)
    assert (member["first_name"], member["last_name"]) == ("An", "Peeters")
    assert member["email"] == "an.peeters@example.be"  # tidied as ours are
    assert member["password_hash"] == "" and member["birth_date"] is None
    assert member["language"] == "fr" and member["library"] == LIBRARY
    assert member["member_institution_id"] == member["institution_id"]
    with service(app).store.read() as s:  # linked once, by pseudonym
        actions = s.scalars(select(AuditEntry.action)).all()
    assert actions.count("member_linked") == 1


def test_a_member_without_e_mail_and_with_one_word_names_is_linked(app: Flask) -> None:
    sign_in(app, "21000654321", "4321")
    [member] = members(app)
    assert member["email"] is None
    assert (member["first_name"], member["last_name"]) == ("Mohamed El", "Amrani")


def test_a_linked_member_holds_a_seat_like_everyone(app: Flask) -> None:
    token, _ = sign_in(app, "21000123456", "1234")
    slug = service(app).catalogue("en").courses[0].slug
    assert service(app).claim(token, slug).standing in (Standing.SEATED, Standing.WAITING)
    assert service(app).status(token, "en").enrolments


def test_an_unknown_card_or_a_wrong_pin_is_refused_and_no_account_is_made(app: Flask) -> None:
    for card, pin in (("99999999", "1234"), ("21000123456", "0000")):
        with pytest.raises(RegistryError) as refused:
            sign_in(app, card, pin)
        assert refused.value.code == "login_failed"
    assert members(app) == []


@pytest.mark.parametrize("card", ["21000999999", "21000888888"], ids=["blocked", "expired"])
def test_a_blocked_or_expired_card_is_sent_to_the_desk(app: Flask, card: str) -> None:
    with pytest.raises(RegistryError) as refused:
        sign_in(app, card, card[-4:])
    assert refused.value.code == "card_needs_attention"
    assert members(app) == []


def test_wrong_pins_lock_the_linked_account_as_wrong_passwords_do(
        app: Flask, member_system: DemoMemberSystem) -> None:
    service(app).login_policy = LoginPolicy(max_failures=3)
    sign_in(app, "21000123456", "1234")
    for left in (2, 1):
        with pytest.raises(RegistryError) as refused:
            sign_in(app, "21000123456", "0000")
        assert refused.value.detail["attempts_left"] == left
    with pytest.raises(RegistryError) as refused:
        sign_in(app, "21000123456", "0000")
    assert refused.value.code == "account_locked"
    asked = len(member_system.asked)
    with pytest.raises(RegistryError) as refused:  # even the right PIN, until the lock ends
        sign_in(app, "21000123456", "1234")
    assert refused.value.code == "account_locked"
    assert len(member_system.asked) == asked  # not even asked


def test_an_own_account_still_logs_in_with_its_number_and_password(app: Flask) -> None:
    card = service(app).register(patron_data(password="correct horse"))
    token, view = service(app).login(card, "correct horse", library_code=LIBRARY)
    assert view.card_number == card and view.library_card == ""


def test_a_member_cannot_log_in_with_the_registry_number_nor_a_password(app: Flask) -> None:
    sign_in(app, "21000123456", "1234")
    [member] = members(app)
    with pytest.raises(RegistryError) as refused:
        service(app).login(member["card_number"], "x", library_code=LIBRARY)
    assert refused.value.code == "login_failed"


def test_a_member_erases_their_account_with_their_pin(app: Flask) -> None:
    token, _ = sign_in(app, "21000123456", "1234")
    with pytest.raises(RegistryError) as refused:
        service(app).erase_account(token, "0000")
    assert refused.value.fields == {"password": "pin_wrong"}
    service(app).erase_account(token, "1234")
    assert members(app) == []


def test_the_desk_finds_a_member_by_their_library_card(app: Flask) -> None:
    sign_in(app, "21000123456", "1234")
    librarian = StaffView(1, "an", "An", Role.LIBRARIAN, "ANT", LIBRARY, "Permeke")
    [hit] = service(app).desk.find(librarian, "2100-0123-456")
    assert hit.last_name == "Peeters"


# --- Faults: never stranded, never locked for the member system's mistakes ----------------


def test_a_slow_member_system_is_cut_at_the_deadline(app: Flask) -> None:
    started = time.monotonic()
    with pytest.raises(RegistryError) as refused:
        sign_in(app, "21000777777", "7777")
    assert refused.value.code == "member_system_unavailable"
    assert time.monotonic() - started < TIMEOUT + 0.5


@pytest.mark.parametrize("fault", [Fault.DROP, Fault.GARBAGE, Fault.SILENT, Fault.GARBLE_ALWAYS])
def test_a_broken_line_is_unavailable_and_counts_against_no_one(
        app: Flask, member_system: DemoMemberSystem, secret: Path, fault: Fault) -> None:
    sign_in(app, "21000123456", "1234")
    service(app).login_policy = LoginPolicy(max_failures=2)
    with FaultyLine(member_system.port, fault) as line:
        use(app, line.port, secret)
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(RegistryError) as refused:
                sign_in(app, "21000123456", "1234")
            assert refused.value.code == "member_system_unavailable"
            assert time.monotonic() - started < TIMEOUT + 0.5
    use(app, member_system.port, secret)
    sign_in(app, "21000123456", "1234")  # not locked


def test_a_member_system_that_is_down_is_unavailable(app: Flask, secret: Path) -> None:
    with closed_port() as port:
        use(app, port, secret)
        with pytest.raises(RegistryError) as refused:
            sign_in(app, "21000123456", "1234")
    assert refused.value.code == "member_system_unavailable"


@pytest.mark.parametrize("fault", [Fault.GARBLE_ANSWER_ONCE, Fault.GARBLE_REQUEST_ONCE])
def test_a_checksum_error_is_asked_again_as_the_protocol_says(
        member_system: DemoMemberSystem, secret: Path, fault: Fault) -> None:
    with FaultyLine(member_system.port, fault) as line:
        check = check_card(config(line.port, secret), "21000123456", "1234", datetime.now())
        assert line.garbled == 1
    assert check.verdict is Verdict.MEMBER


def test_a_refused_sip_login_is_the_member_systems_problem(
        member_system: DemoMemberSystem, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-it", encoding="utf-8")
    with pytest.raises(MemberSystemDown, match="log-in was refused"):
        check_card(config(member_system.port, wrong), "21000123456", "1234", datetime.now())


# --- What an answer says ------------------------------------------------------------------

FRAME = ("64" + " " * 14 + "000" + "20261206    120000" + "0000" * 6
         + "AOANT|AA21000123456|AEPeeters, An|BLY|CQ{cq}|{extra}")


def _answer(cq: str = "Y", extra: str = "") -> tuple[PatronInformationResponse, bytes]:
    frame = (FRAME.format(cq=cq, extra=extra) + "\r").encode()
    return decode_as(frame, PatronInformationResponse).message, frame


def test_an_expiry_date_in_the_past_sends_the_card_to_the_desk() -> None:
    today = date(2026, 12, 6)
    assert judge(*_answer(extra="PA20261205|"), today).verdict is Verdict.NEEDS_ATTENTION
    assert judge(*_answer(extra="PA20261206|"), today).verdict is Verdict.MEMBER
    assert judge(*_answer(extra="PA2026xx06|"), today).verdict is Verdict.MEMBER


def test_an_answer_that_does_not_say_whether_the_pin_was_right_lets_no_one_in() -> None:
    message, frame = _answer()
    frame = frame.replace(b"CQY|", b"")
    message = decode_as(frame, PatronInformationResponse).message
    with pytest.raises(MemberSystemDown):
        judge(message, frame, date(2026, 12, 6))
    assert judge(*_answer(cq="N"), date(2026, 12, 6)).verdict is Verdict.WRONG_PIN


def test_names_are_split_in_both_orders_member_systems_write_them() -> None:
    assert split_name("Peeters, An") == ("An", "Peeters")
    assert split_name("  Mohamed  El Amrani ") == ("Mohamed El", "Amrani")
    assert split_name("Cher") == ("Cher", "")


# --- At the kiosk, and for branch IT ------------------------------------------------------


def _post_login(client: FlaskClient, lang: str, card: str, pin: str) -> str:
    response = client.post(f"/{lang}/login", data={"identifier": card, "password": pin})
    return response.get_data(as_text=True) if response.status_code in (200, 422) else \
        response.headers["Location"]


def test_the_kiosk_asks_for_the_card_and_pin_and_signs_the_member_in(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/nl/login").get_data(as_text=True)
    assert "pincode" in page.lower()
    assert _post_login(client, "nl", "21000123456", "1234").endswith("/nl/courses/")
    data = client.get("/nl/my/data").get_data(as_text=True)
    assert "21000123456" in data and "Geboortedatum" not in data


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_the_kiosk_answers_calmly_in_the_patrons_language(app: Flask, secret: Path,
                                                          lang: str) -> None:
    client = app.test_client()
    attention = _post_login(client, lang, "21000999999", "9999")
    with closed_port() as port:
        use(app, port, secret)
        down = _post_login(client, lang, "21000123456", "1234")
    expected = {"nl": ("balie", "niets verloren"),
                "fr": ("accueil", "été perdu"),
                "en": ("desk", "Nothing was lost")}[lang]
    assert expected[0] in attention and expected[1] in down.replace("&#39;", "'")


def test_branch_it_sets_shows_checks_and_removes_a_member_system(
        member_system: DemoMemberSystem, secret: Path, tmp_path: Path) -> None:
    app = build_app(tmp_path / "registry", registry=True)
    runner = app.test_cli_runner()
    url = app.config["DATABASE_URL"]
    result = runner.invoke(kiosk_cli, [
        "registry", "member-system", "set", "KOR", "--database-url", url, "--host", "127.0.0.1",
        "--port", str(member_system.port), "--login", LOGIN[0], "--password-file", str(secret)])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(kiosk_cli, ["registry", "member-system", "show", "--database-url", url])
    assert "KOR" in shown.output and str(secret) in shown.output
    assert LOGIN[1] not in shown.output  # the password itself is never shown
    checked = runner.invoke(kiosk_cli, ["registry", "member-system", "check",
                                        "--database-url", url])
    assert checked.exit_code == 0 and "OK" in checked.output and "log-in accepted" in checked.output
    relative = runner.invoke(kiosk_cli, [
        "registry", "member-system", "set", "KOR", "--database-url", url, "--host", "x",
        "--timeout", "99"])
    assert relative.exit_code != 0
    removed = runner.invoke(kiosk_cli, ["registry", "member-system", "remove", "KOR",
                                        "--database-url", url])
    assert removed.exit_code == 0
    with service(app).store.read() as s:
        count = s.scalar(select(func.count()).select_from(AuditEntry)
                         .where(AuditEntry.action.like("member_system_%")))
    assert count == 2


def test_a_seated_member_logs_in_at_the_academy_with_their_library_card(app: Flask) -> None:
    registry = service(app)
    registry.academy.enabled = True
    token, _ = sign_in(app, "21000123456", "1234")
    registry.claim(token, registry.catalogue("en").courses[0].slug)
    platform = start_platform()
    try:
        assert send_due(registry.store, scim_config(platform), registry.clock()).down == ""
        [user] = platform.users()
    finally:
        platform.stop()
    assert user.user_name == "21000123456" and user.active


def test_branch_it_sets_and_checks_a_member_system_on_its_page(
        member_system: DemoMemberSystem, secret: Path, tmp_path: Path) -> None:
    app = build_app(tmp_path / "registry", registry=True)
    client = app.test_client()
    log_in_staff(client, "it.support", lang="fr")
    refused = client.post("/fr/staff/library-cards/KOR", data={
        "host": "sip host", "port": "70000", "timeout": "99", "login_user": "kiosk",
        "password_file": "relative/secret"})
    page = refused.get_data(as_text=True).replace("&#39;", "'")
    assert refused.status_code == 422
    assert "sans espaces" in page and "65535" in page and "chemin complet" in page
    saved = client.post("/fr/staff/library-cards/KOR", data={
        "host": "127.0.0.1", "port": str(member_system.port), "timeout": "1.5",
        "login_user": LOGIN[0], "password_file": str(secret)})
    assert saved.status_code == 302
    listed = client.get("/fr/staff/library-cards").get_data(as_text=True)
    assert f"127.0.0.1:{member_system.port}" in listed and LOGIN[1] not in listed
    checked = client.post("/fr/staff/library-cards/check", follow_redirects=True)
    assert "KOR" in checked.get_data(as_text=True)
    assert "répond" in checked.get_data(as_text=True)
    [setting] = service(app).members.settings()
    assert setting.config.timeout == 1.5 and setting.config.password_file == str(secret)
    assert client.post("/fr/staff/library-cards/KOR/remove").status_code == 302
    assert service(app).members.settings() == []


def test_a_terminal_over_http_signs_a_member_in_at_its_own_library(
        member_system: DemoMemberSystem, secret: Path, tmp_path: Path) -> None:
    """The registry checks the card with the member system of the terminal's institution
    (from its token, not from what the terminal says), in the patron's language; a member
    system that is down is a calm page, not a retry."""
    registry_app = build_app(tmp_path / "registry", registry=True)
    registry = service(registry_app)
    registry.members.configure("ANT", config(member_system.port, secret), actor="test")
    token, _ = registry.add_terminal("ANT-HOBOKEN", "member kiosk", actor="test")
    with serve(registry_app) as url:
        terminal = build_app(tmp_path / "terminal", REGISTRY_URL=url, REGISTRY_TOKEN=token,
                             LIBRARY_CODE="ANT-HOBOKEN")
        browser = terminal.test_client()
        assert "pincode" in browser.get("/nl/login").get_data(as_text=True).lower()
        assert _post_login(browser, "fr", "21000654321", "4321").endswith("/fr/courses/")
        with closed_port() as port:
            registry.members.configure("ANT", config(port, secret), actor="test")
            started = time.monotonic()
            down = _post_login(terminal.test_client(), "nl", "21000123456", "1234")
            assert time.monotonic() - started < TIMEOUT + 1.5
    assert "niets verloren" in down
    [member] = members(registry_app)
    assert member["language"] == "fr" and member["library"] == "ANT-HOBOKEN"
    registry.store.engine.dispose()
