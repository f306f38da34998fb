"""One contract for both ways a terminal reaches the registry: in-process and over HTTP.

Every test runs four times: {local, http} × {SQLite, PostgreSQL}. The HTTP client talks to
`create_registry_app` served by waitress on loopback, with a real terminal token. Answers are
compared with what the service itself says on the same database (so the HTTP answers are the
very same dataclasses as the in-process ones), and `test_the_same_script_gives_the_same_
transcript` runs one script through both clients and compares the transcripts directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from kiosk.registry.domain import (
    Catalogue,
    ClaimOutlook,
    ClaimResult,
    CourseView,
    FieldRule,
    InstitutionView,
    Maintenance,
    PatronStatus,
    PatronView,
    ProgrammeStatus,
    Registration,
    RegistryError,
    SignUpRules,
    Standing,
    WaitReason,
    is_valid_card_number,
)
from kiosk.registry.http_client import HttpRegistryClient
from kiosk.registry.services import RegistryService, utcnow
from kiosk.registry.store import Institution
from tests.support.contract import Registry, connect, refusal, registry_app
from tests.support.factories import build_app, patron_data
from tests.support.live_server import serve

PASSWORD = "correct horse"


# --- Reference data ------------------------------------------------------------------------


def test_institutions_and_catalogue_in_every_language(registry: Registry) -> None:
    client, service = registry.client, registry.service
    institutions = client.institutions()
    assert institutions == service.institutions()
    assert all(isinstance(i, InstitutionView) for i in institutions)
    assert "ANT-PERMEKE" in {lib.code for i in institutions for lib in i.libraries}
    titles = {}
    for lang in ("nl", "fr", "en"):
        catalogue = client.catalogue(lang)
        assert isinstance(catalogue, Catalogue)
        assert catalogue == service.catalogue(lang)
        month = catalogue.module_of_the_month
        assert month is not None and month.slug == "ai-assistants" and month.featured
        titles[lang] = month.title
        assert len(catalogue.courses) == 30 and len(catalogue.categories) == 6
    assert len(set(titles.values())) == 3  # three languages, three titles


def test_course_programme_and_academy(registry: Registry) -> None:
    client, service = registry.client, registry.service
    for lang in ("nl", "fr", "en"):
        course = client.course("excel-basics", lang)
        assert isinstance(course, CourseView)
        assert course == service.course("excel-basics", lang)
    for slug in ("no-such-course", "", "a/b"):
        error = refusal(lambda s=slug: client.course(s, "nl"))
        assert (error.code, error.fields, error.detail) == ("course_not_found", {}, {})
    status = client.programme_status()
    assert status == ProgrammeStatus(cap=2000, seats_taken=0, waiting=0)
    assert status == service.programme_status()
    assert client.academy_url() == service.academy_url() != ""
    assert client.practice() is service.practice.active() is True  # the demo's programme


# --- Accounts and sessions -------------------------------------------------------------------


def test_register(registry: Registry) -> None:
    client, service = registry.client, registry.service
    data = patron_data()
    card = client.register(data)
    assert is_valid_card_number(card) and card.startswith("2101")  # the institution's prefix
    token, patron = service.login(card, data.password)
    assert patron == PatronView(card, "Mia", "nl", "ANT-PERMEKE")

    bad = patron_data(email="not an address", postcode="12", birth_date="2020-01-01",
                      library_code="NOWHERE", password="short", consent=False, phone="123")
    error = refusal(lambda: client.register(bad))
    assert error.code == "invalid"
    assert error.fields == {
        "email": "email_invalid", "postcode": "postcode_invalid", "birth_date": "too_young",
        "library_code": "library_unknown", "password": "password_too_short",
        "consent": "consent_required", "phone": "phone_invalid",
    }
    assert error.fields == refusal(lambda: service.register(bad)).fields

    taken = refusal(lambda: client.register(patron_data(email=data.email.upper())))
    assert (taken.code, taken.fields, taken.detail) == ("invalid", {"email": "email_taken"}, {})


def test_each_institutions_sign_up_rules_reach_the_terminal_and_bind_its_sign_ups(
        registry: Registry) -> None:
    client, service = registry.client, registry.service
    service.sign_up_rules.set_rules("KOR", "required", "not_asked", "18", actor="test")
    rules = {i.code: i.sign_up for i in client.institutions()}
    assert rules["KOR"] == SignUpRules(FieldRule.REQUIRED, FieldRule.NOT_ASKED, 18)
    assert rules["ANT"] == SignUpRules()  # the others keep the programme's
    assert client.institutions() == service.institutions()

    no_phone = refusal(lambda: client.register(patron_data(library_code="KOR-CENTRUM")))
    assert (no_phone.code, no_phone.fields) == ("invalid", {"phone": "required"})
    data = patron_data(library_code="KOR-CENTRUM", phone="0470 12 34 56", postcode="8500")
    card = client.register(data)
    assert card.startswith("2103")  # Kortrijk's prefix
    token, _ = client.login(card, data.password)
    kept = client.my_data(token, "en")
    assert (kept.postcode, kept.phone) == ("", "+32470123456")  # not asked: not kept


def test_registration_tells_pending_and_possible_duplicate(registry: Registry) -> None:
    """The registration answer, the patron view and the status carry the identity check
    ("verify" institutions) and the duplicate warning, the same both ways."""
    client, service = registry.client, registry.service
    with service.store.write() as s:
        s.execute(update(Institution).where(Institution.code == "ANT")
                  .values(verification="verify", pending_days=14))
    first = patron_data(first_name="Élise", last_name="Van Damme")
    made = client.register_account(first)
    assert isinstance(made, Registration) and made.possible_duplicate is False
    assert made.pending_until == (utcnow() + timedelta(days=14)).date()
    token, view = client.login(made.card_number, PASSWORD)
    assert view.pending_until == made.pending_until == client.whoami(token).pending_until
    assert view == service.whoami(token)
    status = client.status(token, "en")
    assert status.pending_until == made.pending_until and status == service.status(token, "en")
    assert client.my_data(token, "en").status.pending_until == made.pending_until
    assert client.claim(token, "excel-basics").standing in (Standing.SEATED, Standing.WAITING)

    again = client.register_account(patron_data(first_name="elise", last_name="van-damme",
                                                birth_date=first.birth_date,
                                                library_code="KOR-CENTRUM"))
    assert again.possible_duplicate is True and again.pending_until is None  # KOR is open
    assert client.login(again.card_number, PASSWORD)[1].pending_until is None
    assert is_valid_card_number(client.register(patron_data(library_code="KOR-CENTRUM")))


def test_login_by_card_and_email_then_lockout(registry: Registry) -> None:
    client = registry.client
    data = patron_data(language="fr")
    card = client.register(data)
    view = PatronView(card, "Mia", "fr", "ANT-PERMEKE")

    token, patron = client.login(card, PASSWORD)
    assert patron == view and client.whoami(token) == view
    spaced = f"{card[:4]} {card[4:8]} {card[8:]}"
    assert client.login(spaced, PASSWORD)[1] == view
    token2, patron = client.login(data.email.upper(), PASSWORD)
    assert patron == view and token2 != token

    unknown = refusal(lambda: client.login("nobody@example.be", PASSWORD))
    assert (unknown.code, unknown.fields, unknown.detail) == ("login_failed", {}, {})

    for left in (4, 3, 2, 1):
        error = refusal(lambda: client.login(card, "wrong password"))
        assert (error.code, error.detail) == ("login_failed", {"attempts_left": left})
    before = utcnow()
    locked = refusal(lambda: client.login(card, "wrong password"))
    assert locked.code == "account_locked" and set(locked.detail) == {"until"}
    until = locked.detail["until"]
    assert isinstance(until, datetime) and until.tzinfo is None
    assert timedelta(minutes=14, seconds=55) <= until - before <= timedelta(minutes=15, seconds=5)
    # Locked: even the right password is refused until then.
    again = refusal(lambda: client.login(card, PASSWORD))
    assert again.code == "account_locked"
    assert abs(again.detail["until"] - until) < timedelta(seconds=3)  # type: ignore[operator]


def test_whoami_logout_and_an_ended_session(registry: Registry) -> None:
    client = registry.client
    card, token = registry.patron()
    assert client.whoami(token).card_number == card
    client.logout(token)
    client.logout(token)  # twice is fine
    client.logout("")  # nobody is fine too
    for call in (lambda: client.whoami(token), lambda: client.status(token, "nl"),
                 lambda: client.claim(token, "excel-basics"),
                 lambda: client.withdraw(token, "excel-basics"),
                 lambda: client.give_up_seat(token), lambda: client.leave_waiting_list(token),
                 lambda: client.whoami("never-issued"), lambda: client.whoami("")):
        error = refusal(call)
        assert (error.code, error.fields, error.detail) == ("session_invalid", {}, {})


# --- Seats -----------------------------------------------------------------------------------


def test_claim_seat_same_again_and_the_waiting_list(registry: Registry) -> None:
    client, service = registry.client, registry.service
    _, first = registry.patron()
    assert client.claim(first, "excel-basics") == ClaimResult(Standing.SEATED, None, True)
    assert client.claim(first, "excel-basics") == ClaimResult(Standing.SEATED, None, False)
    assert client.claim(first, "instagram") == ClaimResult(Standing.SEATED, None, False)
    assert client.programme_status() == ProgrammeStatus(2000, 1, 0)
    assert refusal(lambda: client.claim(first, "no-such-course")).code == "course_not_found"

    service.set_cap(1, actor="test")
    _, second = registry.patron()
    _, third = registry.patron()
    assert client.claim(second, "instagram") == ClaimResult(Standing.WAITING, 1, False)
    assert client.claim(third, "word-basics") == ClaimResult(Standing.WAITING, 2, False)
    assert client.claim(second, "instagram") == ClaimResult(Standing.WAITING, 1, False)
    assert client.programme_status() == ProgrammeStatus(1, 1, 2)

    for token in (first, second, third):
        for lang in ("nl", "fr", "en"):
            status = client.status(token, lang)
            assert isinstance(status, PatronStatus)
            assert status == service.status(token, lang)
    status = client.status(first, "en")
    assert [e.course_slug for e in status.enrolments] == ["excel-basics", "instagram"]
    assert isinstance(status.seated_at, datetime) and status.seated_at.tzinfo is None
    assert client.status(third, "nl").position == 2


def test_the_outlook_announces_what_the_claim_then_gives(registry: Registry) -> None:
    """Fair share with Antwerp at its quota, a pending account in Kortrijk, one seat left:
    each is told beforehand what the claim then gives them, seat or place in line."""
    client, service = registry.client, registry.service
    service.set_cap(3, actor="test")
    service.policies.set_seat_policy("grant", 3, True, {"ANT": "1"}, actor="test")
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5, 6], "verify", 14)},
                                              actor="test")
    _, seated = registry.patron()
    assert client.claim_outlook(seated) == ClaimOutlook(Standing.SEATED)
    assert client.claim(seated, "excel-basics").standing is Standing.SEATED
    _, over_quota = registry.patron()
    told = client.claim_outlook(over_quota)
    assert told == ClaimOutlook(Standing.WAITING, 1, why_wait=WaitReason.QUOTA)
    assert told == service.claim_outlook(over_quota)
    got = client.claim(over_quota, "excel-basics")
    assert (got.standing, got.position) == (told.standing, told.position)
    _, pending = registry.patron(library_code="KOR-CENTRUM")
    told = client.claim_outlook(pending)
    assert told == ClaimOutlook(Standing.WAITING, 2, why_wait=WaitReason.PENDING)
    got = client.claim(pending, "instagram")
    assert (got.standing, got.position) == (told.standing, told.position)
    # Afterwards: the place is kept, with the reason they still wait.
    assert client.claim_outlook(pending) == ClaimOutlook(Standing.WAITING, 2, True,
                                                         WaitReason.PENDING)
    assert client.claim_outlook(seated) == ClaimOutlook(Standing.SEATED, kept=True)
    assert client.programme_status() == ProgrammeStatus(3, 1, 2)


def test_withdraw(registry: Registry) -> None:
    client, service = registry.client, registry.service
    _, token = registry.patron(language="fr")
    client.claim(token, "excel-basics")
    client.claim(token, "instagram")
    after = client.withdraw(token, "excel-basics")
    assert after == service.status(token, "fr")  # in the patron's language
    assert after.standing is Standing.SEATED
    assert [e.course_slug for e in after.enrolments] == ["instagram"]
    for slug in ("excel-basics", "no-such-course", ""):
        error = refusal(lambda s=slug: client.withdraw(token, s))
        assert (error.code, error.fields, error.detail) == ("not_enrolled", {}, {})
    last = client.withdraw(token, "instagram")  # the last course gives the seat up
    assert last == PatronStatus(Standing.NONE, None, [], None)
    assert client.programme_status().seats_taken == 0


def test_give_up_seat_promotes_the_next_in_line(registry: Registry) -> None:
    client, service = registry.client, registry.service
    service.set_cap(1, actor="test")
    _, holder = registry.patron()
    _, next_ = registry.patron()
    _, after = registry.patron()
    error = refusal(lambda: client.give_up_seat(holder))
    assert (error.code, error.fields, error.detail) == ("not_seated", {}, {})
    client.claim(holder, "excel-basics")
    client.claim(next_, "instagram")
    client.claim(after, "word-basics")
    assert refusal(lambda: client.give_up_seat(next_)).code == "not_seated"

    assert client.give_up_seat(holder) is None
    promoted = client.status(next_, "en")
    assert promoted.standing is Standing.SEATED and promoted.position is None
    assert promoted.seated_at is not None
    assert [e.course_slug for e in promoted.enrolments] == ["instagram"]
    assert client.status(after, "en").position == 1
    assert client.status(holder, "en") == PatronStatus(Standing.NONE, None, [], None)
    assert client.programme_status() == ProgrammeStatus(1, 1, 1)
    assert refusal(lambda: client.give_up_seat(holder)).code == "not_seated"


def test_leave_waiting_list(registry: Registry) -> None:
    client, service = registry.client, registry.service
    service.set_cap(1, actor="test")
    _, holder = registry.patron()
    _, first = registry.patron()
    _, second = registry.patron()
    for token in (holder, first, second):
        client.claim(token, "excel-basics")
    for token in (holder, registry.patron()[1]):
        error = refusal(lambda t=token: client.leave_waiting_list(t))
        assert (error.code, error.fields, error.detail) == ("not_waiting", {}, {})
    assert client.leave_waiting_list(first) is None
    assert client.status(first, "en") == PatronStatus(Standing.NONE, None, [], None)
    assert client.status(second, "en").position == 1
    assert refusal(lambda: client.leave_waiting_list(first)).code == "not_waiting"
    assert client.programme_status() == ProgrammeStatus(1, 1, 1)


def test_my_data_shows_everything_held_then_erasure_frees_the_seat(registry: Registry) -> None:
    client, service = registry.client, registry.service
    service.set_cap(1, actor="test")
    card, holder = registry.patron()
    _, waiting = registry.patron()
    client.claim(holder, "excel-basics")
    client.claim(waiting, "excel-basics")
    data = client.my_data(holder, "fr")
    assert data.card_number == card and "@" in data.email and data.birth_date.year > 1900
    assert data.library_code == "ANT-PERMEKE" and data.status.standing is Standing.SEATED
    assert [e.course_slug for e in data.status.enrolments] == ["excel-basics"]
    wrong = refusal(lambda: client.erase_account(holder, "not the password"))
    assert (wrong.code, wrong.fields) == ("invalid", {"password": "password_wrong"})
    assert client.erase_account(holder, PASSWORD) is None
    assert refusal(lambda: client.my_data(holder, "en")).code == "session_invalid"
    assert client.status(waiting, "en").standing is Standing.SEATED
    assert client.programme_status() == ProgrammeStatus(1, 1, 0)


def test_maintenance_message(registry: Registry) -> None:
    client, service = registry.client, registry.service
    assert client.maintenance() is None
    until = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    messages = {"nl": "Onderhoud", "fr": "Maintenance", "en": "Maintenance"}
    service.set_maintenance(messages, until, actor="it")
    assert client.maintenance() == Maintenance(messages=messages, until=until)


# --- Both clients, one script, one transcript ------------------------------------------------


def transcript(registry: Registry) -> list[Any]:
    """Runs one script through a client; volatile values (cards, tokens, times) normalised."""
    client, service = registry.client, registry.service
    out: list[Any] = []
    cards: dict[str, str] = {}

    def norm(value: Any) -> Any:
        if isinstance(value, datetime):
            return "<time>"
        if isinstance(value, str) and value in cards:
            return cards[value]
        if isinstance(value, list):
            return [norm(v) for v in value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return (type(value).__name__,
                    {f.name: norm(getattr(value, f.name)) for f in dataclasses.fields(value)})
        return value

    def record(name: str, call: Callable[[], Any]) -> Any:
        try:
            result = call()
        except RegistryError as error:
            detail = {k: norm(v) for k, v in error.detail.items()}
            out.append((name, "refused", error.code, error.fields, detail))
            return None
        out.append((name, norm(result)))
        return result

    record("institutions", client.institutions)
    for lang in ("nl", "fr", "en"):
        record(f"catalogue {lang}", lambda lang=lang: client.catalogue(lang))
        record(f"course {lang}", lambda lang=lang: client.course("ai-assistants", lang))
    record("no course", lambda: client.course("nope", "en"))
    record("programme", client.programme_status)
    record("academy", client.academy_url)
    record("invalid", lambda: client.register(patron_data(1, postcode="x", consent=False)))
    tokens = []
    for n in range(3):
        card = record("register", lambda n=n: client.register(patron_data(100 + n)))
        cards[card] = f"<card {n}>"
        out[-1] = ("register", cards[card])
        session = record("login", lambda card=card: client.login(card, PASSWORD))
        tokens.append(session[0])
        out[-1] = ("login", norm(session[1]))
    record("taken", lambda: client.register(patron_data(100)))
    record("wrong", lambda: client.login(next(iter(cards)), "nope nope"))
    record("whoami", lambda: client.whoami(tokens[0]))
    record("claim", lambda: client.claim(tokens[0], "excel-basics"))
    record("claim again", lambda: client.claim(tokens[0], "excel-basics"))
    service.set_cap(1, actor="test")
    record("claim waits", lambda: client.claim(tokens[1], "instagram"))
    record("claim waits 2", lambda: client.claim(tokens[2], "instagram"))
    record("status", lambda: client.status(tokens[1], "fr"))
    record("not waiting", lambda: client.leave_waiting_list(tokens[0]))
    record("not seated", lambda: client.give_up_seat(tokens[1]))
    record("not enrolled", lambda: client.withdraw(tokens[0], "instagram"))
    record("give up", lambda: client.give_up_seat(tokens[0]))
    record("promoted", lambda: client.status(tokens[1], "nl"))
    record("withdraw", lambda: client.withdraw(tokens[1], "instagram"))
    record("promoted 2", lambda: client.status(tokens[2], "en"))
    record("leave", lambda: client.leave_waiting_list(tokens[2]))
    record("logout", lambda: client.logout(tokens[2]))
    record("ended", lambda: client.whoami(tokens[2]))
    record("programme", client.programme_status)
    return out


def test_the_same_script_gives_the_same_transcript(db_url, tmp_path, stack) -> None:
    runs = {}
    for kind in ("local", "http"):
        app = registry_app(db_url, tmp_path)
        runs[kind] = transcript(Registry(kind, connect(kind, app, stack),
                                         app.extensions["registry_service"]))
    assert len(runs["local"]) == len(runs["http"]) > 30
    for local, http in zip(runs["local"], runs["http"], strict=True):
        assert local == http


# --- The terminal itself over HTTP -----------------------------------------------------------


def test_the_terminal_pages_over_http(db_url, tmp_path, stack) -> None:
    """`create_app` with REGISTRY_URL: the patron pages come from the central registry, and a
    registry that is gone is a 503 page that says nothing was lost."""
    app = registry_app(db_url, tmp_path)
    service: RegistryService = app.extensions["registry_service"]
    stack.callback(service.store.engine.dispose)
    token, _ = service.add_terminal("ANT-PERMEKE", "test kiosk", actor="test")
    server = serve(app)
    url = server.__enter__()
    running = [True]

    def stop() -> None:
        if running.pop():
            server.__exit__(None, None, None)

    stack.callback(lambda: running and stop())
    terminal = build_app(tmp_path / "terminal", REGISTRY_URL=url, REGISTRY_TOKEN=token,
                         REGISTRY_DEADLINE=3)
    client = terminal.extensions["registry"]
    assert isinstance(client, HttpRegistryClient) and client.deadline == 3
    assert "registry_service" not in terminal.extensions  # nothing of the registry runs here
    browser = terminal.test_client()
    page = browser.get("/en/courses/")
    assert page.status_code == 200
    month = service.catalogue("en").module_of_the_month
    assert month is not None and month.title in page.get_data(as_text=True)

    stop()  # the registry goes away
    gone = browser.get("/en/courses/excel-basics")
    assert gone.status_code == 503
    assert "Nothing was lost" in gone.get_data(as_text=True)
    client.close()


def test_change_password_after_a_one_time_password(registry: Registry) -> None:
    from kiosk.registry.roles import Role, StaffView

    client, service = registry.client, registry.service
    card, token = registry.patron()
    assert client.whoami(token).must_change_password is False
    wrong = refusal(lambda: client.change_password(token, "not it at all", "brand new one"))
    assert (wrong.code, wrong.fields) == ("invalid", {"old_password": "current_password_wrong"})
    short = refusal(lambda: client.change_password(token, PASSWORD, "short"))
    assert short.fields == {"new_password": "password_too_short"}

    librarian = StaffView(1, "an.peeters", "An Peeters", Role.LIBRARIAN, "ANT", "ANT-PERMEKE")
    patron_id = service.desk.find(librarian, card)[0].id
    secret = service.desk.set_password(librarian, patron_id, None)
    assert secret is not None
    assert refusal(lambda: client.whoami(token)).code == "session_invalid"
    token, view = client.login(card, secret)
    assert view.must_change_password is True and client.whoami(token) == view
    # Nothing else until then, refused alike in-process and over HTTP.
    for call in (lambda: client.status(token, "en"),
                 lambda: client.claim(token, "excel-basics"),
                 lambda: client.my_data(token, "en"),
                 lambda: client.give_up_seat(token)):
        error = refusal(call)
        assert (error.code, error.fields, error.detail) == ("password_change_required", {}, {})
    assert client.change_password(token, secret, "all mine now") is None
    assert client.claim(token, "excel-basics").standing is Standing.SEATED
    assert client.whoami(token).must_change_password is False
    assert client.login(card, "all mine now")[1].must_change_password is False
    assert refusal(lambda: client.login(card, secret)).code == "login_failed"


def test_the_patron_changes_their_e_mail_address_and_language(registry: Registry) -> None:
    client, service = registry.client, registry.service
    registry.patron(email="taken@example.be")
    card, token = registry.patron(email="mine@example.be", language="nl")
    assert client.change_my_details(token, "mine@example.be", "fr") == ("language",)
    assert client.change_my_details(token, "mine@example.be", "fr") == ()
    wrong = refusal(lambda: client.change_my_details(token, "new@example.be", "fr", "no"))
    assert (wrong.code, wrong.fields) == ("invalid", {"password": "current_password_wrong"})
    taken = refusal(lambda: client.change_my_details(token, "taken@example.be", "fr",
                                                     PASSWORD))
    assert taken.fields == {"email": "email_taken"}
    invalid = refusal(lambda: client.change_my_details(token, "nope", "xx"))
    assert invalid.fields == {"email": "email_invalid", "language": "language_unknown"}
    assert client.change_my_details(token, "New@example.be", "fr", PASSWORD) == ("email",)
    data = client.my_data(token, "en")
    assert (data.email, data.language) == ("new@example.be", "fr")
    assert data == service.my_data(token, "en")
    assert client.login("new@example.be", PASSWORD)[1].card_number == card


# --- Assisted mode: a librarian's staff session on the kiosk ---------------------------------


def test_a_librarian_assists_only_patrons_of_their_own_institution(registry: Registry) -> None:
    """Els Maes serves Kortrijk: for a patron of Antwerpen every assisted action is refused
    alike in-process and over HTTP, and a sign-up is only at Kortrijk's libraries."""
    from sqlalchemy import select

    from kiosk.registry.store import AuditEntry
    from tests.support.factories import STAFF_PASSWORDS

    client, service = registry.client, registry.service
    staff_token, _ = client.staff_login("els.maes", STAFF_PASSWORDS["els.maes"])
    _, token = registry.patron(library_code="ANT-PERMEKE")
    client.claim(token, "instagram")
    for call in (lambda: client.claim(token, "excel-basics", staff_token=staff_token),
                 lambda: client.withdraw(token, "instagram", staff_token=staff_token),
                 lambda: client.give_up_seat(token, staff_token=staff_token),
                 lambda: client.leave_waiting_list(token, staff_token=staff_token)):
        error = refusal(call)
        assert (error.code, error.fields, error.detail) == ("staff_forbidden", {}, {})
    assert [e.course_slug for e in client.status(token, "en").enrolments] == ["instagram"]
    other = refusal(lambda: client.register(patron_data(library_code="ANT-PERMEKE"),
                                            staff_token=staff_token, identity_checked=True))
    assert (other.code, other.fields) == ("invalid", {"library_code": "library_not_served"})
    client.register(patron_data(library_code="KOR-CENTRUM"), staff_token=staff_token)
    with service.store.read() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.actor == "staff:els.maes",
                                                     AuditEntry.action == "patron_registered"))
        assert entry.institution == "KOR"
        if registry.kind == "http":  # the terminal it came from (in-process: no place here)
            assert entry.terminal.startswith("terminal:")



def test_staff_sessions_tag_the_patrons_actions_and_end_at_logout(registry: Registry) -> None:
    from sqlalchemy import select

    from kiosk.registry.store import AuditEntry
    from tests.support.factories import STAFF_PASSWORDS

    client, service = registry.client, registry.service
    staff_token, staff = client.staff_login("an.peeters", STAFF_PASSWORDS["an.peeters"])
    assert staff.username == "an.peeters" and staff.library_code == "ANT-PERMEKE"
    assert client.staff_whois(staff_token) == staff == service.staff.whois(staff_token)
    _, token = registry.patron()
    assert client.claim(token, "excel-basics", staff_token=staff_token).standing \
        is Standing.SEATED
    client.withdraw(token, "excel-basics", staff_token=staff_token)
    card = client.register(patron_data(), staff_token=staff_token, identity_checked=True)
    with service.store.read() as s:
        entries = {e.action: (e.actor, e.institution, dict(e.detail))
                   for e in s.scalars(select(AuditEntry))}
    for action in ("patron_enrolled", "patron_withdrawn", "patron_registered"):
        actor, institution, detail = entries[action]
        assert detail["assisted_by"] == staff.assisted_label, action
        assert (actor, institution) == ("staff:an.peeters", "ANT")
    assert entries["patron_registered"][2]["identity_checked"] is True
    assert is_valid_card_number(card)

    client.staff_logout(staff_token)
    client.staff_logout(staff_token)  # twice is fine
    client.staff_logout("")
    for call in (lambda: client.staff_whois(staff_token),
                 lambda: client.claim(token, "instagram", staff_token=staff_token),
                 lambda: client.give_up_seat(token, staff_token=staff_token),
                 lambda: client.leave_waiting_list(token, staff_token=staff_token),
                 lambda: client.staff_whois("")):
        error = refusal(call)
        assert (error.code, error.fields, error.detail) == ("staff_session_invalid", {}, {})
    assert client.status(token, "en").enrolments == []  # the refused claim did nothing

    forbidden = refusal(lambda: client.staff_login("it.support", STAFF_PASSWORDS["it.support"]))
    assert (forbidden.code, forbidden.fields, forbidden.detail) == ("staff_forbidden", {}, {})
    wrong = refusal(lambda: client.staff_login("an.peeters", "not the password"))
    assert (wrong.code, wrong.fields) == ("login_failed", {})
    alone = refusal(lambda: client.register(patron_data(), identity_checked=True))
    assert (alone.code, alone.fields) == ("invalid", {"identity_checked": "staff_only"})


def test_new_course_e_mails_are_chosen_with_consent_and_stopped(registry: Registry) -> None:
    client, service = registry.client, registry.service
    service.notices.enabled = True  # what SMTP_HOST and PUBLIC_URL give the registry
    service.alerts.link_base = "https://kiosk-registry.example.be"
    _card, token = registry.patron()
    choice = client.alerts(token, "nl")
    assert choice == service.alerts.choice(token, "nl")
    assert choice.chosen == [] and choice.available and choice.has_email
    assert [c.name for c in choice.categories][:2] == ["Bureautica", "Digitale veiligheid"]

    unasked = refusal(lambda: client.choose_alerts(token, ["office"], consent=False))
    assert (unasked.code, unasked.fields) == ("invalid", {"consent": "alerts_consent_required"})
    unknown = refusal(lambda: client.choose_alerts(token, ["astrology"], consent=True))
    assert unknown.fields == {"categories": "category_unknown"}
    assert client.choose_alerts(token, ["languages", "office"], consent=True) is None
    assert client.alerts(token, "en").chosen == ["office", "languages"]
    assert client.choose_alerts(token, [], consent=False) is None  # stop all
    assert client.alerts(token, "en").chosen == []
    assert refusal(lambda: client.alerts("not-a-session", "en")).code == "session_invalid"
