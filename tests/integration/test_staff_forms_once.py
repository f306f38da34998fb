"""A staff form sent again is answered once (kiosk.staff.once): on the central registry's app,
on SQLite and PostgreSQL, a desk form sent twice with its key runs once and both answers are
the first one; sent at the same moment from two threads over HTTP too. Without the key the
second sending runs again (the negative controls)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select

from kiosk.registry.services import RegistryService, utcnow
from kiosk.registry.store import AuditEntry, EnrolmentRow, Patron, Staff, StaffFormAnswer
from kiosk.staff.once import fingerprint, mark_key
from tests.support.factories import CONFIRMED, STAFF_PASSWORDS, add_patron, build_app, log_in_staff
from tests.support.live_server import serve

NEW = "/en/staff/desk/new"
FORM = {"first_name": "Jan", "last_name": "Peeters", "birth_day": "1", "birth_month": "2",
        "birth_year": "1960", "postcode": "2000", "library": "ANT-PERMEKE",
        "password": "chosen by jan", "language": "en", "consent": "y",
        "identity_checked": "y"}


@pytest.fixture
def app(db_url, tmp_path: Path) -> Iterator[Flask]:  # type: ignore[no-untyped-def]
    made = build_app(tmp_path / "registry", registry=True, DATABASE_URL=db_url())
    yield made
    made.extensions["registry_service"].store.engine.dispose()


def _service(app: Flask) -> RegistryService:
    return app.extensions["registry_service"]


def _an(app: Flask, lang: str = "en") -> FlaskClient:
    client = app.test_client()
    log_in_staff(client, "an.peeters", lang)
    return client


def _key(page: str) -> str:
    found = re.search(r'name="request_key" value="([0-9a-f-]{36})"', page)
    assert found, "the form carries no key"
    return found.group(1)


def _patrons(app: Flask, email: str) -> list[tuple[int, str]]:
    with _service(app).store.read() as s:
        return [tuple(r) for r in s.execute(
            select(Patron.id, Patron.card_number).where(Patron.email == email))]


def _marks(app: Flask) -> list[str]:
    with _service(app).store.read() as s:
        return list(s.scalars(select(StaffFormAnswer.state)))


def _card(card: str) -> str:
    return f"{card[:4]} {card[4:8]} {card[8:]}"


def test_a_new_account_sent_again_with_its_key_is_made_once_and_shown_again(app) -> None:  # type: ignore[no-untyped-def]
    an = _an(app)
    key = _key(an.get(NEW).get_data(as_text=True))
    form = {**FORM, "email": "jan@example.be", "request_key": key}
    lost = app.test_client()  # the browser as it was before the answer, which never came
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = an.get_cookie(name)
    assert cookie is not None
    lost.set_cookie(name, cookie.value)

    first = an.post(NEW, data=form)
    again = lost.post(NEW, data=form)
    assert first.status_code == 302, first.get_data(as_text=True)
    assert again.status_code == 303
    assert again.headers["Location"] == first.headers["Location"]
    [(pid, card)] = _patrons(app, "jan@example.be")
    assert first.headers["Location"].endswith(f"/desk/patrons/{pid}")
    page = lost.get(again.headers["Location"]).get_data(as_text=True)
    assert f"The account is created. Card number: {_card(card)}" in page
    # Sent once more where the first answer did arrive: the message is not shown twice.
    assert an.post(NEW, data=form).status_code == 303
    assert an.get(first.headers["Location"]).get_data(as_text=True).count(
        "The account is created.") == 1
    assert _marks(app) == ["done"]

    # The same page sent with other values is not another account, nor the first answer.
    other = an.post(NEW, data={**form, "email": "jan.peeters@example.be"})
    assert other.status_code == 422
    assert "already sent with other values" in other.get_data(as_text=True)
    assert _patrons(app, "jan.peeters@example.be") == []


def test_without_the_key_the_second_sending_is_refused_as_a_duplicate(app) -> None:  # type: ignore[no-untyped-def]
    """The negative control: what a form sent again meets without the protection."""
    an = _an(app)
    form = {**FORM, "email": "jan@example.be"}
    assert an.post(NEW, data=form).status_code == 302
    again = an.post(NEW, data=form)
    assert again.status_code == 422
    assert "already" in again.get_data(as_text=True)
    assert len(_patrons(app, "jan@example.be")) == 1
    assert _marks(app) == []


def test_two_sendings_at_the_same_moment_make_one_account_and_the_same_answer(app) -> None:  # type: ignore[no-untyped-def]
    with serve(app) as base:
        login = requests.Session()
        answer = login.post(f"{base}/en/staff/login", allow_redirects=False, timeout=10,
                            data={"username": "an.peeters",
                                  "password": STAFF_PASSWORDS["an.peeters"]})
        assert answer.status_code == 302
        key = _key(login.get(f"{base}{NEW}", timeout=10).text)
        form = {**FORM, "email": "jan@example.be", "request_key": key}
        start = threading.Barrier(2)
        answers: list[requests.Response] = []

        def send() -> None:
            with requests.Session() as browser:
                browser.cookies.update(login.cookies)
                start.wait(timeout=10)
                answers.append(browser.post(f"{base}{NEW}", data=form,
                                            allow_redirects=False, timeout=20))

        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        login.close()
    assert sorted(a.status_code for a in answers) == [302, 303], [a.text for a in answers]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    [(pid, _card_number)] = _patrons(app, "jan@example.be")
    assert answers[0].headers["Location"].endswith(f"/desk/patrons/{pid}")


def test_an_enrolment_sent_again_is_made_once_without_a_refusal(app) -> None:  # type: ignore[no-untyped-def]
    service = _service(app)
    card, _ = add_patron(service)
    [(pid, _card_number)] = _patrons(app, _email(app, card))
    an = _an(app)
    page = f"/en/staff/desk/patrons/{pid}"
    key = _key(an.get(page).get_data(as_text=True))
    enrol = {"course": "excel-basics", "request_key": key}
    first = an.post(f"{page}/enrol", data=enrol)
    again = an.post(f"{page}/enrol", data=enrol)
    assert (first.status_code, again.status_code) == (302, 303)
    assert again.headers["Location"] == first.headers["Location"]
    shown = an.get(page).get_data(as_text=True)
    assert shown.count("Enrolled: the patron now has a seat.") == 1
    assert "The course was added." not in shown
    assert _enrolled(app, pid) == 1 and _audited(app, "patron_enrolled") == 1

    # Another button of the same page carries the same key: it is another request.
    withdrawn = an.post(f"{page}/withdraw/excel-basics", data={"request_key": key, **CONFIRMED})
    assert withdrawn.status_code == 302 and _enrolled(app, pid) == 0

    # The control: without the key, enrolling twice runs twice (and says something else).
    for _ in range(2):
        assert an.post(f"{page}/enrol", data={"course": "excel-basics"}).status_code == 302
    assert "The course was added." in an.get(page).get_data(as_text=True)
    assert _audited(app, "patron_enrolled") == 3


def _email(app: Flask, card: str) -> str:
    with _service(app).store.read() as s:
        return s.scalar(select(Patron.email).where(Patron.card_number == card)) or ""


def _enrolled(app: Flask, pid: int) -> int:
    with _service(app).store.read() as s:
        return s.scalar(select(func.count()).select_from(EnrolmentRow)
                        .where(EnrolmentRow.patron_id == pid)) or 0


def _audited(app: Flask, action: str) -> int:
    with _service(app).store.read() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry)
                        .where(AuditEntry.action == action)) or 0


def test_a_form_with_errors_sent_again_corrected_with_the_same_key_runs(app) -> None:  # type: ignore[no-untyped-def]
    an = _an(app)
    key = _key(an.get(NEW).get_data(as_text=True))
    form = {**FORM, "email": "jan@example.be", "request_key": key}
    wrong = an.post(NEW, data={**form, "postcode": "12"})
    assert wrong.status_code == 422
    assert _key(wrong.get_data(as_text=True)) == key  # the page shown again keeps its key
    assert _marks(app) == []
    made = an.post(NEW, data=form)
    assert made.status_code == 302
    assert len(_patrons(app, "jan@example.be")) == 1


def test_a_mark_left_running_by_a_crash_is_never_run_again(app) -> None:  # type: ignore[no-untyped-def]
    """A registry that died while the first sending ran leaves its mark running: sent again,
    the form gets the calm page in the librarian's language at once, and nothing is done."""
    service = _service(app)
    card, _ = add_patron(service)
    [(pid, _card_number)] = _patrons(app, _email(app, card))
    an = _an(app, "nl")
    path = f"/nl/staff/desk/patrons/{pid}/enrol"
    form_key = uuid.uuid4()
    form = {"course": "excel-basics", "request_key": str(form_key)}
    with service.store.write() as s:
        s.execute(insert(StaffFormAnswer).values(
            staff_id=_staff_id(app), key=mark_key(form_key, path), state="running",
            request_hash=fingerprint(form_key, path, form.items()),
            created_at=utcnow() - timedelta(minutes=1)))
    started = time.monotonic()
    answer = an.post(path, data=form)
    assert time.monotonic() - started < 1.5  # an old mark is not waited for
    assert answer.status_code == 409
    assert "wordt nog gedaan" in answer.get_data(as_text=True)
    assert _enrolled(app, pid) == 0 and _marks(app) == ["running"]


def _staff_id(app: Flask, username: str = "an.peeters") -> int:
    with _service(app).store.read() as s:
        found = s.scalar(select(Staff.id).where(Staff.username == username))
        assert found is not None
        return found


def test_staff_form_answers_go_with_the_idempotency_keys_after_24_hours(app) -> None:  # type: ignore[no-untyped-def]
    service = _service(app)
    staff_id = _staff_id(app)
    now = utcnow()
    with service.store.write() as s:
        for key, age in (("old", timedelta(hours=24, seconds=1)), ("young", timedelta(hours=23))):
            s.execute(insert(StaffFormAnswer).values(
                staff_id=staff_id, key=key, state="done", request_hash="f", location="/",
                messages=[], created_at=now - age))
    assert app.extensions["registry_idempotency"].purge() == 1
    with service.store.read() as s:
        assert list(s.scalars(select(StaffFormAnswer.key))) == ["young"]
