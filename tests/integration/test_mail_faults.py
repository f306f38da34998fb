"""E-mail never jams: one address the mail server will not take fails alone, with a short
reason and no personal data, and the round goes on with the others over the same
connection; addresses that are not ASCII go where the server offers SMTPUTF8; a refusal for
now is tried again after the backoff; a server that is down or closing costs nothing. All
against a real SMTP server on loopback (aiosmtpd), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from kiosk.registry.mailer import MAX_ATTEMPTS, send_due
from kiosk.registry.services import RegistryService
from kiosk.registry.store import Notice
from tests.support.clock import Clock
from tests.support.factories import STAFF_PASSWORDS, build_app, patron_data
from tests.support.smtp_server import config, free_port, smtp_server

pytestmark = pytest.mark.slow  # SMTP servers that stall and refuse

START = datetime(2026, 3, 2, 9, 0)  # naive UTC, as the database holds it
JOSE = "josé.peeters@example.be"  # as the demo data has them: a non-ASCII local part


def mail_service(make_service) -> tuple[RegistryService, Clock]:  # type: ignore[no-untyped-def]
    clock = Clock(START)
    service = make_service(clock=clock)
    service.notices.enabled = True  # what SMTP_HOST does
    return service, clock


def outbox(service: RegistryService) -> dict[str, Notice]:
    """The notices by address (each patron here has one: "your account is ready")."""
    with service.store.read() as s:
        rows = s.scalars(select(Notice).order_by(Notice.id)).all()
        for row in rows:
            s.expunge(row)
    by_address = {row.to_address: row for row in rows}
    assert len(by_address) == len(rows)
    return by_address


def patrons(service: RegistryService, *emails: str) -> None:
    """Register them in this order: the sender takes their notices in this order too."""
    for address in emails:
        service.register(patron_data(email=address))  # (no log-in: one password hash less)
    assert list(outbox(service)) == list(emails)


def test_a_refused_recipient_fails_alone_and_the_round_goes_on(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = mail_service(make_service)
    patrons(service, "gone@example.be", "a@example.be", "b@example.be", "c@example.be")
    with smtp_server() as (mailbox, cfg):
        mailbox.answers["gone@example.be"] = "550 5.1.1 <gone@example.be>: no such mailbox"
        assert send_due(service.store, cfg, clock()) == 3
        assert [d.rcpt_tos for d in mailbox.delivered] == [
            ["a@example.be"], ["b@example.be"], ["c@example.be"]]
        assert mailbox.connections() == 1  # the same connection went on after the refusal
        gone = outbox(service)["gone@example.be"]
        assert gone.sent_at is None and gone.attempts == MAX_ATTEMPTS
        assert gone.last_error == "SMTPRecipientsRefused 550"  # not the server's text
        for _ in range(3):  # given up: never asked for again, however long we wait
            assert send_due(service.store, cfg, clock.advance(days=1)) == 0
        assert mailbox.asked.count("gone@example.be") == 1
    assert service.notices.outbox().reasons == [("SMTPRecipientsRefused 550", 1)]


def test_a_non_ascii_address_fails_alone_where_the_server_offers_no_smtputf8(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = mail_service(make_service)
    patrons(service, JOSE, "a@example.be", "b@example.be")
    with smtp_server(smtputf8=False) as (mailbox, cfg):
        assert send_due(service.store, cfg, clock()) == 2
        assert [d.rcpt_tos for d in mailbox.delivered] == [["a@example.be"], ["b@example.be"]]
        assert mailbox.connections() == 1
        assert JOSE not in mailbox.asked  # refused before a word of it reached the server
        jose = outbox(service)[JOSE]
        assert jose.sent_at is None and jose.attempts == MAX_ATTEMPTS  # never will go there
        assert jose.last_error == "SMTPNotSupportedError SMTPUTF8"
        assert send_due(service.store, cfg, clock.advance(days=3)) == 0
    assert service.notices.counts() == {"queued": 0, "sent": 2, "failed": 1, "obsolete": 0}


def test_a_non_ascii_address_is_delivered_where_the_server_offers_smtputf8(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = mail_service(make_service)
    patrons(service, JOSE, "a@example.be")
    with smtp_server(smtputf8=True) as (mailbox, cfg):
        assert send_due(service.store, cfg, clock()) == 2
        (jose,) = mailbox.to(JOSE)
        assert "SMTPUTF8" in jose.mail_options
        assert jose.message["To"] == JOSE  # the header in UTF-8, not mangled
        assert jose.message["Subject"] == outbox(service)[JOSE].subject
        (plain,) = mailbox.to("a@example.be")  # after it, on the same connection
        assert "SMTPUTF8" not in plain.mail_options
        assert mailbox.connections() == 1
    assert all(n.sent_at == clock() and n.attempts == 0 for n in outbox(service).values())


def test_a_refusal_for_now_is_tried_again_after_the_backoff(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = mail_service(make_service)
    patrons(service, "full@example.be", "a@example.be")
    with smtp_server() as (mailbox, cfg):
        mailbox.answers["full@example.be"] = "451 4.2.2 Mailbox full, try again later"
        assert send_due(service.store, cfg, clock()) == 1  # the other one went at once
        full = outbox(service)["full@example.be"]
        assert (full.attempts, full.last_error) == (1, "SMTPRecipientsRefused 451")
        assert full.next_attempt_at == clock() + timedelta(minutes=1)

        assert send_due(service.store, cfg, clock.advance(seconds=30)) == 0  # not yet
        assert mailbox.asked.count("full@example.be") == 1
        assert send_due(service.store, cfg, clock.advance(seconds=30)) == 0  # refused again
        full = outbox(service)["full@example.be"]
        assert full.attempts == 2 and full.next_attempt_at == clock() + timedelta(minutes=5)

        del mailbox.answers["full@example.be"]  # room in the mailbox again
        assert send_due(service.store, cfg, clock.advance(minutes=4)) == 0  # not yet
        assert send_due(service.store, cfg, clock.advance(minutes=1)) == 1
        assert len(mailbox.to("full@example.be")) == 1
    full = outbox(service)["full@example.be"]
    assert full.sent_at == clock() and full.last_error == "" and full.attempts == 2


def test_a_refused_data_command_leaves_the_connection_fit_for_the_next_notice(make_service) -> None:  # type: ignore[no-untyped-def]
    """smtplib does not reset after the DATA command itself is refused: without a reset the
    next MAIL FROM would be refused as nested, and look like the server refusing us."""
    service, clock = mail_service(make_service)
    patrons(service, "lost@example.be", "a@example.be", "b@example.be")
    with smtp_server() as (mailbox, cfg):
        mailbox.answers["lost@example.be"] = "250 OK"  # accepted, forgotten: DATA gets 503
        assert send_due(service.store, cfg, clock()) == 2
        assert [d.rcpt_tos for d in mailbox.delivered] == [["a@example.be"], ["b@example.be"]]
        assert mailbox.connections() == 1
    lost = outbox(service)["lost@example.be"]
    assert (lost.attempts, lost.last_error) == (MAX_ATTEMPTS, "SMTPDataError 503")


def test_a_server_that_is_down_or_closing_costs_no_notice_an_attempt(make_service) -> None:  # type: ignore[no-untyped-def]
    service, clock = mail_service(make_service)
    patrons(service, "a@example.be", "b@example.be", "c@example.be")
    down = config(free_port(), timeout=2)  # nothing listens there
    for _ in range(3):  # rounds days apart: far past any backoff
        assert send_due(service.store, down, clock.advance(days=1)) == 0
    with smtp_server() as (mailbox, cfg):
        # 421: the server closes the channel at the second recipient.
        mailbox.answers["b@example.be"] = "421 4.3.2 Service shutting down"
        assert send_due(service.store, cfg, clock.advance(days=1)) == 1
        assert mailbox.asked == ["a@example.be", "b@example.be"]  # the round ended there
        for address in ("b@example.be", "c@example.be"):
            waiting = outbox(service)[address]
            assert (waiting.attempts, waiting.last_error) == (0, "")
            assert waiting.next_attempt_at == START  # due at once, as it always was
        del mailbox.answers["b@example.be"]
        assert send_due(service.store, cfg, clock()) == 2
    assert all(n.sent_at is not None and n.attempts == 0 for n in outbox(service).values())


def csrf_token(client, path: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found, path
    return str(found.group(1))


def test_the_dashboard_shows_why_an_address_failed_and_sends_it_again(tmp_path: Path) -> None:
    """The coordinator sees the reason (no address), is told what it means, fixes the mail
    server and sends the notice again: then it goes."""
    app = build_app(tmp_path, WTF_CSRF_ENABLED=True)
    service = app.extensions["registry_service"]
    service.notices.enabled = True
    patrons(service, JOSE, "a@example.be")
    with smtp_server(smtputf8=False) as (_, cfg):
        assert send_due(service.store, cfg, service.clock()) == 1
    client = app.test_client()
    client.post("/en/staff/login", data={
        "csrf_token": csrf_token(client, "/en/staff/login"), "username": "coordinator",
        "password": STAFF_PASSWORDS["coordinator"]})
    page = client.get("/en/staff/dashboard").get_data(as_text=True)
    assert "<code>SMTPNotSupportedError SMTPUTF8</code>: 1" in page
    assert "does not offer SMTPUTF8" in page  # what it means, in words
    assert "josé" not in page and "jos&" not in page
    assert "Send the 1 given-up e-mail again" in page
    dutch = client.get("/nl/staff/dashboard").get_data(as_text=True)
    assert "biedt geen SMTPUTF8 aan" in dutch  # in the coordinator's language

    assert client.post("/en/staff/dashboard/notices/send-again").status_code in (302, 400)
    assert service.notices.counts()["failed"] == 1  # no CSRF token, nothing done
    done = client.post("/en/staff/dashboard/notices/send-again",
                       data={"csrf_token": csrf_token(client, "/en/staff/dashboard")})
    assert done.status_code == 302
    with smtp_server(smtputf8=True) as (mailbox, cfg):  # the server was set up for it
        assert send_due(service.store, cfg, service.clock()) == 1
        assert len(mailbox.to(JOSE)) == 1
    assert service.notices.counts()["failed"] == 0
    service.store.engine.dispose()
