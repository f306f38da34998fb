"""E-mail notices: queued in the patron's language with the action they tell about, sent to a
real SMTP server on loopback (aiosmtpd), retried with backoff, never sent twice, erased with
the patron, and not queued at all when mail is off."""

from __future__ import annotations

import email
import re
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import select, update

from kiosk.cli import main as cli
from kiosk.registry import mailer
from kiosk.registry.mailer import MAX_ATTEMPTS, SmtpConfig, send_due
from kiosk.registry.notices import enqueue
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Notice, Patron

from .conftest import add_patron, new_store, patron_data

START = datetime(2026, 3, 2, 9, 0)  # a Monday, naive UTC like the database


class Clock:
    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Inbox:
    """An aiosmtpd handler keeping what it received; refuses the addresses in `refuse`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]  # noqa: N802
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        with self.lock:
            self.messages.append(
                email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, SmtpConfig]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, SmtpConfig(host="127.0.0.1", port=controller.port, security="none",
                                mail_from="Online leren <noreply@bib.example.be>", timeout=5)
    finally:
        controller.stop()


def mail_service(make_service, **kwargs: object) -> tuple[RegistryService, Clock]:  # type: ignore[no-untyped-def]
    clock = Clock()
    service = make_service(clock=clock, **kwargs)
    service.notices.enabled = True  # what SMTP_HOST does
    return service, clock


def notices(service: RegistryService, **where: object) -> list[Notice]:
    with service.store.read() as s:
        rows = s.scalars(select(Notice).filter_by(**where).order_by(Notice.id)).all()
        for row in rows:
            s.expunge(row)
        return list(rows)


def text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return body.get_content().replace("\r\n", "\n")


def test_each_patron_reads_their_notices_in_their_own_language(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp
    service, clock = mail_service(make_service, cap=1)
    _, nl_token = add_patron(service, language="nl", first_name="Mieke",
                             email="mieke@example.be")
    _, fr_token = add_patron(service, language="fr", first_name="Amélie",
                             email="amelie@example.be")
    service.claim(nl_token, "word-basics")  # the one seat
    service.claim(fr_token, "word-basics")  # the waiting list, place 1
    service.claim(fr_token, "word-basics")  # chosen again: nothing new to tell
    fr_id = notices(service, to_address="amelie@example.be")[0].patron_id
    until = START + timedelta(days=3, hours=6)  # 5 March, 16:00 in Brussels (UTC+1)
    with service.store.write() as s:
        enqueue(s, fr_id, "offer_made", clock(), until=until.isoformat(),
                course_slug="word-basics")

    assert send_due(service.store, cfg, clock()) == 5

    nl, fr = inbox.to("mieke@example.be"), inbox.to("amelie@example.be")
    assert [m["Content-Language"] for m in nl + fr] == ["nl"] * 2 + ["fr"] * 3
    nl_created, nl_enrolled = nl
    fr_created, fr_waiting, fr_offer = fr
    for message in nl + fr:
        assert message["From"] == "Online leren <noreply@bib.example.be>"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message.get_content_type() == "text/plain"
    # The catalogue's translations are chosen per patron (these are already translated).
    assert nl_created["Subject"] == "Je bibliotheekaccount is klaar"
    assert fr_created["Subject"] == "Votre compte de bibliothèque est prêt"
    assert "Mieke" in text(nl_created).splitlines()[0]  # the greeting
    assert text(nl_created).rstrip().endswith("Online cursussen in de bibliotheek")
    assert text(fr_created).rstrip().endswith("Cours en ligne à la bibliothèque")
    # The card number as on the card: grouped 4 4 5, as the kiosk shows it.
    card = re.search(r"\d{4} \d{4} \d{5}", notices(service, to_address="mieke@example.be")[0].body)
    assert card is not None and card.group(0) in text(nl_created)
    # The course title in the patron's language, the academy's address where useful.
    assert "Word voor beginners" in nl_enrolled["Subject"]
    assert "Word voor beginners" in text(nl_enrolled)
    assert "https://academieportal.nl/onlinelerenmetdebib" in text(nl_enrolled)
    assert "Word pour débutants" in text(fr_waiting)
    assert "Word voor beginners" not in text(fr_waiting) + text(fr_offer)
    assert fr_waiting["Subject"] == "Vous êtes sur la liste d’attente"
    assert ": 1" in text(fr_waiting)  # the place in line
    # Dates in the Belgian long format of the patron's language, in Belgian time.
    assert "5 mars 2026, 16:00" in text(fr_offer)
    assert "maart" not in text(fr_offer) and "March" not in text(fr_offer)
    assert "Amélie" in text(fr_offer).splitlines()[0]


def test_a_promoted_patron_is_told_in_their_language(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp
    service, clock = mail_service(make_service, cap=1)
    _, seated = add_patron(service, language="fr", email="seated@example.be")
    _, waiting = add_patron(service, language="nl", first_name="Jef",
                            email="jef@example.be")
    service.claim(seated, "excel-basics")
    service.claim(waiting, "word-basics")
    clock.advance(minutes=5)
    service.give_up_seat(seated)

    promoted = notices(service, kind="promoted")
    assert [n.to_address for n in promoted] == ["jef@example.be"]
    assert promoted[0].language == "nl" and promoted[0].created_at == clock()
    assert not notices(service, kind="promoted", to_address="seated@example.be")
    send_due(service.store, cfg, clock())
    message = inbox.to("jef@example.be")[-1]
    assert message["Subject"] == promoted[0].subject
    assert "Jef" in text(message).splitlines()[0]
    assert "- Word voor beginners" in text(message)  # their courses, in Dutch
    assert "https://academieportal.nl/onlinelerenmetdebib" in text(message)
    assert text(message).rstrip().endswith("Online cursussen in de bibliotheek")


def test_a_mail_server_that_is_down_never_blocks_the_patron(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp
    service, clock = mail_service(make_service)
    down = SmtpConfig(host="127.0.0.1", port=free_port(), security="none",
                      mail_from="noreply@bib.example.be", timeout=2)

    card, token = add_patron(service, email="patient@example.be")  # registration succeeds
    assert service.whoami(token).card_number == card
    assert send_due(service.store, down, clock()) == 0

    (queued,) = notices(service)
    assert queued.sent_at is None and queued.attempts == 1
    assert queued.next_attempt_at == clock() + timedelta(minutes=1)
    assert queued.last_error.startswith("ConnectionRefusedError")
    assert "patient" not in queued.last_error and card not in queued.last_error
    # Not due yet: nothing is tried, not even on a working server.
    assert send_due(service.store, cfg, clock() + timedelta(seconds=59)) == 0
    assert notices(service)[0].attempts == 1
    # A second failure waits longer (5 minutes), then the server is back.
    assert send_due(service.store, down, clock.advance(minutes=1)) == 0
    assert notices(service)[0].attempts == 2
    assert notices(service)[0].next_attempt_at == clock() + timedelta(minutes=5)
    assert send_due(service.store, cfg, clock.advance(minutes=5)) == 1
    (sent,) = notices(service)
    assert sent.sent_at == clock() and sent.attempts == 2 and sent.last_error == ""
    assert len(inbox.to("patient@example.be")) == 1
    assert send_due(service.store, cfg, clock.advance(hours=1)) == 0  # sent once only


def test_backoff_grows_and_gives_up_after_the_last_attempt(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = mail_service(make_service)
    down = SmtpConfig(host="127.0.0.1", port=free_port(), security="none",
                      mail_from="noreply@bib.example.be", timeout=2)
    add_patron(service)
    waits = []
    for _ in range(MAX_ATTEMPTS):
        send_due(service.store, down, clock())
        row = notices(service)[0]
        waits.append(row.next_attempt_at - clock())
        clock.now = row.next_attempt_at
    assert waits[:5] == [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
                         timedelta(hours=2), timedelta(hours=12)]
    assert notices(service)[0].attempts == MAX_ATTEMPTS
    send_due(service.store, down, clock.advance(days=30))
    assert notices(service)[0].attempts == MAX_ATTEMPTS  # given up: kept, not tried
    assert service.notices.counts() == {"queued": 0, "sent": 0, "failed": 1}


def test_a_refused_address_is_given_up_at_once(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp
    service, clock = mail_service(make_service)
    add_patron(service, email="gone@example.be")
    add_patron(service, email="here@example.be")
    inbox.refuse.add("gone@example.be")
    assert send_due(service.store, cfg, clock()) == 1  # the other one still goes
    gone = notices(service, to_address="gone@example.be")[0]
    assert gone.sent_at is None and gone.attempts == MAX_ATTEMPTS
    assert gone.last_error == "SMTPRecipientsRefused 550"
    assert len(inbox.to("here@example.be")) == 1


def test_two_senders_at_once_send_each_notice_once(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp
    service, clock = mail_service(make_service)
    for n in range(12):
        add_patron(service, email=f"reader{n}@example.be")
    start = threading.Barrier(3)
    results: list[int] = []

    def sender() -> None:
        start.wait()
        results.append(send_due(service.store, cfg, clock()))

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(results) == 12
    assert sorted(m["To"] for m in inbox.messages) == sorted(
        f"reader{n}@example.be" for n in range(12))
    assert all(n.sent_at is not None for n in notices(service))


def test_a_sender_that_read_a_notice_late_does_not_send_it_again(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    """The claim itself: a sender holding an old read of the row cannot take it."""
    inbox, cfg = smtp
    service, clock = mail_service(make_service)
    add_patron(service)
    seen = notices(service)[0]
    assert send_due(service.store, cfg, clock()) == 1  # another sender went first
    assert not mailer._claim(service.store, seen.id, seen.next_attempt_at, clock())
    assert len(inbox.messages) == 1


def test_erasure_takes_the_queued_notices_with_the_patron(make_service) -> None:  # type: ignore[no-untyped-def]
    service, _ = mail_service(make_service)
    card, token = add_patron(service, email="forget.me@example.be")
    service.claim(token, "word-basics")
    assert len(notices(service)) == 2
    service.erase_by_card(card, actor="dpo")
    assert notices(service) == []


def test_sent_notices_are_purged_after_30_days(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    _, cfg = smtp
    service, clock = mail_service(make_service)
    add_patron(service, email="old@example.be")
    send_due(service.store, cfg, clock())
    clock.advance(days=20)
    add_patron(service, email="new@example.be")  # queued, not sent
    clock.advance(days=10, seconds=1)
    assert service.notices.purge() == 1
    assert [n.to_address for n in notices(service)] == ["new@example.be"]


def test_without_an_smtp_server_nothing_is_queued(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()  # as built from a configuration with SMTP_HOST empty
    _, token = add_patron(service)
    service.claim(token, "word-basics")
    with service.store.write() as s:
        patron_id = s.scalar(select(Patron.id))
        enqueue(s, patron_id, "receipt", START)
    assert notices(service) == []


def test_the_configured_app_queues_only_with_smtp_host(tmp_path: Path) -> None:
    from kiosk import create_app

    from .conftest import app_config

    (tmp_path / "off").mkdir()
    (tmp_path / "on").mkdir()
    off = create_app(app_config(tmp_path / "off"), instance_path=str(tmp_path / "off"))
    on = create_app(app_config(tmp_path / "on", SMTP_HOST="127.0.0.1",
                               MAIL_FROM="noreply@bib.example.be"),
                    instance_path=str(tmp_path / "on"))
    for app in (off, on):
        app.extensions["registry_service"].register(patron_data())
    assert notices(off.extensions["registry_service"]) == []
    assert [n.kind for n in notices(on.extensions["registry_service"])] == ["account_created"]
    for app in (off, on):
        app.extensions["registry_service"].store.engine.dispose()


def test_send_notices_command(tmp_path: Path, smtp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    store = new_store(url)
    service = RegistryService(store)
    service.notices.enabled = True
    service.register(patron_data(email="cli@example.be", language="fr"))
    with store.write() as s:  # queued a minute ago: due now
        s.execute(update(Notice).values(next_attempt_at=datetime.now() - timedelta(days=1)))
    store.engine.dispose()
    for key, value in {"INSTANCE_PATH": str(tmp_path), "SMTP_HOST": "127.0.0.1",
                       "SMTP_PORT": str(cfg.port), "SMTP_SECURITY": "none",
                       "MAIL_FROM": "noreply@bib.example.be", "SEED_DEMO": "false"}.items():
        monkeypatch.setenv(f"KIOSK_{key}", value)
    result = CliRunner().invoke(cli, ["registry", "send-notices", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "Sent 1 notice(s); 0 waiting, 0 given up." in result.output
    assert [m["Content-Language"] for m in inbox.to("cli@example.be")] == ["fr"]
    monkeypatch.delenv("KIOSK_SMTP_HOST")
    result = CliRunner().invoke(cli, ["registry", "send-notices", "--database-url", url])
    assert result.exit_code == 1 and "SMTP_HOST is not set" in result.output
