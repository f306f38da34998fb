"""Take-over: a librarian unlocks assisted mode on the kiosk the patron uses, hands control back
for the password, takes it again only with their own password; everything done is tagged
"assisted by <staff> at <library>" in the audit log, and the mode ends with the visit."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from kiosk import security
from kiosk.registry.domain import RegistryError
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, Patron
from tests.support.factories import CONFIRMED, STAFF_PASSWORDS, add_patron, form_data
from tests.support.takeover import LABEL, log_in_patron, take_over, text


def staff_token(client: FlaskClient) -> str | None:
    with client.session_transaction() as sess:
        return sess.get("staff_token")


def audit(service: RegistryService, action: str) -> list[AuditEntry]:
    with service.store.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                         .order_by(AuditEntry.id)).all()
        s.expunge_all()
        return list(rows)


def patron_row(service: RegistryService, email: str) -> Patron:
    with service.store.read() as s:
        row = s.scalar(select(Patron).where(Patron.email == email))
        assert row is not None
        s.expunge(row)
        return row


# --- Unlocking assisted mode ------------------------------------------------------------------


def test_the_footer_entry_logs_a_librarian_in_and_the_banner_shows_on_every_page(
        client: FlaskClient) -> None:
    home = text(client.get("/en/"))
    assert 'href="/en/assist/?next=/en/"' in home and ">Librarian<" in home
    assert "Assisted by" not in home
    plain = text(client.get("/en/account/new"))
    assert "Identity document checked" not in plain

    response = take_over(client, next_="/en/account/new")
    assert response.status_code == 302 and response.location.endswith("/en/account/new")
    for path in ("/en/account/new", "/en/courses/", "/nl/courses/excel-basics", "/en/"):
        page = text(client.get(path))
        assert LABEL in page, path
        assert path.startswith("/nl") or "Hand back to the patron" in page
        assert ">Librarian<" not in page  # no second log-in while assisted
    form = text(client.get("/en/account/new"))
    assert "Identity document checked" in form
    assert "Hand back to the patron" in form and "End assisted mode" in form
    # On the sign-up the hand-back button sends the form itself: nothing typed is lost.
    assert re.search(r'<button[^>]*form="register-form"[^>]*name="hand_back"', form)


def test_the_french_banner_elides_de_before_the_librarians_name(client: FlaskClient) -> None:
    take_over(client, next_="/fr/")
    page = text(client.get("/fr/"))
    assert f"Avec l’aide d’{LABEL}" in page and "aide de An" not in page
    assert f"Assisted by {LABEL}" in text(client.get("/en/"))


@pytest.mark.parametrize(("username", "password", "says"), [
    ("an.peeters", "not the password", "The user name or password is not right."),
    ("it.support", None, "Your staff role does not include helping patrons at a kiosk."),
])
def test_a_wrong_password_or_a_role_without_the_desk_gets_no_assisted_mode(
        client: FlaskClient, service: RegistryService, username: str, password: str | None,
        says: str) -> None:
    response = take_over(client, username, password=password)
    assert response.status_code == 422 and says in text(response)
    assert staff_token(client) is None
    assert "Assisted by" not in text(client.get("/en/account/new"))
    if username == "it.support":  # its staff session was not left open either
        with service.store.read() as s:
            from kiosk.registry.store import StaffSession
            assert all(r.revoked_at is not None for r in s.scalars(select(StaffSession)))


# --- An assisted sign-up ----------------------------------------------------------------------


def test_an_assisted_sign_up_is_tagged_and_records_the_identity_check(
        client: FlaskClient, service: RegistryService) -> None:
    take_over(client)
    data = form_data(identity_checked="y", library="ANT-HOBOKEN")
    response = client.post("/en/account/new", data=data)
    assert response.status_code == 302, text(response)
    row = patron_row(service, data["email"])
    assert row.identity_checked_at is not None and row.identity_checked_by == "staff:an.peeters"
    [entry] = audit(service, "patron_registered")
    assert entry.actor == "staff:an.peeters" and entry.subject == f"patron#{row.id}"
    assert entry.institution == "ANT"  # the patron's library (Hoboken), chosen at the kiosk
    assert entry.terminal.endswith("127.0.0.1")  # the kiosk it was done at
    assert entry.detail["assisted_by"] == LABEL and entry.detail["identity_checked"] is True
    assert data["last_name"] not in str(entry.detail) and data["email"] not in str(entry.detail)
    # The patron is logged in, and assisted mode goes on across their log-in.
    assert LABEL in text(client.get("/en/account/created"))


@pytest.mark.parametrize("identity_checked", ["y", ""])
def test_a_librarian_signs_up_no_patron_of_another_institution(
        client: FlaskClient, service: RegistryService, identity_checked: str) -> None:
    """As at the desk: a librarian of Antwerpen makes no account at Muntpunt's library, with
    or without an identity check; the form says why and keeps what was typed."""
    take_over(client)
    data = form_data(identity_checked=identity_checked)  # MUN-MUNTPUNT
    response = client.post("/en/account/new", data=data)
    assert response.status_code == 422, text(response)
    assert "You can only create accounts at the libraries of your own institution." \
        in text(response) and data["email"] in text(response)
    with service.store.read() as s:
        assert s.scalar(select(Patron).where(Patron.email == data["email"])) is None
    assert audit(service, "patron_registered") == []


def test_the_coordinator_signs_up_a_patron_of_any_institution(
        client: FlaskClient, service: RegistryService) -> None:
    take_over(client, "coordinator")
    data = form_data(identity_checked="y")  # MUN-MUNTPUNT
    assert client.post("/en/account/new", data=data).status_code == 302
    assert patron_row(service, data["email"]).identity_checked_by == "staff:coordinator"
    [entry] = audit(service, "patron_registered")
    assert entry.institution == "MUN" and entry.terminal.endswith("127.0.0.1")


def test_a_sign_up_without_assisted_mode_cannot_claim_an_identity_check(
        client: FlaskClient, service: RegistryService) -> None:
    data = form_data(identity_checked="y")  # sent by hand: the box is not even shown
    assert client.post("/en/account/new", data=data).status_code == 302
    row = patron_row(service, data["email"])
    assert row.identity_checked_at is None and row.identity_checked_by == ""
    assert all("assisted_by" not in e.detail for e in audit(service, "patron_registered"))


def test_hand_back_keeps_what_is_typed_hides_the_staff_controls_and_keeps_the_tick(
        client: FlaskClient, service: RegistryService) -> None:
    take_over(client)
    data = form_data(identity_checked="y", first_name="Rosalie", password="",
                     library="ANT-PERMEKE")
    page = client.post("/en/account/new", data={**data, "hand_back": "1"})
    assert page.status_code == 200
    html = text(page)
    assert 'value="Rosalie"' in html and data["email"] in html  # nothing typed is lost
    assert "A librarian is nearby" in html and LABEL in html
    assert "Identity document checked" not in html
    assert "Hand back to the patron" not in html and "End assisted mode" not in html
    assert "Librarian: take over again" in html
    assert "There is a problem" not in html and 'class="error"' not in html
    # The patron types the password and sends the form; they cannot untick (or tick) the box.
    sent = {k: v for k, v in data.items() if k != "identity_checked"}
    response = client.post("/en/account/new", data={**sent, "password": "my own secret"})
    assert response.status_code == 302, text(response)
    row = patron_row(service, data["email"])
    assert row.identity_checked_by == "staff:an.peeters"
    [entry] = audit(service, "patron_registered")
    assert entry.detail["assisted_by"] == LABEL
    # The log says when the patron typed on their own: handed back before the sign-up.
    [handed] = audit(service, "assist_handed_back")
    assert handed.actor == "staff:an.peeters" and handed.terminal
    assert handed.id < entry.id


def test_a_patron_cannot_tick_the_identity_check_while_handed_back(
        client: FlaskClient, service: RegistryService) -> None:
    take_over(client)
    data = form_data(library="ANT-PERMEKE")
    client.post("/en/account/new", data={**data, "hand_back": "1"})
    response = client.post("/en/account/new", data={**data, "identity_checked": "y"})
    assert response.status_code == 302
    assert patron_row(service, data["email"]).identity_checked_at is None
    [entry] = audit(service, "patron_registered")
    assert entry.detail == {"assisted_by": LABEL, "identity_checked": False}


def test_taking_over_again_needs_the_librarians_password(
        client: FlaskClient, service: RegistryService) -> None:
    take_over(client)
    first = staff_token(client)
    assert client.post("/en/assist/hand-back?next=/en/courses/").status_code == 302
    assert [e.actor for e in audit(service, "assist_handed_back")] == ["staff:an.peeters"]
    handed = text(client.get("/en/courses/"))
    assert "Librarian: take over again" in handed and "End assisted mode" not in handed
    # A click is not enough: the end and hand-back buttons do nothing while handed back.
    client.post("/en/assist/end?next=/en/courses/")
    assert staff_token(client) == first
    form = client.get("/en/assist/take-over?next=/en/courses/")
    assert form.status_code == 200 and 'type="password"' in text(form)
    wrong = client.post("/en/assist/take-over?next=/en/courses/",
                        data={"password": "not it at all"})
    assert wrong.status_code == 422 and "This password is not right." in text(wrong)
    assert "Librarian: take over again" in text(client.get("/en/courses/"))
    empty = client.post("/en/assist/take-over?next=/en/courses/", data={"password": ""})
    assert empty.status_code == 422
    right = client.post("/en/assist/take-over?next=/en/courses/",
                        data={"password": STAFF_PASSWORDS["an.peeters"]})
    assert right.status_code == 302 and right.location.endswith("/en/courses/")
    again = text(client.get("/en/courses/"))
    assert "Hand back to the patron" in again and "End assisted mode" in again
    second = staff_token(client)
    assert second and second != first
    with pytest.raises(RegistryError) as ended:  # the session before the hand-back is over
        service.staff.whois(first or "")
    assert ended.value.code == "staff_session_invalid"
    assert service.staff.whois(second).username == "an.peeters"


# --- Enrolment and the changes on 'My courses' --------------------------------------------------


def test_enrol_withdraw_leave_and_give_up_are_tagged(
        client: FlaskClient, service: RegistryService) -> None:
    service.set_cap(1, actor="test")
    card, _ = add_patron(service, library_code="ANT-HOBOKEN")
    other_card, other = add_patron(service)
    log_in_patron(client, card)
    take_over(client)
    assert client.post("/en/courses/excel-basics/enrol").status_code == 302
    assert client.post("/en/courses/instagram/enrol").status_code == 302
    assert client.post("/en/my/withdraw/instagram", data=CONFIRMED).status_code == 302
    service.claim(other, "word-basics")  # waits behind our patron
    # The seat goes to `other`.
    assert client.post("/en/my/give-up", data=CONFIRMED).status_code == 302
    assert client.post("/en/courses/excel-basics/enrol").status_code == 302  # now waiting
    assert client.post("/en/my/leave", data=CONFIRMED).status_code == 302

    enrolled = audit(service, "patron_enrolled")
    assert [e.detail["course"] for e in enrolled] == ["excel-basics", "instagram", "excel-basics"]
    assert [e.detail["standing"] for e in enrolled] == ["seated", "seated", "waiting"]
    entries = [*enrolled, *audit(service, "patron_withdrawn"), *audit(service, "seat_given_up"),
               *audit(service, "waiting_list_left")]
    assert len(entries) == 6
    subjects = {e.subject for e in entries}
    assert len(subjects) == 1 and subjects.pop().startswith("patron#")
    for entry in entries:
        assert entry.actor == "staff:an.peeters" and entry.detail["assisted_by"] == LABEL
        assert entry.institution == "ANT"
        assert entry.terminal.endswith("127.0.0.1")  # the kiosk it was done at
        assert card not in str(entry.detail) and other_card not in str(entry.detail)


def test_a_librarian_acts_for_no_patron_of_another_institution(
        client: FlaskClient, service: RegistryService) -> None:
    """A patron of Kortrijk at a kiosk taken over by a librarian of Antwerpen: nothing is done
    "assisted by" her; the kiosk says so in the patron's language (no error page) and the
    assisted mode ends, so that the patron may go on alone."""
    card, token = add_patron(service, library_code="KOR-CENTRUM")
    service.claim(token, "instagram")
    log_in_patron(client, card)
    for path in ("/nl/courses/excel-basics/enrol", "/nl/my/withdraw/instagram",
                 "/nl/my/give-up", "/nl/my/leave"):
        take_over(client)
        response = client.post(path, data=CONFIRMED)
        assert response.status_code == 302, (path, text(response))
        page = text(client.get(response.location))
        assert "De begeleide modus is gestopt. Dit account hoort bij een bibliotheek van " \
            "een andere organisatie" in page, path
        assert staff_token(client) is None
    status = service.status(token)
    assert [e.course_slug for e in status.enrolments] == ["instagram"]  # nothing changed
    assert status.standing.value == "seated"
    assert all(audit(service, action) == [] for action in (
        "patron_enrolled", "patron_withdrawn", "seat_given_up", "waiting_list_left"))


def test_the_coordinator_acts_for_a_patron_of_any_institution(
        client: FlaskClient, service: RegistryService) -> None:
    card, token = add_patron(service, library_code="KOR-CENTRUM")
    log_in_patron(client, card)
    take_over(client, "coordinator")
    assert client.post("/en/courses/excel-basics/enrol").status_code == 302
    [entry] = audit(service, "patron_enrolled")
    assert entry.actor == "staff:coordinator" and entry.institution == "KOR"
    assert [e.course_slug for e in service.status(token).enrolments] == ["excel-basics"]


def test_after_ending_assisted_mode_nothing_is_tagged_and_the_token_is_revoked(
        client: FlaskClient, service: RegistryService) -> None:
    card, _ = add_patron(service)
    log_in_patron(client, card)
    take_over(client)
    token = staff_token(client)
    response = client.post("/en/assist/end?next=/en/my")
    assert response.status_code == 302 and response.location.endswith("/en/my")
    page = text(client.get("/en/my"))
    assert "Assisted mode has ended." in page and LABEL not in page
    assert ">Librarian<" in page
    assert client.post("/en/courses/excel-basics/enrol").status_code == 302  # still logged in
    assert audit(service, "patron_enrolled") == []
    with pytest.raises(RegistryError):
        service.staff.whois(token or "")


def test_an_action_with_an_ended_staff_session_is_not_done_unassisted(
        client: FlaskClient, service: RegistryService) -> None:
    card, patron_token = add_patron(service)
    log_in_patron(client, card)
    take_over(client)
    service.staff.logout(staff_token(client) or "")  # ended elsewhere (disabled, expired)
    response = client.post("/en/courses/excel-basics/enrol")
    assert response.status_code == 302
    assert service.status(patron_token).enrolments == []  # nothing happened
    page = text(client.get(response.location))
    assert "Assisted mode has ended." in page and "Assisted by" not in page
    assert staff_token(client) is None


# --- The mode ends with the visit ---------------------------------------------------------------


def test_the_idle_reset_ends_assisted_mode(client: FlaskClient, service: RegistryService,
                                           app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000_000.0]
    monkeypatch.setattr(security, "now", lambda: clock[0])
    take_over(client)
    token = staff_token(client)
    assert LABEL in text(client.get("/en/courses/"))
    clock[0] += app.config["IDLE_WARNING_SECONDS"] + app.config["IDLE_COUNTDOWN_SECONDS"] + 11
    response = client.get("/en/courses/")
    assert response.status_code == 302
    assert staff_token(client) is None
    assert "Assisted by" not in text(client.get("/en/courses/"))
    with pytest.raises(RegistryError) as ended:
        service.staff.whois(token or "")
    assert ended.value.code == "staff_session_invalid"


@pytest.mark.parametrize("path", ["/en/logout", "/visit/reset"])
def test_the_patrons_log_out_and_the_reset_button_end_assisted_mode(
        client: FlaskClient, service: RegistryService, path: str) -> None:
    card, _ = add_patron(service)
    log_in_patron(client, card)
    take_over(client)
    token = staff_token(client)
    assert client.post(path).status_code == 302
    assert staff_token(client) is None
    assert "Assisted by" not in text(client.get("/en/"))
    with pytest.raises(RegistryError):
        service.staff.whois(token or "")


# --- The registry's API: the staff token, never the terminal token alone ----------------------


def _api(client: FlaskClient, terminal: str, method: str, path: str, key: str,
         staff: str | None = None, patron: str | None = None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {terminal}", "Idempotency-Key": key}
    if staff is not None:
        headers["X-Staff-Token"] = staff
    if patron is not None:
        headers["X-Patron-Session"] = patron
    return client.open(path, method=method, headers=headers, **kwargs)


def test_a_librarians_staff_token_cannot_be_used_after_logout(
        client: FlaskClient, service: RegistryService) -> None:
    terminal, _ = service.add_terminal("ANT-PERMEKE", "kiosk 1", actor="test")
    _, patron = add_patron(service)
    login = _api(client, terminal, "POST", "/api/v1/staff/sessions", "s1",
                 json={"username": "an.peeters", "password": STAFF_PASSWORDS["an.peeters"]})
    assert login.status_code == 201, text(login)
    body = login.get_json()
    staff = body["token"]
    assert body["staff"]["username"] == "an.peeters" and body["staff"]["role"] == "librarian"
    who = client.get("/api/v1/staff/sessions", headers={
        "Authorization": f"Bearer {terminal}", "X-Staff-Token": staff})
    assert who.status_code == 200 and who.get_json()["display_name"] == "An Peeters"
    claim = _api(client, terminal, "POST", "/api/v1/me/claims", "c1", staff=staff,
                 patron=patron, json={"course": "excel-basics"})
    assert claim.status_code == 200, text(claim)
    [entry] = audit(service, "patron_enrolled")
    assert entry.detail["assisted_by"] == LABEL and entry.terminal.startswith("terminal:")

    handed = _api(client, terminal, "POST", "/api/v1/staff/sessions/hand-back", "h1",
                  staff=staff)
    assert handed.status_code == 204, text(handed)
    [back] = audit(service, "assist_handed_back")
    assert back.actor == "staff:an.peeters" and back.terminal.startswith("terminal:")
    out = _api(client, terminal, "DELETE", "/api/v1/staff/sessions", "o1", staff=staff)
    assert out.status_code == 204
    [ended] = audit(service, "staff_logout")
    assert ended.actor == "staff:an.peeters" and ended.terminal.startswith("terminal:")
    again = _api(client, terminal, "POST", "/api/v1/me/claims", "c2", staff=staff,
                 patron=patron, json={"course": "instagram"})
    assert again.status_code == 401
    assert again.get_json()["error"]["code"] == "staff_session_invalid"
    assert [e.course_slug for e in service.status(patron).enrolments] == ["excel-basics"]
    gone = client.get("/api/v1/staff/sessions", headers={
        "Authorization": f"Bearer {terminal}", "X-Staff-Token": staff})
    assert gone.status_code == 401 and gone.get_json()["error"]["code"] == "staff_session_invalid"
    # The terminal token alone never stands for a staff member: an untagged claim.
    alone = _api(client, terminal, "POST", "/api/v1/me/claims", "c3", patron=patron,
                 json={"course": "instagram"})
    assert alone.status_code == 200 and len(audit(service, "patron_enrolled")) == 1
    # … nor may it say that an identity document was checked.
    sign_up = {"first_name": "Mia", "last_name": "Peeters", "email": "api@example.be",
               "birth_date": "1950-01-01", "postcode": "2000", "library_code": "ANT-PERMEKE",
               "password": "long enough", "consent": True, "identity_checked": True}
    refused = _api(client, terminal, "POST", "/api/v1/patrons", "p1", json=sign_up)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["fields"] == {"identity_checked": "staff_only"}


def test_the_api_refuses_a_role_without_the_desk_and_an_empty_staff_header(
        client: FlaskClient, service: RegistryService) -> None:
    terminal, _ = service.add_terminal("ANT-PERMEKE", "kiosk 1", actor="test")
    _, patron = add_patron(service)
    it = _api(client, terminal, "POST", "/api/v1/staff/sessions", "s1",
              json={"username": "it.support", "password": STAFF_PASSWORDS["it.support"]})
    assert it.status_code == 403 and it.get_json()["error"]["code"] == "staff_forbidden"
    wrong = _api(client, terminal, "POST", "/api/v1/staff/sessions", "s2",
                 json={"username": "an.peeters", "password": "nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "login_failed"
    for sent in ("", "x" * 201, "never-issued"):
        response = _api(client, terminal, "DELETE", "/api/v1/me/seat", f"k{len(sent)}",
                        staff=sent, patron=patron)
        assert response.status_code == 401, sent
        assert response.get_json()["error"]["code"] == "staff_session_invalid"
    no_terminal = client.post("/api/v1/staff/sessions", json={
        "username": "an.peeters", "password": STAFF_PASSWORDS["an.peeters"]},
        headers={"Idempotency-Key": "s3"})
    assert no_terminal.status_code == 401
    assert no_terminal.get_json()["error"]["code"] == "terminal_unauthorized"
    document = client.get("/api/v1/openapi.json").get_json()
    header = [p for p in document["paths"]["/me/claims"]["post"]["parameters"]
              if p["name"] == "X-Staff-Token"]
    assert header and header[0]["required"] is False
    assert "403" in document["paths"]["/me/claims"]["post"]["responses"]
    assert {"post", "get", "delete"} <= set(document["paths"]["/staff/sessions"])


def test_the_api_refuses_a_librarian_acting_for_another_institutions_patron(
        client: FlaskClient, service: RegistryService) -> None:
    """Librarian B (Kortrijk) at a kiosk, a patron of A (Antwerpen): every assisted action is
    403 `staff_forbidden` and changes nothing; an assisted sign-up at A's library is 422
    `library_not_served`. The coordinator may act for both."""
    terminal, _ = service.add_terminal("KOR-CENTRUM", "kiosk 1", actor="test")
    _, patron = add_patron(service, library_code="ANT-PERMEKE")
    service.claim(patron, "instagram")
    els, _ = service.staff.login("els.maes", STAFF_PASSWORDS["els.maes"])
    for method, path, body in (("POST", "/api/v1/me/claims", {"course": "excel-basics"}),
                               ("DELETE", "/api/v1/me/enrolments/instagram", None),
                               ("DELETE", "/api/v1/me/seat", None),
                               ("DELETE", "/api/v1/me/waiting", None)):
        refused = _api(client, terminal, method, path, f"b-{path}", staff=els, patron=patron,
                       json=body)
        assert refused.status_code == 403, (path, text(refused))
        assert refused.get_json()["error"]["code"] == "staff_forbidden"
    status = service.status(patron)
    assert [e.course_slug for e in status.enrolments] == ["instagram"]
    assert status.standing.value == "seated"
    sign_up = {"first_name": "Mia", "last_name": "Peeters", "email": "b@example.be",
               "birth_date": "1950-01-01", "postcode": "2000", "library_code": "ANT-PERMEKE",
               "password": "long enough", "consent": True, "identity_checked": True}
    refused = _api(client, terminal, "POST", "/api/v1/patrons", "b-p", staff=els, json=sign_up)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["fields"] == {"library_code": "library_not_served"}
    assert audit(service, "patron_enrolled") == []
    assert len(audit(service, "patron_registered")) == 1  # the patron's own sign-up only

    coordinator, _ = service.staff.login("coordinator", STAFF_PASSWORDS["coordinator"])
    claim = _api(client, terminal, "POST", "/api/v1/me/claims", "c-c", staff=coordinator,
                 patron=patron, json={"course": "excel-basics"})
    assert claim.status_code == 200, text(claim)
    made = _api(client, terminal, "POST", "/api/v1/patrons", "c-p", staff=coordinator,
                json=sign_up)
    assert made.status_code == 201, text(made)
    # The sign-up's audit entry says where and by whom, as the desk's does.
    entry = audit(service, "patron_registered")[-1]
    assert entry.terminal.startswith("terminal:") and entry.terminal.endswith("KOR-CENTRUM")
    assert entry.actor == "staff:coordinator" and entry.institution == "ANT"
    assert entry.detail["assisted_by"] == "Sofie Claes (Muntpunt)"
