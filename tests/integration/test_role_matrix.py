"""Who may open which staff page and call which staff API: every staff endpoint of the app ×
anonymous, a logged-in patron, a librarian of Antwerpen (A), a librarian of Kortrijk (B), the
coordinator, the IT admin and a terminal's bearer token. Only the combinations the roles table
(kiosk/registry/roles.py) allows get through; a librarian of B does not reach a patron of A.

The endpoints are read from the app's URL map, so a new staff page is in the matrix the day it
is added; a staff view without a declared permission fails the test. A 5xx is never an answer:
it fails the test whoever asks. POSTs send a valid form where one is cheap to make (FORMS), so
that "allowed" means the action was done, not that a form came back with errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from kiosk.registry.roles import GRANTS, Permission, Role
from kiosk.registry.store import Patron
from tests.support.factories import (
    CONFIRMED,
    STAFF_PASSWORDS,
    add_patron,
    build_app,
    log_in_staff,
)
from tests.support.role_matrix import (
    OPEN_TO_STAFF,
    STAFF,
    World,
    permission_of,
    populate,
    staff_rules,
)

ROLES = {"librarian_a": Role.LIBRARIAN, "librarian_b": Role.LIBRARIAN,
         "coordinator": Role.COORDINATOR, "it_admin": Role.IT_ADMIN}
PRINCIPALS = ("anonymous", "patron", "terminal", *STAFF)
PUBLIC = {"staff.login"}


# Where each staff member makes accounts at the desk: a library of their own reach.
OWN_LIBRARY = {"librarian_a": "ANT-PERMEKE", "librarian_b": "KOR-CENTRUM",
               "coordinator": "MUN-MUNTPUNT", "it_admin": "MUN-MUNTPUNT"}


def _course_form(world: World, principal: str) -> dict[str, object]:
    """The course as it is, sent back unchanged: a valid edit."""
    details = world.app.extensions["registry_service"].courses_admin.details("spanish-beginners")
    return {"slug": details.slug, "category": details.category, "hours": str(details.hours),
            "position": str(details.position),
            **{f"title_{lang}": text for lang, text in details.titles.items()},
            **{f"summary_{lang}": text for lang, text in details.summaries.items()}}


def _institution_settings(world: World, principal: str) -> dict[str, object]:
    """Every institution's settings as they are: a valid (empty) change."""
    settings = world.app.extensions["registry_service"].policies.settings()
    form: dict[str, object] = {}
    for inst in settings.institutions:
        form[f"opening_days_{inst.code}"] = [str(d) for d in inst.opening_days]
        form[f"verification_{inst.code}"] = inst.verification
        form[f"pending_days_{inst.code}"] = str(inst.pending_days)
    return form


def _correction_form(world: World, principal: str) -> dict[str, object]:
    """The patron's details as they are, with a new postcode: a valid correction."""
    with world.app.extensions["registry_service"].store.read() as s:
        p = s.get(Patron, world.patron_id)
        assert p is not None and p.birth_date is not None
        return {"first_name": p.first_name, "last_name": p.last_name, "email": p.email,
                "birth_day": str(p.birth_date.day), "birth_month": str(p.birth_date.month),
                "birth_year": str(p.birth_date.year), "postcode": "2018",
                "library": p.library.code, "phone": p.phone, "language": p.language,
                "reason": "matrix"}


def _in_a_week() -> date:
    return date.today() + timedelta(days=7)


def _next_month() -> date:
    """The first day of next month: this month has its module of the month already."""
    return (date.today().replace(day=1) + timedelta(days=32)).replace(day=1)


# A valid form per POST endpoint (by principal: a desk sign-up is at one's own library).
# Not here: the staff log-in (an empty one answers 422; logging in is tested elsewhere), the
# cap confirmation (it needs the preview's fingerprint), and the ActionForm-only buttons (an
# empty form is all they take).
FORMS: dict[str, Callable[[World, str], dict[str, object]]] = {
    "staff.seats.cap": lambda w, p: {"cap": "1", "reason": "matrix"},
    # One's own password: this session lives on (only the others end).
    "staff.password": lambda w, p: {"old_password": STAFF_PASSWORDS.get(STAFF.get(p, ""), ""),
                                    "new_password": "a new staff password"},
    "staff.seats.move": lambda w, p: {"position": "1", "reason": "matrix"},
    "staff.seats.remove": lambda w, p: {"reason": "matrix"},
    "staff.accounts.index": lambda w, p: {
        "username": "matrix.user", "display_name": "Matrix", "role": "librarian",
        "library": "ANT-PERMEKE", "password": "a long staff password"},
    "staff.courses.edit": _course_form,
    "staff.courses.module_of_the_month": lambda w, p: {
        "course": "excel-basics", "featured_from": _next_month().isoformat(),
        "featured_until": (_next_month() + timedelta(days=6)).isoformat()},
    "staff.courses.add": lambda w, p: {
        "slug": "matrix-course", "category": "office", "hours": "4", "position": "99",
        **{f"title_{lang}": f"Matrix {lang}" for lang in ("nl", "fr", "en")},
        **{f"summary_{lang}": f"A course {lang}" for lang in ("nl", "fr", "en")}},
    "staff.dashboard.patron_export": lambda w, p: {"reason": "matrix"},
    "staff.seats.export": lambda w, p: {"reason": "matrix"},
    "staff.desk.search": lambda w, p: {"query": w.card},
    "staff.desk.register": lambda w, p: {
        "first_name": "Jan", "last_name": "Matrix", "email": f"{p}@example.be",
        "birth_day": "1", "birth_month": "2", "birth_year": "1960", "postcode": "2000",
        "library": OWN_LIBRARY.get(p, "ANT-PERMEKE"), "password": "chosen by jan",
        "language": "nl", "consent": "y"},
    "staff.desk.enrol": lambda w, p: {"course": "excel-basics"},
    "staff.desk.erase": lambda w, p: {"reason": "matrix"},
    "staff.desk.correct": _correction_form,
    "staff.desk.password": lambda w, p: {"password": "typed by the patron"},
    "staff.it.maintenance": lambda w, p: {
        "nl": "Onderhoud", "fr": "Maintenance", "en": "Maintenance",
        "until": f"{_in_a_week().isoformat()}T12:00"},
    "staff.settings.seats": lambda w, p: {"promotion": "grant", "offer_days": "3"},
    "staff.it.member_system": lambda w, p: {"host": "127.0.0.1", "port": "6001",
                                            "timeout": "5"},
    "staff.settings.institutions": _institution_settings,
    "staff.libraries.add_institution": lambda w, p: {
        "code": "MTX", "card_prefix": "2199", "name_nl": "Matrix", "name_fr": "Matrix",
        "name_en": "Matrix"},
    "staff.libraries.edit_institution": lambda w, p: {
        "name_nl": "Bibliotheken Antwerpen", "name_fr": "Bibliothèques d’Anvers",
        "name_en": "Antwerp Public Libraries"},
    "staff.libraries.add_library": lambda w, p: {"library_code": "ANT-MATRIX",
                                                 "library_name": "Matrix"},
    "staff.libraries.edit_library": lambda w, p: {"library_code": "ANT-PERMEKE",
                                                  "library_name": "Bibliotheek Permeke"},
    "staff.libraries.sign_up_rules": lambda w, p: {"phone": "required",
                                                   "postcode": "optional", "min_age": "17"},
    # Changes that cannot be undone: their confirmation page's button (without it, the POST
    # only shows that page again).
    **{endpoint: lambda w, p: dict(CONFIRMED) for endpoint in (
        "staff.desk.withdraw", "staff.desk.give_up_seat", "staff.desk.leave_waiting_list",
        "staff.courses.retire", "staff.it.revoke")},
}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], World]]:
    """A fresh app per principal: what one principal's POSTs change, another does not see."""

    def make() -> World:
        folder = tmp_path_factory.mktemp("matrix")
        return populate(build_app(folder))

    yield make


def client_for(world: World, principal: str) -> FlaskClient:
    client = world.app.test_client()
    if principal == "patron":
        client.post("/en/login", data={"identifier": world.card, "password": "correct horse"})
    elif principal == "terminal":
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {world.terminal_token}"
    elif principal in STAFF:
        log_in_staff(client, STAFF[principal])
    return client


def outcome(response) -> str:  # type: ignore[no-untyped-def]
    if response.status_code >= 500:
        return "crashed"  # expected of nobody: a failure whoever asks
    if response.status_code in (401, 403):
        return "refused"
    if response.status_code == 302 and "/staff/login" in response.location:
        return "refused"
    if response.status_code == 404:
        return "hidden"
    if response.status_code == 422:
        return "form refused"  # let in, but nothing was done
    return "allowed"


def expected(app: Flask, rule: Rule, principal: str) -> str:
    if rule.endpoint in PUBLIC:
        return "allowed"
    if principal not in STAFF:
        return "refused"
    if rule.endpoint in OPEN_TO_STAFF:
        return "allowed"
    permission = permission_of(app, rule)
    assert permission is not None, f"{rule.endpoint} declares no permission (@requires)"
    if permission not in GRANTS[ROLES[principal]]:
        return "refused"
    # Librarian B serves Kortrijk: a patron of Antwerpen is not theirs to see.
    if principal == "librarian_b" and rule.arguments & {"patron_id", "card", "entry_id",
                                                        "flag_id"}:
        return "hidden"
    return "allowed"


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_staff_endpoint_answers_only_the_allowed_principals(worlds, principal) -> None:  # type: ignore[no-untyped-def]
    world = worlds()
    client = client_for(world, principal)
    rules = staff_rules(world.app)
    assert len(rules) > 5, "no staff pages found"
    wrong: list[str] = []
    for rule in rules:
        for method in sorted(rule.methods & {"GET", "POST", "DELETE", "PUT"}):
            if principal in STAFF and rule.endpoint not in PUBLIC:
                if client.get("/en/staff/").status_code != 200:  # a POST logged us out
                    log_in_staff(client, STAFF[principal])
            url_args = world.args(rule)
            with world.app.test_request_context():
                from flask import url_for

                url = url_for(rule.endpoint, **url_args)
            form = FORMS.get(rule.endpoint)
            data = form(world, principal) if form and method == "POST" else {}
            response = client.open(url, method=method, data=data)
            got, want = outcome(response), expected(world.app, rule, principal)
            if got == "form refused" and want == "allowed" and rule.endpoint in PUBLIC:
                got = "allowed"  # the log-in page answers an empty form with 422
            if got != want:
                wrong.append(f"{method} {url} ({rule.endpoint}): {response.status_code}, "
                             f"{got} — expected {want}")
    assert not wrong, f"{principal}:\n" + "\n".join(wrong)


def test_every_staff_view_declares_a_permission(worlds) -> None:  # type: ignore[no-untyped-def]
    world = worlds()
    missing = [r.endpoint for r in staff_rules(world.app)
               if r.endpoint not in PUBLIC | OPEN_TO_STAFF
               and permission_of(world.app, r) is None and r.endpoint.startswith("staff.")]
    assert not missing


# --- The staff API (assisted mode on terminals that talk HTTP) -------------------------------

# Who may hold a staff session at a kiosk: the roles that serve patrons.
ASSISTING = {p for p, role in ROLES.items() if Permission.DESK in GRANTS[role]}


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_the_staff_api_answers_only_desk_staff_through_a_known_terminal(worlds,
                                                                        principal) -> None:  # type: ignore[no-untyped-def]
    """POST/GET/DELETE /api/v1/staff/sessions and a claim tagged with X-Staff-Token: the
    terminal token is needed and never enough; a patron's token is no staff token."""
    world = worlds()
    service = world.app.extensions["registry_service"]
    http = world.app.test_client()
    terminal = {"Authorization": f"Bearer {world.terminal_token}"}
    headers: dict[str, str] = {} if principal == "anonymous" else dict(terminal)
    staff_token = ""
    if principal == "patron":
        staff_token, _ = service.login(world.card, "correct horse")
    elif principal in STAFF:
        staff_token, _ = service.staff.login(STAFF[principal], STAFF_PASSWORDS[STAFF[principal]])
    if staff_token:
        headers["X-Staff-Token"] = staff_token

    who = http.get("/api/v1/staff/sessions", headers=headers)
    if principal == "anonymous":
        assert who.status_code == 401
        assert who.get_json()["error"]["code"] == "terminal_unauthorized"
    elif principal in ASSISTING:
        assert who.status_code == 200
        assert who.get_json()["username"] == STAFF[principal]
    elif principal in STAFF:  # a staff role that does not serve patrons
        assert who.status_code == 403
        assert who.get_json()["error"]["code"] == "staff_forbidden"
    else:  # the terminal alone, or a patron's session token posing as a staff token
        assert who.status_code == 401
        assert who.get_json()["error"]["code"] == "staff_session_invalid"

    if principal in STAFF:
        login = http.post("/api/v1/staff/sessions",
                          headers=dict(terminal, **{"Idempotency-Key": f"matrix-{principal}"}),
                          json={"username": STAFF[principal],
                                "password": STAFF_PASSWORDS[STAFF[principal]]})
        assert login.status_code == (201 if principal in ASSISTING else 403)

    # A patron's claim tagged as assisted: only with a live desk-staff token, and only for a
    # patron that staff member serves (a librarian their own institution's, as at the desk;
    # the coordinator everyone's). The terminal alone makes an untagged claim.
    for institution, library in (("A", "ANT-PERMEKE"), ("B", "KOR-CENTRUM")):
        _card, patron_token = add_patron(service, library_code=library)
        claim_headers = dict(headers, **{"Idempotency-Key": f"matrix-claim-{institution}"})
        if principal != "anonymous":
            claim_headers["X-Patron-Session"] = patron_token
        claim = http.post("/api/v1/me/claims", headers=claim_headers,
                          json={"course": "excel-basics"})
        serves = principal == "coordinator" or principal == f"librarian_{institution.lower()}"
        want = {"anonymous": 401, "terminal": 200, "patron": 401}.get(principal)
        if principal in STAFF:
            want = 200 if principal in ASSISTING and serves else 403
        assert claim.status_code == want, (institution, claim.get_json())
        enrolled = [e.course_slug for e in service.status(patron_token).enrolments]
        assert enrolled == (["excel-basics"] if want == 200 else []), institution


@pytest.mark.parametrize("principal", ["librarian_a", "librarian_b", "coordinator"])
def test_the_staff_api_acts_only_for_the_patrons_a_staff_member_serves(worlds,
                                                                      principal) -> None:  # type: ignore[no-untyped-def]
    """Every assisted action and sign-up through the staff API, for the seated patron of
    Antwerpen (A): librarian B is refused each one and nothing changes."""
    world = worlds()
    service = world.app.extensions["registry_service"]
    http = world.app.test_client()
    staff_token, _ = service.staff.login(STAFF[principal], STAFF_PASSWORDS[STAFF[principal]])
    patron_token, _ = service.login(world.card, "correct horse")
    allowed = principal != "librarian_b"
    sign_up = {"first_name": "Mia", "last_name": "Matrix", "email": f"{principal}@example.be",
               "birth_date": "1950-01-01", "postcode": "2000", "library_code": "ANT-PERMEKE",
               "password": "long enough", "consent": True, "identity_checked": True}
    calls = [("POST", "/api/v1/me/claims", {"course": "excel-basics"}, 200),
             ("DELETE", "/api/v1/me/enrolments/excel-basics", None, 200),
             ("DELETE", "/api/v1/me/seat", None, 204),
             ("POST", "/api/v1/me/claims", {"course": "excel-basics"}, 200),  # waits now
             ("DELETE", "/api/v1/me/waiting", None, 204),
             ("POST", "/api/v1/patrons", sign_up, 201)]
    for n, (method, path, body, done) in enumerate(calls):
        headers = {"Authorization": f"Bearer {world.terminal_token}",
                   "X-Staff-Token": staff_token, "Idempotency-Key": f"matrix-{principal}-{n}"}
        if path != "/api/v1/patrons":
            headers["X-Patron-Session"] = patron_token
        response = http.open(path, method=method, headers=headers, json=body)
        assert response.status_code < 500, (path, response.get_data(as_text=True))
        if allowed:
            assert response.status_code == done, (path, response.get_json())
        elif path == "/api/v1/patrons":
            assert response.status_code == 422, response.get_json()
            assert response.get_json()["error"]["fields"] == {
                "library_code": "library_not_served"}
        else:
            assert response.status_code == 403, (path, response.get_json())
            assert response.get_json()["error"]["code"] == "staff_forbidden"
    if not allowed:  # still seated, in the one course chosen by the patron
        status = service.status(patron_token)
        assert status.standing.value == "seated"
        assert [e.course_slug for e in status.enrolments] == ["spanish-beginners"]
