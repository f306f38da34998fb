"""E-mail notices: queued in the patron's language with the action they tell about, sent to a
real SMTP server on loopback (aiosmtpd: plain, STARTTLS, implicit TLS, with a log-in),
retried with backoff when the message is refused but not when the server is, never sent
twice, never after the offer they tell about is over, erased with the patron, and not
queued at all when mail is off."""

from __future__ import annotations

import email
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from sqlalchemy import select, update

from kiosk.cli import main as cli
from kiosk.registry import mailer
from kiosk.registry.mailer import MAX_ATTEMPTS, SmtpConfig, send_due
from kiosk.registry.notices import enqueue
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Notice, Patron, Place
from tests.support.clock import Clock
from tests.support.factories import add_patron, new_store, patron_data

START = datetime(2026, 3, 2, 9, 0)  # a Monday, naive UTC like the database


class Inbox:
    """An aiosmtpd handler keeping what it received; refuses the addresses in `refuse`
    for good (550), those in `later` for now (451), and every sender while `no_sender`."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self.later: set[str] = set()
        self.no_sender = False
        self.sessions: list[tuple[bool, bool]] = []  # per message: (over TLS, logged in)
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]  # noqa: N802
        if self.no_sender:
            return "553 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]  # noqa: N802
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if address in self.later:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        # (session.ssl tells STARTTLS only; an implicit-TLS transport tells by itself.)
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object")
        with self.lock:
            self.messages.append(
                email.message_from_bytes(envelope.content, policy=policy.default))
            self.sessions.append((bool(tls), bool(session.authenticated)))
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


class Logins:
    """An aiosmtpd authenticator: these user names with these passwords, nobody else."""

    def __init__(self, logins: dict[str, str]):
        self.logins = logins

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and self.logins.get(
            auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp_server(ca, monkeypatch) -> Iterator[Callable[..., tuple[Inbox, SmtpConfig]]]:  # type: ignore[no-untyped-def]
    """A factory of loopback SMTP servers: plain, STARTTLS or implicit TLS ("ssl") with a
    certificate of a throwaway CA, with or without a log-in. The sender's TLS context (made
    by ssl.create_default_context, as in production) trusts that CA as well."""
    make_context = ssl.create_default_context

    def trusting(*args, **kwargs):  # type: ignore[no-untyped-def]
        context = make_context(*args, **kwargs)
        ca.configure_trust(context)
        return context

    monkeypatch.setattr(mailer.ssl, "create_default_context", trusting)
    controllers: list[Controller] = []

    def start(security: str = "none", logins: dict[str, str] | None = None,
              issuer: trustme.CA | None = None) -> tuple[Inbox, SmtpConfig]:
        inbox = Inbox()
        server_context = make_context(ssl.Purpose.CLIENT_AUTH)
        (issuer or ca).issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
        options: dict[str, object] = {}
        if security == "ssl":
            options["ssl_context"] = server_context
        elif security == "starttls":
            options.update(tls_context=server_context, require_starttls=True)
        if logins:
            # (aiosmtpd counts only STARTTLS as TLS: over implicit TLS it must be told.)
            options.update(authenticator=Logins(logins), auth_required=True,
                           auth_require_tls=security != "ssl")
        controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        controllers.append(controller)
        user, password = next(iter((logins or {"": ""}).items()))
        return inbox, SmtpConfig(host="127.0.0.1", port=controller.port, security=security,
                                 username=user, password=password,
                                 mail_from="noreply@bib.example.be", timeout=5)

    yield start
    for controller in controllers:
        controller.stop()


def mail_service(make_service, **kwargs: object) -> tuple[RegistryService, Clock]:  # type: ignore[no-untyped-def]
    clock = Clock(START)
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
    # A real promotion under "offer and hold": Mieke gives up, the seat is offered to Amélie
    # until the 3rd opening day after Monday 2 March: Thursday 5 March, 23:59 in Brussels.
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    service.give_up_seat(nl_token)
    (offer,) = notices(service, kind="offer_made")
    assert offer.to_address == "amelie@example.be"
    assert offer.not_after == service.status(fr_token).offer_expires_at == datetime(
        2026, 3, 5, 22, 59)

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
    assert fr_offer["Subject"] == offer.subject
    assert "5 mars 2026, 23:59" in text(fr_offer)
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


def test_a_mail_server_that_is_down_never_blocks_the_patron(make_service, smtp, caplog) -> None:  # type: ignore[no-untyped-def]
    """The server, not the message: the batch stops at once, no notice is counted a failed
    attempt, and the outage is logged once however many rounds it lasts."""
    inbox, cfg = smtp
    service, clock = mail_service(make_service)
    down = SmtpConfig(host="127.0.0.1", port=free_port(), security="none",
                      mail_from="noreply@bib.example.be", timeout=2)

    card, token = add_patron(service, email="patient@example.be")  # registration succeeds
    assert service.whoami(token).card_number == card
    for n in range(3):
        add_patron(service, email=f"other{n}@example.be")
    caplog.set_level(logging.INFO, logger="kiosk.mail")
    for _ in range(3):  # three rounds of the sender, two days apart: more than the backoff
        assert send_due(service.store, down, clock()) == 0
        clock.advance(days=2)

    for queued in notices(service):
        assert queued.sent_at is None and queued.attempts == 0 and queued.last_error == ""
        assert queued.next_attempt_at == START  # due at once when the server is back
    assert service.notices.counts()["failed"] == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ConnectionRefusedError" in warnings[0]
    assert "patient" not in warnings[0] and card not in warnings[0]

    assert send_due(service.store, cfg, clock()) == 4  # the server is back
    (sent, *_) = notices(service)
    assert sent.sent_at == clock() and sent.attempts == 0 and sent.last_error == ""
    assert len(inbox.to("patient@example.be")) == 1
    assert "usable again" in caplog.records[-1].getMessage()
    assert send_due(service.store, cfg, clock.advance(hours=1)) == 0  # sent once only


def test_a_wrong_log_in_or_sender_costs_no_notice_an_attempt(make_service, smtp_server) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp_server(security="starttls", logins={"kiosk": "right"})
    service, clock = mail_service(make_service)
    add_patron(service, email="a@example.be")
    add_patron(service, email="b@example.be")
    # (aiosmtpd answers smtplib's second try, AUTH LOGIN, with silence: hence the timeout.)
    wrong = replace(cfg, password="wrong", timeout=1)
    for _ in range(3):  # rounds days apart: each would have counted an attempt before
        assert send_due(service.store, wrong, clock.advance(days=1)) == 0
    inbox.no_sender = True  # the account may not send as MAIL_FROM
    for _ in range(3):
        assert send_due(service.store, cfg, clock.advance(days=1)) == 0
    assert [(n.attempts, n.last_error) for n in notices(service)] == [(0, ""), (0, "")]
    assert service.notices.counts()["queued"] == 2
    inbox.no_sender = False
    assert send_due(service.store, cfg, clock()) == 2


def test_backoff_grows_and_gives_up_after_the_last_attempt(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    """A message the server refuses for now (4xx) counts; after MAX_ATTEMPTS it is given up."""
    inbox, cfg = smtp
    service, clock = mail_service(make_service)
    add_patron(service, email="full@example.be")
    inbox.later.add("full@example.be")
    waits = []
    for _ in range(MAX_ATTEMPTS):
        send_due(service.store, cfg, clock())
        row = notices(service)[0]
        waits.append(row.next_attempt_at - clock())
        clock.now = row.next_attempt_at
    assert waits[:5] == [timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
                         timedelta(hours=2), timedelta(hours=12)]
    assert notices(service)[0].attempts == MAX_ATTEMPTS
    assert notices(service)[0].last_error == "SMTPRecipientsRefused 451"
    send_due(service.store, cfg, clock.advance(days=30))
    assert notices(service)[0].attempts == MAX_ATTEMPTS  # given up: kept, not tried
    assert service.notices.counts() == {"queued": 0, "sent": 0, "failed": 1, "obsolete": 0}
    assert inbox.messages == []


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
    from tests.support.factories import build_app

    off = build_app(tmp_path / "off")
    on = build_app(tmp_path / "on", SMTP_HOST="127.0.0.1", MAIL_FROM="noreply@bib.example.be")
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


# --- Talking to real mail servers: STARTTLS, implicit TLS, a log-in -------------------------


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_mail_goes_over_tls_with_a_log_in(make_service, smtp_server, security: str) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp_server(security=security, logins={"kiosk@bib.example.be": "s3cret pw"})
    service, clock = mail_service(make_service)
    add_patron(service, email="tls@example.be", language="en")
    assert send_due(service.store, cfg, clock()) == 1
    (message,) = inbox.to("tls@example.be")
    assert message["Subject"] == "Your library account is ready"
    assert inbox.sessions == [(True, True)]  # over TLS, logged in


def test_a_certificate_the_sender_does_not_trust_is_refused(make_service, smtp_server) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp_server(security="starttls", issuer=trustme.CA())  # another CA
    service, clock = mail_service(make_service)
    add_patron(service)
    assert send_due(service.store, cfg, clock()) == 0
    assert inbox.messages == []
    (queued,) = notices(service)
    assert queued.attempts == 0  # the server's fault: nothing counted against the notice


# --- Offers: time-bound notices ------------------------------------------------------------


def offer_mail_service(make_service) -> tuple[RegistryService, Clock]:  # type: ignore[no-untyped-def]
    service, clock = mail_service(make_service, cap=1, session_idle=timedelta(days=90),
                                  session_max=timedelta(days=90))
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    return service, clock


def test_the_offer_reminder_is_sent_with_its_end_in_the_patron_language(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp
    service, clock = offer_mail_service(make_service)
    _, holder = add_patron(service, email="holder@example.be")
    _, waiting = add_patron(service, language="en", first_name="Sam", email="sam@example.be")
    service.claim(holder, "excel-basics")
    service.claim(waiting, "word-basics")
    service.give_up_seat(holder)  # Monday 2 March: offered until Thursday 5 March, 23:59
    assert send_due(service.store, cfg, clock()) == 5
    (made,) = inbox.to("sam@example.be")[-1:]
    assert made["Subject"] == "A seat is waiting for you"
    assert "Take it before 5 March 2026, 23:59" in text(made)

    clock.now = datetime(2026, 3, 4, 23, 0)  # Thursday 00:00 in Brussels: within a day
    assert service.expire_offers().reminded == 1
    (reminder,) = notices(service, kind="offer_expiring")
    assert reminder.not_after == datetime(2026, 3, 5, 22, 59)
    assert send_due(service.store, cfg, clock()) == 1
    message = inbox.to("sam@example.be")[-1]
    assert message["Subject"] == "Your seat offer expires soon"
    assert message["Content-Language"] == "en"
    body = text(message)
    assert body.splitlines()[0] == "Hello Sam,"
    assert "The seat we are keeping for you is yours until 5 March 2026, 23:59." in body
    assert "Log in at any library kiosk to accept the offer." in body


def test_an_offer_notice_is_never_sent_once_the_offer_is_over(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    """Accepted, declined or passed on before the sender ran: the notice is dropped as
    obsolete (not sent, not failed); past its end likewise, even if the offer row lingers."""
    inbox, cfg = smtp
    service, clock = offer_mail_service(make_service)
    tokens = {name: add_patron(service, email=f"{name}@example.be")[1]
              for name in ("holder", "taker", "decliner", "late")}
    for token in tokens.values():
        service.claim(token, "excel-basics")
    send_due(service.store, cfg, clock())  # the sign-ups and the line, before any offer
    sent_before = len(inbox.messages)

    service.give_up_seat(tokens["holder"])  # offered to "taker"…
    service.accept_offer(tokens["taker"])  # …who takes it at the kiosk at once
    service.give_up_seat(tokens["taker"])  # offered to "decliner"…
    service.decline_offer(tokens["decliner"])  # …who says no: offered to "late"
    assert [n.to_address for n in notices(service, kind="offer_made")] == [
        "taker@example.be", "decliner@example.be", "late@example.be"]
    clock.now = datetime(2026, 3, 5, 22, 59)  # the end of the offer to "late"
    assert send_due(service.store, cfg, clock()) == 0
    assert len(inbox.messages) == sent_before
    assert all(n.obsolete_at == clock() and n.sent_at is None and n.attempts == 0
               for n in notices(service, kind="offer_made"))
    counts = service.notices.counts()
    assert (counts["obsolete"], counts["failed"], counts["queued"]) == (3, 0, 0)
    assert service.notices.send_again(actor="test") == 0  # obsolete is not given up


def test_a_notice_about_an_earlier_offer_is_not_sent_for_a_later_one(make_service, smtp) -> None:  # type: ignore[no-untyped-def]
    inbox, cfg = smtp
    service, clock = offer_mail_service(make_service)
    _, holder = add_patron(service, email="holder@example.be")
    _, first = add_patron(service, email="first@example.be")
    service.claim(holder, "excel-basics")
    service.claim(first, "excel-basics")
    service.give_up_seat(holder)
    with service.store.write() as s:  # as if a second offer had replaced the first
        s.execute(update(Place).where(Place.status == "offered")
                  .values(offer_expires_at=datetime(2026, 3, 9, 22, 59)))
    send_due(service.store, cfg, clock())
    assert inbox.to("first@example.be")[-1]["Subject"] != "A seat is waiting for you"
    assert notices(service, kind="offer_made")[0].obsolete_at == clock()
