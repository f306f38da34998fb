"""The coordinator's catalogue: courses added and edited in nl, fr and en, retired (their
enrolments stay) and brought back, the module of the month without overlaps, every change
audited, and the kiosks showing it within their cache time."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import Row, select

from kiosk.registry.catalogue_admin import (
    CourseDraft,
    Period,
    belgian_date,
    overlapping,
    parse_day,
    slug_from_title,
    unique_slug,
    validate_course,
    validate_period,
)
from kiosk.registry.domain import RegistryError, Standing
from kiosk.registry.services import RegistryService, utcnow
from kiosk.registry.store import AuditEntry
from kiosk.terminal import reference
from tests.support.factories import CONFIRMED, add_patron

TITLES = {"nl": "Veilig online winkelen", "fr": "Acheter en ligne en sécurité",
          "en": "Shopping online safely"}
SUMMARIES = {"nl": "Herken betrouwbare webwinkels.", "fr": "Reconnaître les boutiques fiables.",
             "en": "Recognise trustworthy web shops."}
CATEGORIES = {"office", "safety", "languages"}


def draft(**overrides: object) -> CourseDraft:
    values: dict = {"slug": "", "category": "safety", "hours": "4", "position": "",
                    "titles": dict(TITLES), "summaries": dict(SUMMARIES)}
    values.update(overrides)
    return CourseDraft(**values)


def refusal_fields(call) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryError) as refused:
        call()
    assert refused.value.code == "invalid"
    return dict(refused.value.fields)


def audit(service: RegistryService, action: str) -> list[Row]:
    """The entries of one action, oldest first: (actor, terminal, detail)."""
    with service.store.read() as s:
        return list(s.execute(select(AuditEntry.actor, AuditEntry.terminal, AuditEntry.detail)
                              .where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)).all())


# --- Rules, without a database ------------------------------------------------------------


def test_slugs_are_made_from_the_english_title() -> None:
    assert slug_from_title("Shopping online safely!") == "shopping-online-safely"
    assert slug_from_title("  Sécurité -- numérique ") == "securite-numerique"
    assert slug_from_title("数字") == ""
    assert len(slug_from_title("word " * 40)) <= 80
    assert not slug_from_title("word " * 40).endswith("-")
    assert unique_slug("excel", {"word"}) == "excel"
    assert unique_slug("excel", {"excel", "excel-2"}) == "excel-3"
    assert len(unique_slug("a" * 80, {"a" * 80})) == 80


def test_a_valid_course_is_cleaned() -> None:
    clean = validate_course(draft(hours="１２", titles={**TITLES, "en": "  Shopping\n online "}),
                            categories=CATEGORIES, taken_slugs={"word-basics"})
    assert clean.slug == "shopping-online"
    assert clean.hours == 12 and clean.position is None
    assert clean.titles["en"] == "Shopping online"


def test_all_three_languages_are_required() -> None:
    fields = refusal_fields(lambda: validate_course(
        draft(titles={"nl": TITLES["nl"], "fr": " ", "en": TITLES["en"]},
              summaries={"nl": SUMMARIES["nl"], "fr": SUMMARIES["fr"]}),
        categories=CATEGORIES, taken_slugs=set()))
    assert fields == {"title_fr": "required", "summary_en": "required"}


def test_every_field_is_checked_at_once() -> None:
    fields = refusal_fields(lambda: validate_course(
        draft(slug="Word Basics!", category="cooking", hours="0", position="-1",
              titles={**TITLES, "nl": "x" * 161, "fr": "Acheter\x00"},
              summaries={**SUMMARIES, "en": "Shops \u202eevil"}),
        categories=CATEGORIES, taken_slugs=set()))
    assert fields == {"slug": "slug_invalid", "category": "category_unknown",
                      "hours": "hours_invalid", "position": "course_position_invalid",
                      "title_nl": "too_long", "title_fr": "invalid_characters",
                      "summary_en": "invalid_characters"}


def test_a_summary_may_have_line_breaks_but_not_be_endless() -> None:
    clean = validate_course(draft(summaries={**SUMMARIES, "nl": "Regel een.\r\nRegel twee."}),
                            categories=CATEGORIES, taken_slugs=set())
    assert clean.summaries["nl"] == "Regel een. Regel twee."
    fields = refusal_fields(lambda: validate_course(
        draft(summaries={**SUMMARIES, "fr": "mot " * 300}), categories=CATEGORIES,
        taken_slugs=set()))
    assert fields == {"summary_fr": "too_long"}


def test_slugs_are_unique() -> None:
    assert refusal_fields(lambda: validate_course(
        draft(slug="word-basics"), categories=CATEGORIES, taken_slugs={"word-basics"}),
    ) == {"slug": "slug_taken"}
    # Typed in capitals: the same slug, in lower case.
    assert validate_course(draft(slug=" Word-Basics "), categories=CATEGORIES,
                           taken_slugs=set()).slug == "word-basics"
    # Made from the title: a free variant rather than a refusal.
    generated = validate_course(draft(), categories=CATEGORIES,
                                taken_slugs={"shopping-online-safely"})
    assert generated.slug == "shopping-online-safely-2"
    assert refusal_fields(lambda: validate_course(
        draft(titles={**TITLES, "en": "数字"}), categories=CATEGORIES, taken_slugs=set()),
    ) == {"slug": "slug_cannot_generate"}


def test_days_as_browsers_and_belgians_write_them() -> None:
    assert parse_day("2026-03-31") == date(2026, 3, 31)
    assert parse_day("31/03/2026") == date(2026, 3, 31)
    assert parse_day("1.4.2026") == date(2026, 4, 1)
    assert parse_day("31/02/2026") is None
    assert parse_day("03/31/2026") is None  # no American dates
    assert parse_day("soon") is None


def test_a_period_has_a_first_and_a_last_day_not_yet_past() -> None:
    today = date(2026, 3, 10)
    assert validate_period("10/03/2026", "31/03/2026", today) == (date(2026, 3, 10),
                                                                   date(2026, 3, 31))
    # A new period may not start in the past; one that has begun keeps its first day.
    assert refusal_fields(lambda: validate_period("01/03/2026", "31/03/2026", today)) == {
        "featured_from": "date_in_past"}
    assert validate_period("01/03/2026", "15/04/2026", today, started=date(2026, 3, 1)) == (
        date(2026, 3, 1), date(2026, 4, 15))
    assert refusal_fields(lambda: validate_period("02/03/2026", "31/03/2026", today,
                                                  started=date(2026, 3, 1))) == {
        "featured_from": "date_in_past"}  # keeping, not moving into the past
    assert refusal_fields(lambda: validate_period("", "someday", today)) == {
        "featured_from": "required", "featured_until": "date_invalid"}
    assert refusal_fields(lambda: validate_period("2026-04-30", "2026-04-01", today)) == {
        "featured_until": "until_before_from"}
    assert refusal_fields(lambda: validate_period("2026-02-01", "2026-03-09", today)) == {
        "featured_from": "date_in_past", "featured_until": "date_in_past"}


def test_overlaps_count_only_from_today() -> None:
    today = date(2026, 3, 20)
    march = Period("excel-basics", date(2026, 3, 1), date(2026, 3, 15))  # has ended
    april = Period("word-basics", date(2026, 4, 1), date(2026, 4, 30))
    assert overlapping(Period("ai", date(2026, 3, 1), date(2026, 3, 31)), [march, april],
                       today) is None
    assert overlapping(Period("ai", date(2026, 3, 25), date(2026, 4, 1)), [march, april],
                       today) == april
    assert overlapping(Period("word-basics", date(2026, 4, 2), date(2026, 4, 3)), [april],
                       today) is None  # its own period is replaced, not a clash


def test_the_module_of_the_month_runs_on_belgian_days() -> None:
    assert belgian_date(datetime(2031, 3, 31, 23, 30)) == date(2031, 4, 1)  # 01:30 CEST
    assert belgian_date(datetime(2031, 12, 31, 22, 59)) == date(2031, 12, 31)
    assert belgian_date(datetime(2031, 12, 31, 23, 0)) == date(2032, 1, 1)


# --- The service, on SQLite and PostgreSQL ------------------------------------------------


def test_adding_a_course_offers_it_in_three_languages(make_service) -> None:
    service = make_service()
    slug = service.courses_admin.add(draft(), actor="staff:coordinator", where="desk")
    assert slug == "shopping-online-safely"
    for lang in ("nl", "fr", "en"):
        course = service.course(slug, lang)
        assert (course.title, course.summary, course.hours) == (TITLES[lang], SUMMARIES[lang], 4)
    # A new course goes last, unless a position is given.
    assert service.catalogue("en").courses[-1].slug == slug
    (entry,) = audit(service, "course_added")
    assert entry.actor == "staff:coordinator" and entry.terminal == "desk"
    assert entry.detail == {"slug": slug, "category": "safety"}
    # The same English title again: a slug of its own.
    assert service.courses_admin.add(draft(), actor="staff:coordinator") == f"{slug}-2"


def test_a_refused_course_changes_nothing(make_service) -> None:
    service = make_service()
    before = len(service.courses_admin.courses("en"))
    assert refusal_fields(lambda: service.courses_admin.add(
        draft(titles={**TITLES, "fr": ""}), actor="staff:coordinator"),
    ) == {"title_fr": "required"}
    assert refusal_fields(lambda: service.courses_admin.add(
        draft(slug="word-basics"), actor="staff:coordinator")) == {"slug": "slug_taken"}
    assert len(service.courses_admin.courses("en")) == before
    assert audit(service, "course_added") == []


def test_editing_a_course_audits_which_fields_changed(make_service) -> None:
    service = make_service()
    admin = service.courses_admin
    details = admin.details("word-basics")
    changed = draft(slug="word-basics", category=details.category, hours="9",
                    position=str(details.position),
                    titles={**details.titles, "fr": "Word pour bien débuter"},
                    summaries=details.summaries)
    assert admin.change("word-basics", changed, actor="staff:coordinator") == "word-basics"
    assert service.course("word-basics", "fr").title == "Word pour bien débuter"
    assert service.course("word-basics", "fr").hours == 9
    (entry,) = audit(service, "course_changed")
    assert entry.detail == {"slug": "word-basics", "changed": ["hours", "title_fr"]}
    # Its own slug is not "taken"; another course's is.
    assert refusal_fields(lambda: admin.change("word-basics", draft(slug="excel-basics"),
                                               actor="staff:coordinator")) == {
        "slug": "slug_taken"}
    # Saving without a change writes no entry.
    admin.change("word-basics", changed, actor="staff:coordinator")
    assert len(audit(service, "course_changed")) == 1
    with pytest.raises(RegistryError) as missing:
        admin.change("no-such-course\x00", changed, actor="staff:coordinator")
    assert missing.value.code == "not_found"


def test_retiring_keeps_the_enrolments(make_service) -> None:
    service = make_service(cap=1)
    _card, seated = add_patron(service)
    _card, waiting = add_patron(service)
    service.claim(seated, "excel-basics")
    service.claim(waiting, "excel-basics")
    admin = service.courses_admin

    admin.retire("excel-basics", actor="staff:coordinator")
    assert "excel-basics" not in {c.slug for c in service.catalogue("en").courses}
    row = next(r for r in admin.courses("en") if r.slug == "excel-basics")
    assert row.retired and row.enrolments == 2
    # The patrons still see it among their courses, in their language.
    status = service.status(seated, "nl")
    assert status.standing is Standing.SEATED
    assert [(e.course_slug, e.title) for e in status.enrolments] == [
        ("excel-basics", "Excel: de basis")]
    assert [e.course_slug for e in service.status(waiting, "en").enrolments] == ["excel-basics"]
    # Nobody new can choose it, but a patron may still stop it.
    _card, newcomer = add_patron(service)
    with pytest.raises(RegistryError) as refused:
        service.claim(newcomer, "excel-basics")
    assert refused.value.code == "course_not_found"
    service.withdraw(seated, "excel-basics")
    assert service.status(waiting, "en").standing is Standing.SEATED  # the seat moved on

    admin.restore("excel-basics", actor="staff:coordinator")
    assert "excel-basics" in {c.slug for c in service.catalogue("en").courses}
    assert [e.detail for e in audit(service, "course_retired")] == [{"slug": "excel-basics"}]
    assert [e.detail for e in audit(service, "course_restored")] == [{"slug": "excel-basics"}]
    # Retiring twice, or restoring an offered course, is no new event.
    admin.restore("excel-basics", actor="staff:coordinator")
    assert len(audit(service, "course_restored")) == 1


def frozen(moment: datetime):  # type: ignore[no-untyped-def]
    clock = {"now": moment}
    return clock, (lambda: clock["now"])


def test_one_module_of_the_month_at_a_time(make_service) -> None:
    # 2031: the seed's module of the month (this month) has long ended.
    clock, now = frozen(datetime(2031, 3, 10, 12, 0))
    service = make_service(clock=now)
    admin = service.courses_admin
    admin.set_module_of_the_month("word-basics", "2031-04-01", "30/04/2031",
                                  actor="staff:coordinator", where="desk")
    with pytest.raises(RegistryError) as refused:
        admin.set_module_of_the_month("excel-basics", "2031-03-20", "2031-04-01",
                                      actor="staff:coordinator")
    assert refused.value.fields == {"featured_from": "featured_overlap"}
    assert refused.value.detail == {"other": "word-basics", "starts": date(2031, 4, 1),
                                    "ends": date(2031, 4, 30)}
    admin.set_module_of_the_month("excel-basics", "2031-03-10", "2031-03-31",
                                  actor="staff:coordinator")
    # Moving a course's own period is no clash with itself.
    admin.set_module_of_the_month("word-basics", "2031-04-02", "2031-04-30",
                                  actor="staff:coordinator")
    assert [e.detail for e in audit(service, "module_of_the_month_set")] == [
        {"slug": "word-basics", "starts": "2031-04-01", "ends": "2031-04-30"},
        {"slug": "excel-basics", "starts": "2031-03-10", "ends": "2031-03-31"},
        {"slug": "word-basics", "starts": "2031-04-02", "ends": "2031-04-30"},
    ]
    featured = service.catalogue("en").module_of_the_month
    assert featured is not None and featured.slug == "excel-basics"
    # Midnight in Brussels is 22:00 UTC in April: the new month starts then, not at 00:00 UTC.
    clock["now"] = datetime(2031, 4, 1, 22, 30)
    featured = service.catalogue("en").module_of_the_month
    assert featured is not None and featured.slug == "word-basics"
    clock["now"] = datetime(2031, 4, 30, 22, 30)
    assert service.catalogue("en").module_of_the_month is None


def test_the_module_of_the_month_must_be_an_offered_course(make_service) -> None:
    clock, now = frozen(datetime(2031, 3, 10, 12, 0))
    service = make_service(clock=now)
    admin = service.courses_admin
    admin.set_module_of_the_month("word-basics", "2031-03-10", "2031-03-31",
                                  actor="staff:coordinator")
    # Retiring it frees its days, so another course can take them.
    admin.retire("word-basics", actor="staff:coordinator")
    assert audit(service, "course_retired")[0].detail == {"slug": "word-basics",
                                                          "featured_cleared": True}
    assert service.catalogue("en").module_of_the_month is None
    assert refusal_fields(lambda: admin.set_module_of_the_month(
        "word-basics", "2031-03-10", "2031-03-31", actor="staff:coordinator")) == {
        "course": "course_retired"}
    assert refusal_fields(lambda: admin.set_module_of_the_month(
        "", "2031-02-01", "2031-02-02", actor="staff:coordinator")) == {
        "course": "required", "featured_from": "date_in_past",
        "featured_until": "date_in_past"}
    admin.set_module_of_the_month("excel-basics", "2031-03-10", "2031-03-31",
                                  actor="staff:coordinator")
    admin.clear_module_of_the_month("excel-basics", actor="staff:coordinator")
    assert service.catalogue("en").module_of_the_month is None
    assert [e.detail for e in audit(service, "module_of_the_month_cleared")] == [
        {"slug": "excel-basics"}]


def test_a_running_module_of_the_month_keeps_its_start_a_new_one_starts_today_or_later(
        make_service) -> None:
    clock, now = frozen(datetime(2031, 3, 1, 12, 0))
    service = make_service(clock=now)
    admin = service.courses_admin
    admin.set_module_of_the_month("word-basics", "2031-03-01", "2031-03-31",
                                  actor="staff:coordinator")
    clock["now"] = datetime(2031, 3, 10, 12, 0)
    # Its last day moved while it runs: the first day, now past, may stay.
    assert admin.set_module_of_the_month("word-basics", "2031-03-01", "2031-04-05",
                                         actor="staff:coordinator") == (date(2031, 3, 1),
                                                                        date(2031, 4, 5))
    # But not be moved to another day in the past, nor another course start in the past.
    assert refusal_fields(lambda: admin.set_module_of_the_month(
        "word-basics", "2031-03-02", "2031-04-05", actor="staff:coordinator")) == {
        "featured_from": "date_in_past"}
    admin.clear_module_of_the_month("word-basics", actor="staff:coordinator")
    assert refusal_fields(lambda: admin.set_module_of_the_month(
        "excel-basics", "2031-03-09", "2031-04-30", actor="staff:coordinator")) == {
        "featured_from": "date_in_past"}
    # A period that has ended does not come back with its old first day.
    admin.set_module_of_the_month("excel-basics", "2031-03-10", "2031-03-11",
                                  actor="staff:coordinator")
    clock["now"] = datetime(2031, 3, 20, 12, 0)
    assert refusal_fields(lambda: admin.set_module_of_the_month(
        "excel-basics", "2031-03-10", "2031-04-30", actor="staff:coordinator")) == {
        "featured_from": "date_in_past"}


# --- The pages --------------------------------------------------------------------------------


def test_a_librarian_may_not_touch_the_catalogue(staff_client, service) -> None:
    librarian = staff_client("an.peeters")
    for path in ("/en/staff/courses", "/en/staff/courses/new",
                 "/en/staff/courses/word-basics/edit",
                 "/en/staff/courses/module-of-the-month"):
        assert librarian.get(path).status_code == 403, path
    assert librarian.post("/en/staff/courses/word-basics/retire").status_code == 403
    assert librarian.post("/en/staff/courses/new", data={}).status_code == 403
    assert audit(service, "course_retired") == []
    assert "excel-basics" in {c.slug for c in service.catalogue("en").courses}


def test_the_course_list(staff_client, service) -> None:
    service.courses_admin.retire("instagram", actor="staff:coordinator")
    _card, token = add_patron(service)
    service.claim(token, "word-basics")
    page = staff_client("coordinator", "nl").get("/nl/staff/courses")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Word voor beginners" in body and "Bureautica" in body
    assert body.count("<h1") == 1
    assert 'action="/nl/staff/courses/instagram/restore"' in body
    assert 'href="/nl/staff/courses/word-basics/retire"' in body  # asks first
    english = staff_client("coordinator").get("/en/staff/courses").get_data(as_text=True)
    seconds = int(reference.FRESH_FOR)
    assert f"Kiosks show changes within {seconds} seconds." in english
    row = english[english.index('href="/en/staff/courses/word-basics/edit"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="number">1</td>' in row  # one enrolment
    ai = english[english.index('href="/en/staff/courses/ai-assistants/edit"'):]
    assert "now" in ai[:ai.index("</tr>")]  # the seed's module of the month


def form(**overrides: str) -> dict[str, str]:
    data = {"category": "safety", "hours": "4", "position": "", "slug": ""}
    for lang in ("nl", "fr", "en"):
        data[f"title_{lang}"] = TITLES[lang]
        data[f"summary_{lang}"] = SUMMARIES[lang]
    data.update(overrides)
    return data


def test_a_missing_french_title_is_shown_beside_its_field(staff_client, service) -> None:
    coordinator = staff_client("coordinator")
    response = coordinator.post("/en/staff/courses/new", data=form(title_fr=""))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    field = body[body.index('<label for="title_fr">'):]
    field = field[:field.index("</div>")]
    assert "Title in French" in field
    assert '<p class="error" id="title_fr-error">Type the title in French.</p>' in field
    assert 'lang="fr"' in field and 'aria-invalid="true"' in field
    assert '<a href="#title_fr">Title in French: Type the title in French.</a>' in body
    assert f'value="{TITLES["en"]}"' in body  # what was typed stays
    assert 'id="title_nl"' in body and 'lang="nl"' in body and 'lang="en"' in body
    assert "shopping-online-safely" not in {c.slug for c in service.catalogue("en").courses}


def test_a_new_course_is_on_this_kiosk_at_once(staff_client, client, service) -> None:
    assert "Acheter en ligne" not in client.get("/fr/courses/").get_data(as_text=True)
    coordinator = staff_client("coordinator", "fr")
    response = coordinator.post("/fr/staff/courses/new", data=form(slug="acheter"))
    assert response.status_code == 302
    assert "Acheter en ligne en sécurité" in client.get("/fr/courses/").get_data(as_text=True)
    assert client.get("/nl/courses/acheter").status_code == 200
    edit = coordinator.get("/fr/staff/courses/acheter/edit")
    assert edit.status_code == 200 and 'value="Shopping online safely"' in edit.get_data(
        as_text=True)
    changed = coordinator.post("/fr/staff/courses/acheter/edit",
                               data=form(slug="acheter", hours="6"))
    assert changed.status_code == 302
    assert service.course("acheter", "fr").hours == 6
    assert coordinator.get("/fr/staff/courses/nothing-here/edit").status_code == 404


def test_a_patron_keeps_a_retired_course(staff_client, client, registered, service) -> None:
    assert client.post("/en/courses/excel-basics/enrol").status_code == 302
    coordinator = staff_client("coordinator")
    response = coordinator.post("/en/staff/courses/excel-basics/retire", data=CONFIRMED)
    assert response.status_code == 302
    flashed = coordinator.get("/en/staff/courses").get_data(as_text=True)
    assert "1 patron who chose it keeps it among their courses." in flashed
    assert "Excel basics" not in client.get("/en/courses/").get_data(as_text=True)
    assert client.get("/en/courses/excel-basics").status_code == 404
    mine = client.get("/en/my")
    assert mine.status_code == 200 and "Excel basics" in mine.get_data(as_text=True)
    assert client.get("/en/courses/excel-basics/done").status_code == 200
    stop = client.get("/en/my/withdraw/excel-basics")
    assert stop.status_code == 200 and "Excel basics" in stop.get_data(as_text=True)
    assert client.post("/en/my/withdraw/excel-basics", data=CONFIRMED).status_code == 302
    assert "Excel basics" not in client.get("/en/my").get_data(as_text=True)
    assert coordinator.post("/en/staff/courses/excel-basics/restore").status_code == 302
    assert "Excel basics" in client.get("/en/courses/").get_data(as_text=True)


def test_an_overlapping_module_of_the_month_is_refused(staff_client, service) -> None:
    coordinator = staff_client("coordinator")
    today = belgian_date(utcnow())
    page = coordinator.get("/en/staff/courses/module-of-the-month")
    assert page.status_code == 200
    assert "Using AI chat assistants safely" in page.get_data(as_text=True)  # the seed's
    response = coordinator.post("/en/staff/courses/module-of-the-month", data={
        "course": "word-basics", "featured_from": today.isoformat(),
        "featured_until": (today + timedelta(days=1)).isoformat()})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "“Using AI chat assistants safely” is already the module of the month" in body
    assert 'id="featured_from-error"' in body
    assert audit(service, "module_of_the_month_set") == []
    # The seed's module runs until the end of this month: the next month is free.
    after = service.courses_admin.courses("en")
    ends = next(r.featured_until for r in after if r.slug == "ai-assistants")
    assert ends is not None
    done = coordinator.post("/en/staff/courses/module-of-the-month", data={
        "course": "word-basics", "featured_from": (ends + timedelta(days=1)).isoformat(),
        "featured_until": (ends + timedelta(days=10)).strftime("%d/%m/%Y")})
    assert done.status_code == 302
    (entry,) = audit(service, "module_of_the_month_set")
    assert entry.detail["slug"] == "word-basics"
    cleared = coordinator.post("/en/staff/courses/word-basics/module-of-the-month/clear")
    assert cleared.status_code == 302
    assert len(audit(service, "module_of_the_month_cleared")) == 1


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_other_kiosks_show_a_change_within_the_cache_time(app, client, service,
                                                          monkeypatch) -> None:
    """A change made elsewhere (the central registry) reaches a kiosk when its cached
    catalogue is older than reference.FRESH_FOR — the time the course pages promise."""
    fake = FakeMonotonic()
    monkeypatch.setattr(reference, "time", fake)
    assert "Excel basics" in client.get("/en/courses/").get_data(as_text=True)
    service.courses_admin.retire("excel-basics", actor="staff:coordinator")
    fake.now += reference.FRESH_FOR - 1
    assert "Excel basics" in client.get("/en/courses/").get_data(as_text=True)  # still cached
    fake.now += 2
    assert "Excel basics" not in client.get("/en/courses/").get_data(as_text=True)
