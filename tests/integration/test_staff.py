"""Staff accounts and log-in, branch IT's terminals page and the maintenance message page,
on the kiosk (embedded registry) and on the central registry server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kiosk.cli import main
from kiosk.registry.domain import RegistryError
from kiosk.registry.roles import GRANTS, Permission, Role
from kiosk.registry.services import utcnow
from kiosk.registry.store import AuditEntry, StaffSession
from tests.support.factories import CONFIRMED, STAFF_PASSWORDS, build_app, log_in_staff


def audit(service, action: str) -> list:  # type: ignore[no-untyped-def]
    """(actor, detail) rows of the audit log for one action, oldest first."""
    with service.store.read() as s:
        return list(s.execute(select(AuditEntry.actor, AuditEntry.detail)
                              .where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)).all())


# --- Accounts and log-in (the registry, on SQLite and PostgreSQL) -------------------------


def test_a_staff_account_logs_in_and_out(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    made = service.staff.create("Jan.Smets", "Jan Smets", "librarian", "a long staff secret",
                                institution_code="HAS", library_code="HAS-KERMT", actor="cli")
    assert (made.username, made.role, made.institution_code) == ("jan.smets", Role.LIBRARIAN,
                                                                 "HAS")
    token, who = service.staff.login(" JAN.SMETS ", "a long staff secret", where="desk")
    assert who == made and service.staff.whois(token) == made
    assert who.assisted_label == "Jan Smets (Bibliotheek Kermt)"
    service.staff.logout(token)
    with pytest.raises(RegistryError) as ended:
        service.staff.whois(token)
    assert ended.value.code == "staff_session_invalid"
    assert [e.actor for e in audit(service, "staff_login")] == ["staff:jan.smets"]


def test_account_rules_give_field_codes(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    with pytest.raises(RegistryError) as refused:
        service.staff.create("x", " ", "janitor", "short", actor="cli")
    assert refused.value.fields == {"username": "username_invalid", "display_name": "required",
                                    "role": "role_unknown", "password": "staff_password_too_short"}
    with pytest.raises(RegistryError) as refused:
        service.staff.create("new.librarian", "New", "librarian", "a long staff secret",
                             actor="cli")
    assert refused.value.fields == {"institution_code": "required"}
    with pytest.raises(RegistryError) as refused:
        service.staff.create("coordinator", "Again", "coordinator", "a long staff secret",
                             institution_code="ANT", library_code="KOR-HEULE", actor="cli")
    assert refused.value.fields == {"username": "username_taken",
                                    "library_code": "library_not_in_institution"}


def test_wrong_passwords_lock_the_account_and_disabling_ends_sessions(make_service) -> None:  # type: ignore[no-untyped-def]
    now = [utcnow()]
    service = make_service(clock=lambda: now[0])
    token, _ = service.staff.login("an.peeters", STAFF_PASSWORDS["an.peeters"])
    for _ in range(4):
        with pytest.raises(RegistryError) as wrong:
            service.staff.login("an.peeters", "not it")
        assert wrong.value.code == "login_failed"
    with pytest.raises(RegistryError) as locked:
        service.staff.login("an.peeters", "not it")
    assert locked.value.code == "account_locked"
    with pytest.raises(RegistryError):  # even the right password waits for the lock to end
        service.staff.login("an.peeters", STAFF_PASSWORDS["an.peeters"])
    now[0] += timedelta(minutes=16)
    service.staff.login("an.peeters", STAFF_PASSWORDS["an.peeters"])
    service.staff.disable("an.peeters", actor="staff:coordinator")
    with pytest.raises(RegistryError):
        service.staff.whois(token)
    with pytest.raises(RegistryError) as disabled:
        service.staff.login("an.peeters", STAFF_PASSWORDS["an.peeters"])
    assert disabled.value.code == "login_failed"


def test_an_idle_staff_session_ends(make_service) -> None:  # type: ignore[no-untyped-def]
    now = [utcnow()]
    service = make_service(clock=lambda: now[0])
    token, _ = service.staff.login("coordinator", STAFF_PASSWORDS["coordinator"])
    now[0] += timedelta(minutes=19)
    service.staff.whois(token)  # still there, and kept alive
    now[0] += timedelta(minutes=19)
    service.staff.whois(token)
    now[0] += timedelta(minutes=21)
    with pytest.raises(RegistryError):
        service.staff.whois(token)
    with service.store.read() as s:  # only a digest of the token is stored
        assert token not in {row.token_hash for row in s.scalars(select(StaffSession))}


def test_only_coordinators_see_the_whole_programme() -> None:
    assert Permission.TERMINALS in GRANTS[Role.IT_ADMIN]
    assert Permission.TERMINALS not in GRANTS[Role.COORDINATOR]
    assert GRANTS[Role.LIBRARIAN] < GRANTS[Role.COORDINATOR]
    assert not GRANTS[Role.IT_ADMIN] & {Permission.DESK, Permission.AUDIT}


# --- Pages -----------------------------------------------------------------------------


def test_staff_pages_ask_for_a_staff_log_in(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/nl/staff/terminals")
    assert response.status_code == 302
    assert response.location.startswith("/nl/staff/login?next=/nl/staff/terminals")
    page = client.get(response.location).get_data(as_text=True)
    assert "Gebruikersnaam" in page or "user name" in page.lower()


def test_log_in_page_refuses_in_the_pages_language(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/fr/staff/login", data={"username": "an.peeters",
                                                     "password": "wrong"})
    assert response.status_code == 422
    assert 'lang="fr"' in response.get_data(as_text=True)
    empty = client.post("/en/staff/login", data={"username": "", "password": ""})
    assert empty.status_code == 422 and "Type the staff user name." in empty.get_data(as_text=True)


def test_log_in_goes_back_where_asked_never_off_site(client) -> None:  # type: ignore[no-untyped-def]
    data = {"username": "it.support", "password": STAFF_PASSWORDS["it.support"]}
    response = client.post("/en/staff/login?next=/en/staff/maintenance", data=data)
    assert response.location == "/en/staff/maintenance"
    response = client.post("/en/staff/login?next=//evil.example/", data=data)
    assert response.location == "/en/staff/"


def test_the_menu_shows_what_the_role_may_do(staff_client) -> None:  # type: ignore[no-untyped-def]
    it_home = staff_client("it.support").get("/en/staff/").get_data(as_text=True)
    assert "/en/staff/terminals" in it_home and "/en/staff/maintenance" in it_home
    librarian = staff_client("an.peeters")
    assert "/en/staff/terminals" not in librarian.get("/en/staff/").get_data(as_text=True)
    refused = librarian.get("/en/staff/terminals")
    assert refused.status_code == 403
    assert "role does not allow" in refused.get_data(as_text=True)


def test_it_admin_sees_terminal_states_and_revokes_a_token(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    _token, terminal = service.add_terminal("ANT-PERMEKE", "Permeke kiosk 2", actor="cli")
    it = staff_client("it.support", "nl")
    page = it.get("/nl/staff/terminals").get_data(as_text=True)
    assert "Permeke kiosk 2" in page and "offline" in page
    response = it.post(f"/nl/staff/terminals/{terminal.id}/revoke", data=CONFIRMED)
    assert response.status_code == 302
    assert service.terminals()[0].revoked
    entry = audit(service, "terminal_revoked")[0]
    assert entry.actor == "staff:it.support" and entry.detail == {"terminal": terminal.id}
    assert it.post("/nl/staff/terminals/999/revoke", data=CONFIRMED).status_code == 404


def test_maintenance_message_from_the_staff_page(staff_client, client, service) -> None:  # type: ignore[no-untyped-def]
    coordinator = staff_client("coordinator")
    bad = coordinator.post("/en/staff/maintenance", data={"nl": "Onderhoud", "fr": "",
                                                          "en": "Maintenance",
                                                          "until": "2001-01-01T10:00"})
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert "Type the message in French." in body
    assert "Please choose a moment in the future." in body
    assert service.maintenance() is None
    typed = (utcnow() + timedelta(days=1)).replace(second=0, microsecond=0)
    done = coordinator.post("/en/staff/maintenance", data={
        "nl": "Onderhoud", "fr": "Maintenance", "en": "Servicing",
        "until": typed.strftime("%Y-%m-%dT%H:%M")})
    assert done.status_code == 302
    shown = service.maintenance()
    assert shown is not None and shown.messages["fr"] == "Maintenance"
    # Typed in Belgian time, stored in UTC: one hour earlier in winter, two in summer.
    assert typed - shown.until in (timedelta(hours=1), timedelta(hours=2))
    assert client.get("/fr/").status_code == 503
    assert coordinator.post("/en/staff/maintenance/clear").status_code == 302
    assert service.maintenance() is None
    assert [e.actor for e in audit(service, "maintenance_set")] == ["staff:coordinator"]


def test_staff_log_out_ends_the_registry_session(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    it = staff_client("it.support")
    with service.store.read() as s:
        assert s.scalars(select(StaffSession).where(StaffSession.revoked_at.is_(None))).all()
    it.post("/en/staff/logout")
    assert it.get("/en/staff/terminals").status_code == 302
    with service.store.read() as s:
        assert not s.scalars(select(StaffSession).where(StaffSession.revoked_at.is_(None))).all()


def logouts(service) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with service.store.read() as s:
        return [(e.actor, e.terminal) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "staff_logout")
            .order_by(AuditEntry.id))]


def test_log_outs_and_the_end_of_a_take_over_are_audited(staff_client, client, service) -> None:  # type: ignore[no-untyped-def]
    desk = staff_client("it.support")
    with service.store.read() as s:
        token_hash = s.scalar(select(StaffSession.token_hash))
    desk.post("/en/staff/logout")
    assert logouts(service) == [("staff:it.support", "desk 127.0.0.1")]
    with service.store.read() as s:  # the same session, not ended twice
        assert s.scalar(select(StaffSession.revoked_at)
                        .where(StaffSession.token_hash == token_hash)) is not None
    desk.post("/en/staff/logout")
    assert len(logouts(service)) == 1

    client.post("/en/assist/", data={"username": "an.peeters",
                                     "password": STAFF_PASSWORDS["an.peeters"]})
    assert client.post("/en/assist/end").status_code == 302
    assert logouts(service)[-1] == ("staff:an.peeters", "kiosk 127.0.0.1")


def test_a_hand_back_is_audited_and_needs_a_live_session(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    token, _ = service.assist.start("an.peeters", STAFF_PASSWORDS["an.peeters"],
                                    where="kiosk 1")
    service.staff.hand_back(token)
    service.staff.whois(token)  # the session lives on
    service.staff.logout(token)
    with pytest.raises(RegistryError) as ended:
        service.staff.hand_back(token)
    assert ended.value.code == "staff_session_invalid"
    with service.store.read() as s:
        rows = s.execute(select(AuditEntry.action, AuditEntry.actor, AuditEntry.terminal)
                         .order_by(AuditEntry.id)).all()
    assert [tuple(r) for r in rows] == [
        ("staff_login", "staff:an.peeters", "kiosk 1"),
        ("assist_handed_back", "staff:an.peeters", "kiosk 1"),
        ("staff_logout", "staff:an.peeters", "kiosk 1")]


def test_a_kiosk_visit_reset_ends_a_staff_session_too(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    it = staff_client("it.support")
    it.post("/visit/reset")
    assert it.get("/en/staff/terminals").status_code == 302


# --- On the central registry server -----------------------------------------------------


def test_the_registry_server_serves_the_staff_pages_and_keeps_json_for_the_api(
        tmp_path: Path) -> None:
    app = build_app(tmp_path, registry=True)
    client = app.test_client()
    assert client.get("/api/v1/nothing").get_json()["error"]["code"]
    assert client.get("/en/staff/terminals").status_code == 302
    log_in_staff(client, "it.support")
    page = client.get("/en/staff/terminals")
    assert page.status_code == 200 and "<h1>Terminals</h1>" in page.get_data(as_text=True)
    missing = client.get("/en/staff/nothing-here")
    assert missing.status_code == 404 and "<html" in missing.get_data(as_text=True)


# --- The command line ---------------------------------------------------------------------


def test_add_staff_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_INSTANCE_PATH", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    runner = CliRunner()
    assert runner.invoke(main, ["registry", "upgrade", "--database-url", url,
                                "--demo-data"]).exit_code == 0
    made = runner.invoke(main, ["registry", "add-staff", "--database-url", url,
                                "--username", "lies.wouters", "--name", "Lies Wouters",
                                "--role", "librarian", "--library", "DEN-CENTRUM",
                                "--password-stdin"], input="een lang geheim wachtwoord\n")
    assert made.exit_code == 0, made.output
    listed = runner.invoke(main, ["registry", "staff", "--database-url", url]).output
    assert "lies.wouters" in listed and "DEN" in listed
    short = runner.invoke(main, ["registry", "add-staff", "--database-url", url,
                                 "--username", "x", "--name", "X", "--role", "coordinator",
                                 "--password-stdin"], input="short\n")
    assert short.exit_code == 1
    assert "username: username_invalid" in short.output and "password" in short.output
    off = runner.invoke(main, ["registry", "disable-staff", "--database-url", url,
                               "lies.wouters"])
    assert off.exit_code == 0
    assert "disabled" in runner.invoke(main, ["registry", "staff", "--database-url",
                                              url]).output


# --- Coordinators make and disable staff accounts ---------------------------------------------


def test_a_coordinator_makes_and_disables_a_staff_account(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    coordinator = staff_client("coordinator")
    bad = coordinator.post("/en/staff/accounts", data={
        "username": "Jo", "display_name": "", "role": "librarian", "library": "",
        "password": "short"})
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    for text in ("Use at least 3 lower-case letters", "Type the name.",
                 "A staff password needs at least 12 characters."):
        assert text in body
    made = coordinator.post("/en/staff/accounts", data={
        "username": "jo.verhoeven", "display_name": "Jo Verhoeven", "role": "librarian",
        "library": "HAL-BUIZINGEN", "password": "twelve chars long"})
    assert made.status_code == 302
    token, jo = service.staff.login("jo.verhoeven", "twelve chars long")
    assert (jo.role, jo.institution_code, jo.library_code) == (Role.LIBRARIAN, "HAL",
                                                               "HAL-BUIZINGEN")
    assert "jo.verhoeven" in coordinator.get("/en/staff/accounts").get_data(as_text=True)
    coordinator.post("/en/staff/accounts/jo.verhoeven/disable")
    with pytest.raises(RegistryError):
        service.staff.whois(token)
    assert [a for a, _ in audit(service, "staff_created")] == ["staff:coordinator"]
    assert [a for a, _ in audit(service, "staff_disabled")] == ["staff:coordinator"]
    coordinator.post("/en/staff/accounts/coordinator/disable")  # not oneself
    assert coordinator.get("/en/staff/accounts").status_code == 200
    assert staff_client("an.peeters").get("/en/staff/accounts").status_code == 403


def test_a_staff_member_changes_their_own_password_and_is_logged_out_elsewhere(
        staff_client, app) -> None:  # type: ignore[no-untyped-def]
    here, elsewhere = staff_client("an.peeters"), staff_client("an.peeters")
    page = here.get("/en/staff/password")
    assert page.status_code == 200 and "Change my password" in page.get_data(as_text=True)
    short = here.post("/en/staff/password", data={"old_password": "demo-librarian",
                                                  "new_password": "too short"})
    assert short.status_code == 422
    assert "A staff password needs at least 12 characters." in short.get_data(as_text=True)
    done = here.post("/nl/staff/password", data={"old_password": "demo-librarian",
                                                 "new_password": "mijn eigen lang wachtwoord"})
    assert done.status_code == 302 and done.location.endswith("/nl/staff/")
    assert here.get("/nl/staff/").status_code == 200  # this session goes on
    assert elsewhere.get("/en/staff/").status_code == 302  # the other one ended
    fresh = app.test_client()
    refused = fresh.post("/en/staff/login", data={"username": "an.peeters",
                                                  "password": "demo-librarian"})
    assert refused.status_code == 422
    assert fresh.post("/en/staff/login", data={
        "username": "an.peeters", "password": "mijn eigen lang wachtwoord"}).status_code == 302
    assert audit(app.extensions["registry_service"], "staff_password_changed")


def test_wrong_current_passwords_lock_the_staff_account_and_end_its_sessions(
        staff_client, app) -> None:  # type: ignore[no-untyped-def]
    here, elsewhere = staff_client("els.maes", "fr"), staff_client("els.maes")
    for attempt in range(4):
        wrong = here.post("/fr/staff/password", data={"old_password": f"guess {attempt}",
                                                      "new_password": "a long new password"})
        assert wrong.status_code == 422
        assert "Ce n’est pas votre mot de passe actuel." in wrong.get_data(as_text=True)
    locked = here.post("/fr/staff/password", data={"old_password": "guess 5",
                                                   "new_password": "a long new password"})
    assert locked.status_code == 302 and "/fr/staff/login" in locked.location
    assert "bloqué" in here.get(locked.location).get_data(as_text=True)
    for client in (here, elsewhere):  # logged out everywhere
        assert client.get("/en/staff/").status_code == 302
    refused = app.test_client().post("/en/staff/login", data={
        "username": "els.maes", "password": STAFF_PASSWORDS["els.maes"]})
    assert refused.status_code == 422  # locked, even with the right password
