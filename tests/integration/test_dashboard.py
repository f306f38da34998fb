"""The coordinator's dashboard: the figures (on SQLite and PostgreSQL, from known data), the
SVG charts, the CSV exports of aggregates and the audited export of patrons."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from kiosk.registry.domain import RegistryError
from kiosk.registry.reports import Reports, belgian_day_start, middle
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AuditEntry, Course, CourseText, Patron
from kiosk.staff import charts
from kiosk.staff.csv_files import BOM, csv_cell, csv_document
from kiosk.staff.dashboard import decimal_comma
from tests.support.clock import Clock
from tests.support.factories import add_patron

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2025, 3, 20, 9, 0)  # naive UTC, as the database holds it; 10:00 in Brussels
PASSWORD = "correct horse"


def audit_rows(service: RegistryService, action: str) -> list:  # type: ignore[type-arg]
    with service.store.read() as s:
        return list(s.execute(select(AuditEntry.actor, AuditEntry.detail, AuditEntry.institution)
                              .where(AuditEntry.action == action).order_by(AuditEntry.id)).all())


def known_programme(make_service) -> tuple[RegistryService, Clock]:  # type: ignore[no-untyped-def]
    """Cap 2. A and B take the two seats at T0; C, D, E, F, G join the line at T0+1h…+6h;
    A gives up at T0+2d+1h (C is seated after 2 days), B at T0+4d+2h (D after 4 days).
    H signs up at 23:30 UTC, already the next day in Belgium; I signed up 70 days before."""
    clock = Clock(T0 - timedelta(days=70))
    service = make_service(cap=2, clock=clock)
    add_patron(service, library_code="MUN-MUNTPUNT")  # I: outside the 60 days
    clock.now = T0
    cards = {}
    plan = [("A", "ANT-PERMEKE", 0, ["spanish-beginners"]),
            ("B", "ANT-HOBOKEN", 0, ["spanish-beginners"]),
            ("C", "KOR-CENTRUM", 1, ["word-basics"]),
            ("D", "ANT-PERMEKE", 2, ["word-basics"]),
            ("E", "ANT-PERMEKE", 3, ["excel-basics", "spanish-beginners"]),
            ("F", "KOR-HEULE", 5, ["excel-basics"]),
            ("G", "MUN-MUNTPUNT", 6, ["excel-basics"])]
    for name, library, hours, courses in plan:
        clock.now = T0 + timedelta(hours=hours)
        card, token = add_patron(service, library_code=library)
        cards[name] = card
        for slug in courses:
            service.claim(token, slug)
    clock.now = datetime(2025, 3, 20, 23, 30)
    add_patron(service, library_code="KOR-CENTRUM")  # H
    for name, at in (("A", T0 + timedelta(days=2, hours=1)),
                     ("B", T0 + timedelta(days=4, hours=2))):
        clock.now = at
        token, _ = service.login(cards[name], PASSWORD)
        service.give_up_seat(token)
    clock.now = T0 + timedelta(days=10)  # 2025-03-30 09:00 UTC: Belgian summer time began
    return service, clock


# --- The figures, on SQLite and PostgreSQL -------------------------------------------------


def test_the_figures_from_known_data(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = known_programme(make_service)
    board = service.reports.dashboard("nl")

    s = board.summary
    assert (s.cap, s.seats_taken, s.waiting, s.offered, s.over_cap, s.free) == (2, 2, 3, 0, 0, 0)
    assert s.seated_from_list == 2  # A and B were seated at once: no wait, not counted
    assert s.median_wait == timedelta(days=3)  # C waited 2 days, D 4
    # E, F and G asked at T0+3h, +5h, +6h: the middle one asked at T0+5h.
    assert s.median_waited == clock.now - (T0 + timedelta(hours=5))

    assert [(c.slug, c.enrolments, c.seated, c.waiting) for c in board.courses] == [
        ("excel-basics", 3, 0, 3), ("word-basics", 2, 2, 0), ("spanish-beginners", 1, 0, 1)]
    with service.store.read() as s:
        assert board.courses[0].title == s.scalar(
            select(CourseText.title).join(Course)
            .where(Course.slug == "excel-basics", CourseText.lang == "nl"))

    days = {d.day: d.signups for d in board.signups}
    assert len(board.signups) == 60 and board.signups[-1].day == date(2025, 3, 30)
    assert board.signups[0].day == date(2025, 1, 30)
    assert {d: n for d, n in days.items() if n} == {date(2025, 3, 20): 7, date(2025, 3, 21): 1}

    libraries = {lib.code: (lib.seats, lib.waiting) for lib in board.libraries}
    assert libraries["KOR-CENTRUM"] == (1, 0) and libraries["ANT-PERMEKE"] == (1, 1)
    assert libraries["KOR-HEULE"] == (0, 1) and libraries["ANT-HOBOKEN"] == (0, 0)
    assert len(libraries) == 27
    institutions = {i.code: (i.seats, i.waiting) for i in board.institutions}
    assert institutions["ANT"] == (1, 1) and institutions["KOR"] == (1, 1)
    assert institutions["MUN"] == (0, 1) and sum(v[0] for v in institutions.values()) == 2
    assert board.institutions[0].name == "Bibliotheken Antwerpen"

    # A hundred days on, C and D were seated too long ago to count.
    clock.now = T0 + timedelta(days=100)
    later = service.reports.summary()
    assert later.seated_from_list == 0 and later.median_wait is None


def test_every_course_is_in_the_full_list_in_the_staff_language(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    _card, token = add_patron(service)
    service.claim(token, "word-basics")
    every = service.reports.courses("fr")
    with service.store.read() as s:
        assert len(every) == len(s.scalars(select(Course.id)).all())
        title = s.scalar(select(CourseText.title).join(Course)
                         .where(Course.slug == "word-basics", CourseText.lang == "fr"))
    assert every[0].slug == "word-basics" and every[0].title == title
    assert all(c.enrolments == 0 for c in every[1:])
    assert [c.slug for c in service.reports.courses("fr", limit=10)] == ["word-basics"]


def test_an_empty_programme_has_figures_too(make_service) -> None:  # type: ignore[no-untyped-def]
    board = make_service().reports.dashboard("en")
    assert board.summary.median_wait is None and board.summary.median_waited is None
    assert board.courses == [] and sum(d.signups for d in board.signups) == 0


@pytest.mark.parametrize(("n", "expected"), [(0, (0, 0)), (1, (0, 1)), (2, (0, 2)),
                                             (5, (2, 1)), (6, (2, 2))])
def test_the_middle_of_n_sorted_values(n: int, expected: tuple[int, int]) -> None:
    assert middle(n) == expected


def test_belgian_days_start_at_belgian_midnight() -> None:
    assert belgian_day_start(date(2025, 1, 15)) == datetime(2025, 1, 14, 23, 0)  # winter
    assert belgian_day_start(date(2025, 7, 15)) == datetime(2025, 7, 14, 22, 0)  # summer


# --- The audited patron export (registry) -------------------------------------------------


def test_the_patron_export_is_audited_before_a_row_is_read(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    _card, token = add_patron(service, first_name="Ann")
    service.claim(token, "word-basics")
    add_patron(service, first_name="Bart")
    with pytest.raises(RegistryError) as refused:
        service.reports.patron_export("   ", "en", actor="staff:coordinator")
    assert refused.value.fields == {"reason": "required"}
    assert audit_rows(service, "patron_export") == []

    export = service.reports.patron_export("annual report", "en", actor="staff:coordinator",
                                           where="desk")
    # Committed, and no row read yet (the rows are read when the file is written).
    entries = audit_rows(service, "patron_export")
    assert entries == [("staff:coordinator", {"reason": "annual report", "row_count": 2}, "")]
    assert export.count == 2
    add_patron(service)  # after the count: not in this export
    rows = list(export.rows)
    assert [(r.first_name, r.standing, r.courses) for r in rows] == [
        ("Ann", "seated", ["Word for beginners"]), ("Bart", "none", [])]


# --- Charts ---------------------------------------------------------------------------------


NASTY = 'Tom & Jerry <script>alert("x")</script> \'quoted\''


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    labelled = (root.get("aria-labelledby") or "").split()
    assert labelled and set(labelled) <= ids
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    return root


def test_charts_are_well_formed_svg_with_every_label_escaped() -> None:
    made = [
        charts.bar_chart("c1", NASTY, NASTY, [(NASTY, 5), ("Other", 2)]),
        charts.column_chart("c2", NASTY, "desc", [(f"{d:02d}/03", d) for d in range(1, 61)]),
        charts.gauge("c3", NASTY, "desc", 10, 2000, caption=NASTY),
    ]
    for markup in made:
        root = parse(str(markup))
        assert "<script>" not in markup
        assert root.find(f"{SVG}title").text == NASTY  # type: ignore[union-attr]
    bar_texts = [t.text for t in parse(str(made[0])).iter(f"{SVG}text")]
    assert "5" in bar_texts and "2" in bar_texts
    assert any(t and t.startswith("Tom & Jerry") for t in bar_texts)
    # The 60 columns are all drawn, every 7th labelled counting back from the last (today).
    columns = parse(str(made[1]))
    assert len(columns.findall(f".//{SVG}rect")) == 60
    labels = [t.text for t in columns.iter(f"{SVG}text")][2:]
    assert labels[-1] == "60/03" and labels[-2] == "53/03"


def test_bars_are_scaled_to_the_largest_value() -> None:
    root = parse(str(charts.bar_chart("b", "t", "d", [("a", 10), ("b", 5), ("c", 0)],
                                      width=640, label_width=230)))
    widths = [float(r.get("width") or 0) for r in root.iter(f"{SVG}rect")]
    assert widths[0] == 2 * widths[1] and widths[2] == 0 and widths[0] == 640 - 230 - 70


def test_the_gauge_shows_seats_above_a_lowered_cap() -> None:
    normal = parse(str(charts.gauge("g", "t", "d", 500, 2000)))
    fills = [r.get("fill") for r in normal.iter(f"{SVG}rect")]
    assert charts.OVER not in fills
    assert float(normal.findall(f"{SVG}rect")[1].get("width") or 0) == pytest.approx(638 / 4,
                                                                                     abs=0.1)
    over = parse(str(charts.gauge("g", "t", "d", 1200, 1000)))
    assert charts.OVER in [r.get("fill") for r in over.iter(f"{SVG}rect")]


# --- CSV --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "cell"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+32 470", "'+32 470"),
    ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tTab", "'\tTab"), ("Plain", "Plain"),
    ("a=b", "a=b"), (7, "7"), (True, "1"), (None, ""),
    # Spreadsheets skip leading blanks, and read full-width and small forms as ASCII.
    (" =1+1", "' =1+1"), ("\u00a0\u3000@A1", "'\u00a0\u3000@A1"), ("\n-2", "'\n-2"),
    ("\uff1d1+1", "'\uff1d1+1"), ("\uff0b32 470", "'\uff0b32 470"), ("\uff0d1", "'\uff0d1"),
    ("\uff20SUM(A1)", "'\uff20SUM(A1)"), ("\ufe661", "'\ufe661"), (" \uff0b1", "' \uff0b1"),
    (" plain", " plain"), ("\uff21", "\uff21"), ("", ""),
])
def test_a_cell_that_a_spreadsheet_would_run_gets_an_apostrophe(value: object, cell: str) -> None:
    assert csv_cell(value) == cell


def test_a_csv_document_is_for_belgian_excel() -> None:
    text = csv_document(["Cursus", "Aantal"], [["Frans; \"deel\" 1", 3], ["=1+1", 2]])
    assert text.startswith(BOM) and "\r\n" in text
    assert list(csv.reader(io.StringIO(text[1:]), delimiter=";")) == [
        ["Cursus", "Aantal"], ['Frans; "deel" 1', "3"], ["'=1+1", "2"]]
    assert decimal_comma(12.345) == "12,3" and decimal_comma(None) == ""


def read_csv(response) -> list[list[str]]:  # type: ignore[no-untyped-def]
    raw = response.get_data()
    assert raw.startswith(BOM.encode("utf-8"))
    return list(csv.reader(io.StringIO(raw.decode("utf-8")[1:]), delimiter=";"))


# --- Pages ------------------------------------------------------------------------------------


def title_course(service: RegistryService, slug: str, title: str) -> None:
    with service.store.write() as s:
        course_id = s.scalar(select(Course.id).where(Course.slug == slug))
        s.execute(update(CourseText).where(CourseText.course_id == course_id)
                  .values(title=title))


def test_the_dashboard_page_draws_each_chart_beside_its_table(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    title_course(service, "word-basics", NASTY)
    _card, token = add_patron(service)
    service.claim(token, "word-basics")
    response = staff_client("coordinator", "nl").get("/nl/staff/dashboard")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 5
    for markup in svgs:
        parse(markup)
    assert "<script>alert" not in page
    assert "Tom &amp; Jerry &lt;script&gt;" in page
    # The numbers beside the charts, in tables a screen reader can walk.
    assert page.count("<table") == 5 and page.count("<h1>") == 1
    assert '<th scope="row">Tom &amp; Jerry' in page
    assert "/nl/staff/dashboard/courses.csv" in page
    assert "/nl/staff/dashboard/patron-export" in page
    assert re.search(r"<th scope=\"row\">\d\d/\d\d/\d{4}</th>", page)  # Belgian dates


def test_aggregate_exports_are_csv_attachments_without_personal_data(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    title_course(service, "word-basics", "=cmd|' /C calc'!A0")
    card, token = add_patron(service, email="secret.person@example.be", last_name="Verborgen")
    service.claim(token, "word-basics")
    coordinator = staff_client("coordinator", "nl")
    bodies = []
    for kind in ("summary", "seats", "libraries", "courses", "signups"):
        response = coordinator.get(f"/nl/staff/dashboard/{kind}.csv")
        assert response.status_code == 200, kind
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert re.fullmatch(r'attachment; filename="[a-z-]+-\d{4}-\d\d-\d\d\.csv"',
                            response.headers["Content-Disposition"])
        rows = read_csv(response)
        assert len({len(r) for r in rows}) == 1, f"{kind}: ragged rows"
        bodies.append(response.get_data(as_text=True))
    everything = "".join(bodies)
    for personal in (card, "secret.person", "Verborgen"):
        assert personal not in everything
    courses = read_csv(coordinator.get("/nl/staff/dashboard/courses.csv"))
    assert courses[1][:4] == ["word-basics", "'=cmd|' /C calc'!A0", "0", "1"]
    assert len(courses) == 1 + len(service.reports.courses("nl"))
    summary = read_csv(coordinator.get("/nl/staff/dashboard/summary.csv"))
    assert summary[1][:2] == ["2000", "1"]
    signups = read_csv(coordinator.get("/nl/staff/dashboard/signups.csv"))
    assert len(signups) == 61 and signups[-1][1] == "1"
    assert coordinator.get("/nl/staff/dashboard/patrons.csv").status_code == 404


def test_librarians_and_it_see_no_dashboard(staff_client) -> None:  # type: ignore[no-untyped-def]
    for username in ("an.peeters", "it.support"):
        client = staff_client(username)
        assert client.get("/en/staff/dashboard").status_code == 403
        assert client.get("/en/staff/dashboard/courses.csv").status_code == 403
        assert "/en/staff/dashboard" not in client.get("/en/staff/").get_data(as_text=True)
    assert "/en/staff/dashboard" in staff_client("coordinator").get("/en/staff/").get_data(
        as_text=True)


def test_the_patron_export_needs_a_reason_and_is_audited_first(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    card, token = add_patron(service, first_name="Ann", email="ann@example.be")
    service.claim(token, "word-basics")
    with service.store.write() as s:  # what a spreadsheet would run, typed as a name
        s.execute(update(Patron).where(Patron.card_number == card)
                  .values(last_name="=HYPERLINK(\"http://evil\")"))
    coordinator = staff_client("coordinator", "fr")
    assert coordinator.get("/fr/staff/dashboard/patron-export").status_code == 200
    refused = coordinator.post("/fr/staff/dashboard/patron-export", data={"reason": " "})
    assert refused.status_code == 422
    assert 'class="error-summary"' in refused.get_data(as_text=True)
    assert audit_rows(service, "patron_export") == []

    response = coordinator.post("/fr/staff/dashboard/patron-export",
                                data={"reason": "rapport annuel"}, buffered=False)
    assert response.status_code == 200
    # The audit entry is in the database before a byte of the file is produced.
    assert audit_rows(service, "patron_export") == [
        ("staff:coordinator", {"reason": "rapport annuel", "row_count": 1}, "")]
    assert response.headers["Cache-Control"].startswith("no-store")
    assert response.headers["Content-Disposition"].startswith('attachment; filename="usagers-')
    rows = read_csv(response)
    response.close()
    assert len(rows) == 2 and len(rows[0]) == 8
    assert rows[1][:5] == [card, "Ann", "'=HYPERLINK(\"http://evil\")", "ann@example.be",
                           "ANT-PERMEKE"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows[1][7])


def test_the_patron_export_is_refused_to_librarians(staff_client, service) -> None:  # type: ignore[no-untyped-def]
    add_patron(service)
    librarian = staff_client("an.peeters")
    assert librarian.get("/en/staff/dashboard/patron-export").status_code == 403
    refused = librarian.post("/en/staff/dashboard/patron-export", data={"reason": "curious"})
    assert refused.status_code == 403 and "text/csv" not in refused.headers["Content-Type"]
    assert audit_rows(service, "patron_export") == []


def test_reports_hang_off_the_registry_service(service) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(service.reports, Reports)


# --- E-mail to patrons: the outbox's figures and "send again" ---------------------------------


def csrf_token(client, path: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found, path
    return found.group(1)


def test_the_dashboard_counts_the_outbox_and_sends_given_up_mail_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kiosk.registry.mailer import MAX_ATTEMPTS
    from kiosk.registry.store import Notice
    from tests.support.factories import STAFF_PASSWORDS, build_app

    app = build_app(tmp_path, WTF_CSRF_ENABLED=True)
    service = app.extensions["registry_service"]
    client = app.test_client()
    off = client.get("/en/staff/login")  # (mail is off: said so on the dashboard)
    assert off.status_code == 200
    client.post("/en/staff/login", data={
        "csrf_token": csrf_token(client, "/en/staff/login"), "username": "coordinator",
        "password": STAFF_PASSWORDS["coordinator"]})
    assert "E-mail to patrons is off" in client.get("/en/staff/dashboard").get_data(
        as_text=True)

    service.notices.enabled = True
    for n in range(4):
        add_patron(service, email=f"reader{n}@example.be")  # one account_created each
    now = service.clock()
    with service.store.write() as s:
        ids = list(s.scalars(select(Notice.id).order_by(Notice.id)))
        s.execute(update(Notice).where(Notice.id == ids[0]).values(sent_at=now))
        s.execute(update(Notice).where(Notice.id == ids[1])
                  .values(sent_at=now - timedelta(days=8)))
        s.execute(update(Notice).where(Notice.id == ids[2]).values(
            attempts=MAX_ATTEMPTS, last_error="SMTPRecipientsRefused 550"))
    page = client.get("/en/staff/dashboard").get_data(as_text=True)
    figures = dict(re.findall(r'<th scope="row">([^<]+)</th><td class="number">(\d+)</td>',
                              page))
    assert (figures["Waiting to be sent"], figures["Sent in the last 7 days"],
            figures["Given up (not sent)"]) == ("1", "1", "1")
    assert "<code>SMTPRecipientsRefused 550</code>: 1" in page
    assert "reader" not in page  # counts and kinds of error, no address
    assert "Send the 1 given-up e-mail again" in page

    # A post without the form's token changes nothing; with it, the notice starts afresh.
    assert client.post("/en/staff/dashboard/notices/send-again").status_code in (302, 400)
    assert service.notices.counts()["failed"] == 1
    done = client.post("/en/staff/dashboard/notices/send-again",
                       data={"csrf_token": csrf_token(client, "/en/staff/dashboard")})
    assert done.status_code == 302 and done.headers["Location"].endswith(
        "/en/staff/dashboard#mail-heading")
    assert "1 e-mail will be sent again." in client.get(done.headers["Location"]).get_data(
        as_text=True)
    counts = service.notices.counts()
    assert (counts["queued"], counts["failed"]) == (2, 0)
    (entry,) = audit_rows(service, "notices_resent")
    assert entry.actor == "staff:coordinator" and entry.detail == {"count": 1}
    service.store.engine.dispose()


def test_librarians_may_not_send_mail_again(staff_client) -> None:  # type: ignore[no-untyped-def]
    assert staff_client("an.peeters").post(
        "/en/staff/dashboard/notices/send-again").status_code == 403
