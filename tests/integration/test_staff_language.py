"""Staff pages speak the staff member's language throughout: every code the registry stores
(actions and their details, actors, where, standings, policies, categories) through its label,
courses by title, times in Belgian time with the day before the month, CSV files named in the
page's language."""

from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser

import pytest
from flask import Flask, g
from flask.testing import FlaskClient

from kiosk.registry.catalogue_admin import CourseDraft
from kiosk.registry.domain import Standing
from kiosk.registry.promotion import PROMOTIONS, VERIFICATIONS
from kiosk.registry.roles import Role
from kiosk.registry.services import RegistryService
from kiosk.staff import labels
from tests.support.clock import Clock
from tests.support.factories import CONFIRMED, add_patron, form_data
from tests.support.verification import patron_id

# Naive UTC, as the registry keeps time: 22:59 in Brussels (winter, UTC+1), still 6 December.
T0 = datetime(2026, 12, 6, 21, 59)
NEW_COURSE = "spreadsheet-tricks"
DESK = "desk 127.0.0.1"
# Codes the registry stores that must never reach a Dutch or French page as they are written.
CODES = ("seated", "waiting", "offered", "none", "grant", "offer", "verify", "office",
         "registry", "retention", "desk", "kiosk", "one_time", "typed", "word-basics",
         "excel-basics", "french-beginners", NEW_COURSE, "offer_made", "patron_enrolled",
         "settings_changed", "course_added")
# 6 December 2026, 22:59 as each language writes it.
LOCAL_T0 = {"nl": "6 dec 2026, 22:59", "fr": "6 déc. 2026, 22:59", "en": "6 Dec 2026, 22:59"}


class VisibleText(HTMLParser):
    """What a person reads on the page: text outside tags, scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:  # type: ignore[type-arg]
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.status_code
    reader = VisibleText()
    reader.feed(response.get_data(as_text=True))
    return " ".join(" ".join(reader.parts).split())


def raw_codes(text: str) -> list[str]:
    """The stored codes found in a page's text as whole words."""
    return [code for code in CODES
            if re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", text)] + \
        (["staff:"] if "staff:" in text else [])


def history(app: Flask, staff_client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """A programme with something of every kind in its audit log, all at T0: the cap, the
    seat policy (grant → offer), an institution switched to "verify", a course added in
    "office", a patron signed up at a kiosk, two enrolled at the desk (one seated, one
    waiting), a seat given up (so an offer by the registry, until 23:59 Belgian time), a
    one-time password, a possible duplicate choosing a course, an account pending a check,
    a terminal added on the command line."""
    service: RegistryService = app.extensions["registry_service"]
    service.clock = Clock(T0)
    service.set_cap(1, actor="staff:coordinator", where=DESK, reason="Budget")
    service.policies.set_seat_policy("offer", 2, False, {}, actor="staff:coordinator",
                                     where=DESK)
    service.policies.set_institution_policies({"KOR": ([1, 2, 3, 4, 5], "verify", 14)},
                                              actor="staff:coordinator", where=DESK)
    service.courses_admin.add(CourseDraft(
        slug=NEW_COURSE, category="office", hours="6", position="9",
        titles={"nl": "Rekenbladtrucs", "fr": "Astuces de tableur", "en": "Spreadsheet tricks"},
        summaries={"nl": "Sneller rekenen.", "fr": "Calculer plus vite.", "en": "Faster sums."}),
        actor="staff:coordinator", where=DESK)
    signed_up = app.test_client().post("/fr/account/new", data=form_data())
    assert signed_up.status_code == 302
    seated = patron_id(service, add_patron(service)[0])
    waiting = patron_id(service, add_patron(service)[0])
    desk = staff_client("an.peeters", "nl")
    for pid, course in ((seated, "word-basics"), (waiting, "excel-basics")):
        assert desk.post(f"/nl/staff/desk/patrons/{pid}/enrol",
                         data={"course": course}).status_code == 302
    assert desk.post(f"/nl/staff/desk/patrons/{seated}/give-up-seat",
                     data=CONFIRMED).status_code == 302
    assert desk.post(f"/nl/staff/desk/patrons/{seated}/one-time-password").status_code == 200
    add_patron(service, last_name="Dubbel")
    _card, token = add_patron(service, last_name="Dubbel")
    service.claim(token, "french-beginners")
    add_patron(service, library_code="KOR-CENTRUM")
    service.add_terminal("ANT-PERMEKE", "PC 1", actor="cli")
    return {"seated": seated, "offered": waiting}


def staff_pages(client: FlaskClient, lang: str, ids: dict[str, int]) -> dict[str, str]:
    """The text of every staff page that shows codes, times or courses, in `lang`."""
    duplicates = client.get(f"/{lang}/staff/duplicates")
    flag = re.search(rf"/{lang}/staff/duplicates/(\d+)", duplicates.get_data(as_text=True))
    assert flag, "the possible duplicate is listed"
    paths = {
        "audit": "/audit", "dashboard": "/dashboard", "waiting list": "/waiting-list",
        "pending": "/pending", "settings": "/settings", "staff accounts": "/accounts",
        "patron with an offer": f"/desk/patrons/{ids['offered']}",
        "patron who gave up": f"/desk/patrons/{ids['seated']}",
        "duplicate": f"/duplicates/{flag[1]}",
    }
    pages = {name: visible(client.get(f"/{lang}/staff{path}")) for name, path in paths.items()}
    pages["duplicates"] = visible(duplicates)
    return pages


@pytest.mark.parametrize("lang", ["nl", "fr"])
def test_no_stored_code_or_course_slug_reaches_a_staff_page(app, staff_client, lang) -> None:  # type: ignore[no-untyped-def]
    ids = history(app, staff_client)
    pages = staff_pages(staff_client("coordinator", lang), lang, ids)
    found = {name: raw_codes(text) for name, text in pages.items()}
    assert {name: codes for name, codes in found.items() if codes} == {}
    audit = pages["audit"]
    # The same facts, in words: courses and categories by name, actors, places, policies.
    words = {
        "nl": ["Word voor beginners", "Rekenbladtrucs", "Bureautica", "heeft een plaats",
               "op de wachtlijst", "het register (automatisch)", "an.peeters (personeel)",
               "balie 127.0.0.1", "cursuszuil 127.0.0.1", "afgedrukt eenmalig wachtwoord",
               "Bibliotheken Antwerpen", "opdrachtregel"],
        "fr": ["Word pour débutants", "Astuces de tableur", "Bureautique", "a une place",
               "sur la liste d’attente", "le registre (automatique)",
               "an.peeters (personnel)", "accueil 127.0.0.1", "borne 127.0.0.1",
               "mot de passe à usage unique imprimé", "Bibliothèques d’Anvers",
               "ligne de commande"],
    }[lang]
    assert [w for w in words if w not in audit] == []
    chosen = {"nl": "Frans voor beginners", "fr": "Français pour débutants"}[lang]
    assert chosen in pages["duplicate"]
    terminals = visible(staff_client("it.support", lang).get(f"/{lang}/staff/terminals"))
    assert raw_codes(terminals) == [] and "ANT-PERMEKE" not in terminals
    assert "Bibliotheek Permeke" in terminals


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_times_are_belgian_and_dates_put_the_day_first(app, staff_client, lang) -> None:  # type: ignore[no-untyped-def]
    ids = history(app, staff_client)
    pages = staff_pages(staff_client("coordinator", lang), lang, ids)
    for name in ("audit", "waiting list", "pending", "patron with an offer", "duplicates",
                 "duplicate"):
        assert LOCAL_T0[lang] in pages[name], name
    everything = " ".join(pages.values())
    assert "21:59" not in everything  # the stored UTC time, shown nowhere
    assert not re.search(r"\b12/6/(?:20)?26\b|Dec 6|\bPM\b|\bAM\b", everything)
    # The offer holds its seat until 23:59 Belgian time (22:59 UTC), as the patron was told.
    assert re.search(r"\d{1,2} \S+ 20\d\d, 23:59", pages["audit"])
    assert "T22:59" not in pages["audit"]


@pytest.mark.parametrize(("lang", "name"), [
    ("nl", "inschrijvingen-per-cursus"), ("fr", "inscriptions-par-cours"),
    ("en", "enrolments-per-course")])
def test_csv_files_are_named_in_the_pages_language(staff_client, lang, name) -> None:  # type: ignore[no-untyped-def]
    coordinator = staff_client("coordinator", lang)
    response = coordinator.get(f"/{lang}/staff/dashboard/courses.csv")
    assert re.fullmatch(rf'attachment; filename="{name}-\d{{4}}-\d\d-\d\d\.csv"',
                        response.headers["Content-Disposition"])
    patrons = coordinator.post(f"/{lang}/staff/dashboard/patron-export",
                               data={"reason": "jaarverslag"})
    expected = {"nl": "leners", "fr": "usagers", "en": "patrons"}[lang]
    assert patrons.headers["Content-Disposition"].startswith(
        f'attachment; filename="{expected}-')


def test_every_enum_value_and_policy_has_a_label() -> None:
    assert set(labels.STANDINGS) == set(Standing)
    assert set(labels.ROLES) == set(Role)
    assert set(labels.PROMOTIONS) == set(PROMOTIONS)
    assert set(labels.VERIFICATIONS) == set(VERIFICATIONS)


def test_an_unknown_code_is_shown_as_written(app: Flask) -> None:
    with app.test_request_context("/fr/staff/"):
        g.lang = "fr"
        assert labels.label_of(labels.STANDINGS, "teleported") == "teleported"
        assert labels.label_of(labels.STANDINGS, Standing.SEATED) == "a une place"
        assert labels.actor_text("nightly-job") == "nightly-job"
        assert labels.actor_text("registry") == "le registre (automatique)"
        assert labels.actor_text("patron#12") == "patron#12"
