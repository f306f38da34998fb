"""A practice registry (the demo's): every page says so in its language, the coordinator starts
it again in the console (asked first, on a page of its own), a reset keeps the terminals and
the member systems, and nothing of this reaches a registry that holds a real programme."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import func, select, text

from kiosk.app import create_registry_app
from kiosk.cli import main
from kiosk.registry import schema
from kiosk.registry.domain import RegistryError
from kiosk.registry.member_system import MemberSystemConfig
from kiosk.registry.programme_file import template_text
from kiosk.registry.seed import load_demo_data
from kiosk.registry.store import (
    AuditEntry,
    Course,
    Library,
    Patron,
    Programme,
    Staff,
    Terminal,
    make_engine,
)
from tests.support.factories import STAFF_PASSWORDS, add_patron, build_app, log_in_staff

pytestmark = pytest.mark.usefixtures("clean_kiosk_environment")

BANDS = {"nl": "Oefenversie — geen echte gegevens",
         "fr": "Version d’exercice — données fictives",
         "en": "Practice — not real data"}


def real_registry(url: str, folder: Path) -> Flask:
    """A registry made as a real install makes one: `kiosk registry init`."""
    programme = folder / "programme.json"
    programme.write_text(template_text(), encoding="utf-8")
    made = CliRunner().invoke(main, [
        "registry", "init", str(programme), "--database-url", url, "--coordinator",
        "an.peeters", "--coordinator-name", "An Peeters", "--password-file", "-"],
        input="een lang geheim wachtwoord\n")
    assert made.exit_code == 0, made.output
    return create_registry_app({"DATABASE_URL": url, "SECRET_KEY": "x", "TESTING": True,
                                "WTF_CSRF_ENABLED": False}, instance_path=str(folder))


def count(app: Flask, model: type) -> int:
    service = app.extensions["registry_service"]
    with service.store.read() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_every_page_of_the_demo_says_it_is_practice_in_its_language(
        tmp_path: Path, lang: str) -> None:
    app = build_app(tmp_path)
    client = app.test_client()
    for path in (f"/{lang}/", f"/{lang}/courses/", f"/{lang}/account/new",
                 f"/{lang}/no-such-page", f"/{lang}/staff/login"):
        page = client.get(path).get_data(as_text=True)
        assert BANDS[lang] in page, path
    log_in_staff(client, "coordinator", lang)
    page = client.get(f"/{lang}/staff/").get_data(as_text=True)
    assert BANDS[lang] in page
    assert f"/{lang}/staff/practice/reset" in page  # the coordinator may start it again
    log_in_staff(client, "an.peeters", lang)
    assert "/staff/practice/reset" not in client.get(f"/{lang}/staff/").get_data(as_text=True)


def test_a_real_registry_shows_no_band_and_cannot_be_reset(db_url, tmp_path: Path) -> None:
    app = real_registry(db_url(), tmp_path)
    service = app.extensions["registry_service"]
    assert not service.practice.active() and service.practice.holds_real_programme()
    client = app.test_client()
    assert BANDS["en"] not in client.get("/en/staff/login").get_data(as_text=True)
    with pytest.raises(RegistryError) as refused:
        service.practice.reset(actor="test")
    assert refused.value.code == "not_practice"
    assert count(app, Staff) == 1 and count(app, Programme) == 1
    client.post("/en/staff/login", data={"username": "an.peeters",
                                         "password": "een lang geheim wachtwoord"})
    assert client.get("/en/staff/practice/reset").status_code == 404
    assert client.post("/en/staff/practice/reset").status_code == 404
    assert count(app, Staff) == 1
    service.store.engine.dispose()


def test_starting_again_brings_back_the_demo_and_keeps_terminals_and_member_systems(
        db_url, tmp_path: Path) -> None:
    url = db_url()
    app = create_registry_app({"DATABASE_URL": url, "SECRET_KEY": "x", "TESTING": True,
                               "WTF_CSRF_ENABLED": False, "SEED_DEMO": True},
                              instance_path=str(tmp_path))
    service = app.extensions["registry_service"]
    courses, staff = count(app, Course), count(app, Staff)
    _card, token = add_patron(service)
    service.claim(token, "excel-basics")
    terminal_token, _terminal = service.add_terminal("ANT-PERMEKE", "Permeke kiosk 1",
                                                     actor="test")
    service.members.configure("ANT", MemberSystemConfig(host="127.0.0.1", port=6001),
                              actor="test")
    service.libraries_admin.rename_library("ANT-PERMEKE", "Nieuwe naam",
                                           actor="staff:coordinator")
    assert service.programme_status().seats_taken == 1

    service.practice.reset(actor="staff:coordinator", where="desk 127.0.0.1")

    assert count(app, Patron) == 0 and count(app, Course) == courses
    assert count(app, Staff) == staff == len(STAFF_PASSWORDS)
    status = service.programme_status()
    assert (status.seats_taken, status.waiting) == (0, 0)
    with service.store.read() as s:
        assert s.scalar(select(Library.name).where(Library.code == "ANT-PERMEKE")) != \
            "Nieuwe naam"
        assert s.scalar(select(func.count()).select_from(Terminal)) == 1
        entries = s.execute(select(AuditEntry.action, AuditEntry.actor)).all()
    assert [tuple(e) for e in entries] == [("practice_reset", "staff:coordinator")]
    assert service.authenticate_terminal(terminal_token, "test").library_code == "ANT-PERMEKE"
    assert [s.institution_code for s in service.members.settings()] == ["ANT"]
    assert service.practice.active()  # still a practice registry, ready for the next group
    service.store.engine.dispose()


def test_the_coordinator_is_asked_first_and_then_everyone_is_logged_out(tmp_path: Path) -> None:
    app = build_app(tmp_path)
    service = app.extensions["registry_service"]
    add_patron(service)
    client = app.test_client()
    log_in_staff(client, "an.peeters", "fr")
    assert client.get("/fr/staff/practice/reset").status_code == 403  # coordinators only
    assert client.post("/fr/staff/practice/reset").status_code == 403
    log_in_staff(client, "coordinator", "fr")
    page = client.get("/fr/staff/practice/reset").get_data(as_text=True)
    assert "Recommencer l’exercice" in page
    back, go = page.index("Retour, ne rien changer"), page.index(">Recommencer</button>")
    assert back < go and "autofocus" in page[page.rfind("<a", 0, back):back]
    assert count(app, Patron) == 1  # the page itself changed nothing

    done = client.post("/fr/staff/practice/reset")
    assert done.status_code == 302
    login = client.get(done.headers["Location"], follow_redirects=True)
    assert login.request.path == "/fr/staff/login"
    assert "point de départ" in login.get_data(as_text=True)
    assert count(app, Patron) == 0
    again = client.get("/fr/staff/")  # the coordinator's session went with the rest
    assert again.status_code == 302 and "/fr/staff/login" in again.headers["Location"]
    log_in_staff(client, "coordinator", "en")
    audit = client.get("/en/staff/audit").get_data(as_text=True)
    assert "Practice started again" in audit


def test_the_reset_asks_for_the_form_token(tmp_path: Path) -> None:
    """With CSRF on, as in production: a reset posted from elsewhere does nothing."""
    app = build_app(tmp_path, WTF_CSRF_ENABLED=True)
    add_patron(app.extensions["registry_service"])
    client = app.test_client()
    login = client.get("/en/staff/login").get_data(as_text=True)
    token = login.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]
    client.post("/en/staff/login", data={"username": "coordinator", "csrf_token": token,
                                         "password": STAFF_PASSWORDS["coordinator"]})
    refused = client.post("/en/staff/practice/reset")
    assert refused.status_code in (302, 400)
    assert count(app, Patron) == 1


def test_the_demo_refuses_a_registry_that_holds_a_real_programme(
        db_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = db_url()
    real_registry(url, tmp_path).extensions["registry_service"].store.engine.dispose()
    monkeypatch.setenv("KIOSK_DATABASE_URL", url)
    monkeypatch.setenv("KIOSK_INSTANCE_PATH", str(tmp_path / "instance"))
    refused = CliRunner().invoke(main, ["demo", "--port", "1"])
    assert refused.exit_code == 1
    assert "holds a real programme" in refused.output
    engine = make_engine(url)
    with engine.connect() as conn:  # no demo account and no fictional patron got in
        assert conn.scalar(text("SELECT count(*) FROM staff")) == 1
        assert conn.scalar(text("SELECT count(*) FROM patrons")) == 0
        assert conn.scalar(text("SELECT count(*) FROM member_systems")) == 0
    engine.dispose()


def test_a_demo_made_before_the_mark_is_recognised_by_its_demo_accounts(db_url) -> None:
    """Upgraded from schema 0010: the demo's staff with the demo's passwords make it a practice
    registry; a registry without them stays a real one."""
    for demo in (True, False):
        engine = make_engine(db_url())
        schema.upgrade(engine, "0010")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO programme (id, cap, seats_taken, over_cap, "
                              "next_queue_no, waiting, academy_url, promotion, offer_days, "
                              "fair_share) VALUES (1, 10, 0, 0, 1, 0, '', 'grant', 3, false)"))
            password = (load_demo_data()["staff"][0]["password_hash"] if demo
                        else "$argon2id$own")
            conn.execute(text("INSERT INTO staff (username, display_name, role, password_hash, "
                              "created_at, failed_logins) VALUES ('coordinator', 'C', "
                              "'coordinator', :p, CURRENT_TIMESTAMP, 0)"), {"p": password})
        schema.upgrade(engine)
        with engine.connect() as conn:
            assert bool(conn.scalar(text("SELECT practice FROM programme"))) is demo
        engine.dispose()
