"""E-mails about new courses (kiosk.registry.alerts): a patron chooses categories with a consent
of their own; courses published by the coordinator are told once they have settled, all of a
batch in one message per patron, in their language, never the same course twice; the signed
link stops them without a log-in (a forged one does nothing); erasure and the practice reset
take the subscriptions along; the coordinator sees numbers only."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from kiosk.app import create_registry_app
from kiosk.registry.alerts import Alerts
from kiosk.registry.catalogue_admin import CourseDraft
from kiosk.registry.domain import LANGUAGES, RegistryError
from kiosk.registry.mailer import send_due, start_sender
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AlertSent, AlertSubscription, AuditEntry, Notice, Patron
from tests.support.clock import Clock
from tests.support.factories import add_patron
from tests.support.smtp_server import smtp_server

START = datetime(2026, 3, 2, 9, 0)  # a Monday, naive UTC like the database
LINK = "https://kiosk-registry.example.be"
SECRET = "test-secret"
COORDINATOR = "staff:coordinator"


def alerts_service(make_service) -> tuple[RegistryService, Clock]:  # type: ignore[no-untyped-def]
    clock = Clock(START)
    service: RegistryService = make_service(clock=clock)
    service.notices.enabled = True  # what SMTP_HOST does
    service.alerts.secret_key = SECRET  # what the registry's settings give (registry_setup)
    service.alerts.link_base = LINK
    return service, clock


def draft(title: str, category: str = "languages") -> CourseDraft:
    return CourseDraft(category=category, hours="12",
                       titles={lang: f"{title} [{lang}]" for lang in LANGUAGES},
                       summaries={lang: f"About {title}" for lang in LANGUAGES})


def subscriber(service: RegistryService, *categories: str, language: str = "nl") -> str:
    """A patron who chose these categories; answers their session token."""
    _card, token = add_patron(service, language=language)
    service.alerts.choose(token, list(categories), consent=True)
    return token


def notices(service: RegistryService, kind: str = "new_courses") -> list[Notice]:
    with service.store.read() as s:
        rows = list(s.scalars(select(Notice).where(Notice.kind == kind).order_by(Notice.id)))
        for row in rows:
            s.expunge(row)
        return rows


def count(service: RegistryService, model: type) -> int:
    with service.store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def refusal(call) -> RegistryError:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryError) as info:
        call()
    return info.value


def test_a_patron_chooses_categories_with_their_own_consent_and_can_stop_all(
        make_service) -> None:  # type: ignore[no-untyped-def]
    service, _clock = alerts_service(make_service)
    _card, token = add_patron(service)
    choice = service.alerts.choice(token, "fr")
    assert [c.code for c in choice.categories] == ["office", "safety", "languages", "time",
                                                   "health", "photo"]
    assert choice.chosen == [] and choice.available and choice.has_email

    assert refusal(lambda: service.alerts.choose(token, ["languages"], consent=False)).fields \
        == {"consent": "alerts_consent_required"}
    assert refusal(lambda: service.alerts.choose(token, ["astrology"], consent=True)).fields \
        == {"categories": "category_unknown"}
    service.alerts.choose(token, ["languages", "office"], consent=True)
    assert service.alerts.choice(token, "en").chosen == ["office", "languages"]

    # Dropping one asks no new consent; adding one does.
    service.alerts.choose(token, ["languages"], consent=False)
    assert service.alerts.choice(token, "en").chosen == ["languages"]
    service.alerts.choose(token, [], consent=False)  # stop all
    assert service.alerts.choice(token, "en").chosen == []
    with service.store.read() as s:
        actions = s.scalars(select(AuditEntry.action).where(
            AuditEntry.action == "alerts_chosen")).all()
    assert len(actions) == 3


def test_a_member_without_an_e_mail_address_cannot_choose(make_service) -> None:  # type: ignore[no-untyped-def]
    service, _clock = alerts_service(make_service)
    _card, token = add_patron(service)
    with service.store.write() as s:
        patron_id = service.patron_sessions.patron_id_for(s, token)
        s.execute(update(Patron).where(Patron.id == patron_id).values(email=None))
    assert not service.alerts.choice(token, "en").has_email
    assert refusal(lambda: service.alerts.choose(token, ["office"], consent=True)).fields \
        == {"categories": "alerts_need_email"}


def test_thirty_courses_published_at_once_give_each_subscriber_one_message_in_their_language(
        make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = alerts_service(make_service)
    subscriber(service, "languages", language="nl")
    subscriber(service, "languages", "office", language="fr")
    subscriber(service, "office", language="en")
    for n in range(30):
        service.courses_admin.add(draft(f"Language course {n}"), actor=COORDINATOR)

    clock.advance(minutes=5)
    assert service.alerts.tell_subscribers() == 0  # not settled yet: more may come
    clock.advance(minutes=6)
    assert service.alerts.tell_subscribers() == 2
    dutch, french = notices(service)
    assert dutch.language == "nl" and dutch.subject == "Nieuwe online cursussen in de bibliotheek"
    assert french.language == "fr" and "Nouveaux cours en ligne" in french.subject
    assert dutch.body.count("[nl]") == 30 and "[en]" not in dutch.body
    assert french.body.count("[fr]") == 30
    assert dutch.unsubscribe_url.startswith(f"{LINK}/nl/new-courses/stop/")
    assert french.unsubscribe_url.startswith(f"{LINK}/fr/new-courses/stop/")
    assert dutch.unsubscribe_url in dutch.body
    assert count(service, AlertSent) == 60

    clock.advance(hours=1)
    assert service.alerts.tell_subscribers() == 0  # nothing new: nothing sent again


def test_a_course_is_never_told_twice_to_the_same_patron(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = alerts_service(make_service)
    subscriber(service, "office")
    slug = service.courses_admin.add(draft("Spreadsheets", "office"), actor=COORDINATOR)
    clock.advance(minutes=11)
    assert service.alerts.tell_subscribers() == 1

    # Retired and brought back, then module of the month: published again, told no more.
    service.courses_admin.retire(slug, actor=COORDINATOR)
    service.courses_admin.restore(slug, actor=COORDINATOR)
    today = service.courses_admin.today()
    service.courses_admin.set_module_of_the_month(slug, today + timedelta(days=40),
                                                  today + timedelta(days=60),
                                                  actor=COORDINATOR)
    clock.advance(minutes=11)
    assert service.alerts.tell_subscribers() == 0
    # A course of the catalogue that was never told is, when it becomes module of the month.
    service.courses_admin.set_module_of_the_month("excel-basics", today + timedelta(days=70),
                                                  today + timedelta(days=80),
                                                  actor=COORDINATOR)
    clock.advance(minutes=11)
    assert service.alerts.tell_subscribers() == 1
    assert "Excel" in notices(service)[-1].body


def test_a_course_retired_before_it_settles_is_not_told(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = alerts_service(make_service)
    subscriber(service, "office")
    slug = service.courses_admin.add(draft("Typo course", "office"), actor=COORDINATOR)
    service.courses_admin.retire(slug, actor=COORDINATOR)
    clock.advance(minutes=11)
    assert service.alerts.tell_subscribers() == 0
    assert notices(service) == []


def test_with_mail_off_nothing_is_queued_and_old_news_is_not_sent_later(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = alerts_service(make_service)
    subscriber(service, "office")
    service.notices.enabled = False
    assert not service.alerts.choice(add_patron(service)[1], "en").available
    service.courses_admin.add(draft("Quiet course", "office"), actor=COORDINATOR)
    clock.advance(minutes=11)
    assert service.alerts.tell_subscribers() == 0
    service.notices.enabled = True
    assert service.alerts.tell_subscribers() == 0
    assert notices(service) == []


def test_the_signed_link_stops_every_category_and_a_forged_one_is_refused(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = alerts_service(make_service)
    subscriber(service, "office", "languages")
    service.courses_admin.add(draft("Mail merge", "office"), actor=COORDINATOR)
    clock.advance(minutes=11)
    service.alerts.tell_subscribers()
    link_token = notices(service)[0].unsubscribe_url.rsplit("/", 1)[1]

    forger = Alerts(service.context, sessions=service.patron_sessions)
    forger.secret_key = "another-key"
    forged = forger.stop_token(1)
    assert service.alerts.patron_of(forged) is None
    assert service.alerts.patron_of(link_token[:-2] + "xx") is None
    assert refusal(lambda: service.alerts.stop_by_link(forged)).code == "invalid_link"
    assert count(service, AlertSubscription) == 2

    service.alerts.stop_by_link(link_token, where="e-mail link")  # no log-in needed
    assert count(service, AlertSubscription) == 0
    service.alerts.stop_by_link(link_token)  # a second click: nothing left, no error
    with service.store.read() as s:
        stopped = s.execute(select(AuditEntry.terminal, AuditEntry.detail).where(
            AuditEntry.action == "alerts_stopped")).all()
    assert [tuple(row) for row in stopped] == [("e-mail link", {})]  # once: the first click


def test_the_coordinator_sees_how_many_chose_each_category_and_no_names(make_service) -> None:  # type: ignore[no-untyped-def]
    service, _clock = alerts_service(make_service)
    subscriber(service, "office", "languages")
    subscriber(service, "office")
    assert service.alerts.counts("nl") == [
        ("Bureautica", 2), ("Digitale veiligheid", 0), *service.alerts.counts("nl")[2:]]
    assert dict(service.alerts.counts("en"))["Office software"] == 2
    assert sum(n for _name, n in service.alerts.counts("en")) == 3


def test_erasure_takes_the_subscriptions_and_what_was_told_along(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = alerts_service(make_service)
    card, token = add_patron(service)
    service.alerts.choose(token, ["office"], consent=True)
    service.courses_admin.add(draft("Slides", "office"), actor=COORDINATOR)
    clock.advance(minutes=11)
    service.alerts.tell_subscribers()
    assert count(service, AlertSubscription) == 1 and count(service, AlertSent) == 1

    token, _patron = service.login(card, "correct horse")
    service.erase_account(token, "correct horse")
    assert count(service, AlertSubscription) == 0 and count(service, AlertSent) == 0


def test_the_practice_reset_empties_the_subscriptions(db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_registry_app({"DATABASE_URL": db_url(), "SECRET_KEY": SECRET, "TESTING": True,
                               "WTF_CSRF_ENABLED": False, "SEED_DEMO": True},
                              instance_path=str(tmp_path))
    service: RegistryService = app.extensions["registry_service"]
    try:
        subscriber(service, "office")
        service.courses_admin.add(draft("Practice course", "office"), actor=COORDINATOR)
        assert count(service, AlertSubscription) == 1
        service.practice.reset(actor=COORDINATOR)
        assert count(service, AlertSubscription) == 0
        assert service.alerts.tell_subscribers() == 0
    finally:
        service.store.engine.dispose()


def test_the_headers_of_one_click_unsubscribe_reach_the_mail_server(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = alerts_service(make_service)
    subscriber(service, "office", language="fr")
    service.courses_admin.add(draft("Agenda", "office"), actor=COORDINATOR)
    clock.advance(minutes=11)
    service.alerts.tell_subscribers()
    url = notices(service)[0].unsubscribe_url
    with smtp_server() as (mailbox, config):
        assert send_due(service.store, config, clock()) == 2  # the welcome, then this one
    welcome, delivery = mailbox.delivered
    assert welcome.message["List-Unsubscribe"] is None  # a notice nobody asked to stop
    assert delivery.message["Subject"] == "Nouveaux cours en ligne à la bibliothèque"
    assert delivery.message["List-Unsubscribe"] == f"<{url}>"
    assert delivery.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert delivery.message["Content-Language"] == "fr"


def test_the_mail_sender_tells_new_courses_each_round_and_a_failure_there_stops_no_mail(
        make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = alerts_service(make_service)
    subscriber(service, "office")
    service.courses_admin.add(draft("Forms", "office"), actor=COORDINATOR)
    clock.advance(minutes=11)
    with smtp_server() as (mailbox, config):
        stop = start_sender(service.store, config, clock, every=0.05,
                            before=service.alerts.tell_subscribers)
        try:
            assert wait_for(lambda: len(mailbox.delivered) == 2)  # the welcome, the news
        finally:
            stop.set()
        assert mailbox.delivered[1].message["List-Unsubscribe-Post"] is not None

        add_patron(service)  # a welcome to send, and a round whose first part fails
        stop = start_sender(service.store, config, clock, every=0.05,
                            before=lambda: 1 / 0)
        try:
            assert wait_for(lambda: len(mailbox.delivered) == 3)
        finally:
            stop.set()


def wait_for(condition, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
