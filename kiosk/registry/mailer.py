"""Sending the outbox (`notices`) through an SMTP server, outside any patron's request.

A notice is claimed before it is sent: one UPDATE that moves its `next_attempt_at` forward
(a lease) only if nobody moved it since it was read, so two senders (two worker processes, a
CLI run beside the server) never send the same notice twice. A sender that dies mid-send
leaves the lease to expire and the notice is tried again. No SMTP work happens inside a
database transaction.

Whose fault a failure is decides what it costs:
- the server or our account with it (no connection, TLS, log-in, our sender address
  refused, a 421 "closing the channel"): every message would fail alike, so the batch
  stops, the notice is released untouched and the problem is logged once, however long it
  lasts;
- this message (its recipient or content refused, an address the server cannot carry: not
  ASCII while the server offers no SMTPUTF8, or not encodable at all): it counts an attempt
  and waits longer each time, a permanent refusal (5xx, or an address that can never go
  through) gives it up at once; after MAX_ATTEMPTS it stays, unsent, for the coordinator
  (the dashboard shows why and can send it again). The batch goes on with the next notice
  on the same connection, reset first; a connection that does not survive the reset is
  replaced by a new one, as if the batch had just begun;
- a connection lost while sending: either one, so it counts one attempt and ends the batch
  (a message that always breaks the connection must not hold up the outbox for ever).
Addresses that are not ASCII go with SMTPUTF8 when the server offers it (smtplib asks for
it by itself).
A notice about an offer that is over is never sent: it is marked obsolete instead.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.errors import MessageError
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

from sqlalchemy import select, update

from .notices import MAX_ATTEMPTS, outdated
from .periodic import run_every
from .store import Notice, Store

log = logging.getLogger("kiosk.mail")

# Waits after the 1st, 2nd, … failed attempt; the last one repeats until MAX_ATTEMPTS
# (kiosk.registry.notices: the outbox counts the given-up ones).
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30),
           timedelta(hours=2), timedelta(hours=12), timedelta(hours=24))
LEASE = timedelta(minutes=10)  # a claimed notice is not claimed again before this
SECURITY = ("starttls", "ssl", "none")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = ""
    mail_from: str = ""
    timeout: float = 10.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SmtpConfig | None:
        """The server of the app's configuration; None when SMTP_HOST is empty (mail off)."""
        host = (cfg.get("SMTP_HOST") or "").strip()
        if not host:
            return None
        return cls(host=host, port=int(cfg.get("SMTP_PORT", 587)),
                   security=cfg.get("SMTP_SECURITY", "starttls"),
                   username=cfg.get("SMTP_USERNAME", ""), password=cfg.get("SMTP_PASSWORD", ""),
                   mail_from=cfg.get("MAIL_FROM", ""), timeout=float(cfg.get("SMTP_TIMEOUT", 10)))


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failure."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


def short_error(exc: BaseException) -> str:
    """What went wrong, without personal data: never the server's text (it may quote the
    address), only the kind of error and the SMTP code or the system's reason."""
    name = type(exc).__name__
    if isinstance(exc, smtplib.SMTPNotSupportedError) and "SMTPUTF8" in str(exc):
        return f"{name} SMTPUTF8"  # (smtplib's own words, never the address)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return f"{name} {','.join(map(str, codes))}"[:200]
    code = getattr(exc, "smtp_code", None)
    if code is not None:
        return f"{name} {code}"[:200]
    if isinstance(exc, OSError) and exc.strerror:
        return f"{name}: {exc.strerror}"[:200]
    return name[:200]


def _codes(exc: BaseException) -> set[int]:
    """The SMTP reply codes an exception carries (several for refused recipients)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return {code for code, _ in exc.recipients.values()}
    code = getattr(exc, "smtp_code", None)
    return {code} if isinstance(code, int) else set()


def _permanent(exc: BaseException) -> bool:
    """A 5xx refusal of the recipient or the message, or an address or text that cannot be
    put on the wire at all: trying again will not help."""
    if isinstance(exc, (smtplib.SMTPNotSupportedError, ValueError, MessageError)):
        return True  # (UnicodeEncodeError is a ValueError)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    if isinstance(exc, (smtplib.SMTPDataError, smtplib.SMTPSenderRefused)):
        return 500 <= exc.smtp_code < 600
    return False


# What went wrong with one message, not with the server or the connection (see _fault).
_MESSAGE_FAULTS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError,
                   smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError, ValueError,
                   MessageError)


def _fault(exc: Exception, to_address: str) -> str:
    """Whose fault a failed send is (the module's docstring): "server", "message" or
    "connection"."""
    if 421 in _codes(exc):
        return "server"  # the server closes the channel (and smtplib its end)
    if isinstance(exc, smtplib.SMTPSenderRefused) and exc.smtp_code != 552:
        return "server"  # our From address or account (552: this message's SIZE)
    if isinstance(exc, smtplib.SMTPNotSupportedError) and to_address.isascii():
        return "server"  # it is our From address that needs SMTPUTF8
    if isinstance(exc, _MESSAGE_FAULTS):
        return "message"
    return "connection"


# The server problem last logged, per registry (the sender threads of one process share
# it): an outage is logged when it starts or changes and when it is over, not every round.
_outages: weakref.WeakKeyDictionary[Store, str] = weakref.WeakKeyDictionary()
_outages_lock = threading.Lock()


def _server_down(store: Store, cfg: SmtpConfig, exc: BaseException) -> None:
    problem = short_error(exc)
    with _outages_lock:
        if _outages.get(store) == problem:
            return
        _outages[store] = problem
    log.warning("mail server %s:%s unusable (nothing counted against the notices, tried "
                "again next round): %s", cfg.host, cfg.port, problem)


def _server_up(store: Store, cfg: SmtpConfig) -> None:
    with _outages_lock:
        if _outages.pop(store, None) is None:
            return
    log.info("mail server %s:%s usable again", cfg.host, cfg.port)


def connect(cfg: SmtpConfig) -> smtplib.SMTP:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if cfg.security == "ssl":
        smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
    try:
        smtp.ehlo()
        if cfg.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.username:
            smtp.login(cfg.username, cfg.password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def message(cfg: SmtpConfig, notice: Notice, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.mail_from
    msg["To"] = notice.to_address
    msg["Subject"] = notice.subject
    msg["Date"] = format_datetime(now.replace(tzinfo=UTC))
    domain = parseaddr(cfg.mail_from)[1].rpartition("@")[2] or None
    msg["Message-ID"] = make_msgid(idstring=f"notice{notice.id}", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"  # no out-of-office replies
    if notice.unsubscribe_url:  # a notice the patron asked for: RFC 2369 and RFC 8058
        msg["List-Unsubscribe"] = f"<{notice.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(notice.body, charset="utf-8")
    msg["Content-Language"] = notice.language  # after set_content, which resets Content-*
    return msg


def _claim(store: Store, notice_id: int, seen: datetime, now: datetime) -> bool:
    """Take the lease on one notice, if nobody else took it since we read `seen`."""
    with store.write(durable=False) as s:
        taken = s.connection().execute(
            update(Notice)
            .where(Notice.id == notice_id, Notice.sent_at.is_(None),
                   Notice.next_attempt_at == seen)
            .values(next_attempt_at=now + LEASE))
        return taken.rowcount == 1


def _release(store: Store, notice_id: int, seen: datetime, now: datetime) -> None:
    """Give the lease back untouched: the notice is due again at once, nothing counted."""
    with store.write(durable=False) as s:
        s.execute(update(Notice)
                  .where(Notice.id == notice_id, Notice.sent_at.is_(None),
                         Notice.next_attempt_at == now + LEASE)
                  .values(next_attempt_at=seen)
                  .execution_options(synchronize_session=False))


def _obsolete(store: Store, notice_id: int, now: datetime) -> None:
    with store.write() as s:
        s.execute(update(Notice).where(Notice.id == notice_id)
                  .values(obsolete_at=now, last_error="")
                  .execution_options(synchronize_session=False))


def _sent(store: Store, notice_id: int, now: datetime) -> None:
    with store.write() as s:
        s.execute(update(Notice).where(Notice.id == notice_id)
                  .values(sent_at=now, last_error="")
                  .execution_options(synchronize_session=False))


def _failed(store: Store, notice_id: int, exc: BaseException, now: datetime) -> None:
    with store.write() as s:
        attempts = (s.scalar(select(Notice.attempts).where(Notice.id == notice_id)) or 0) + 1
        if _permanent(exc):
            attempts = max(attempts, MAX_ATTEMPTS)
        s.execute(update(Notice).where(Notice.id == notice_id)
                  .values(attempts=attempts, last_error=short_error(exc),
                          next_attempt_at=now + backoff(attempts))
                  .execution_options(synchronize_session=False))
    log.warning("notice %s not sent (attempt %s of %s): %s", notice_id, attempts, MAX_ATTEMPTS,
                short_error(exc))


def send_due(store: Store, smtp_config: SmtpConfig, now: datetime, limit: int = 100) -> int:
    """Send the notices that are due (oldest first, at most `limit`); answers how many went.

    One SMTP connection for the batch, opened for the first notice that is still to be
    sent. A server that cannot be used stops the batch and costs no notice an attempt (see
    the module's docstring): the patrons' actions were never held up by it either."""
    with store.read() as s:
        due = s.execute(
            select(Notice.id, Notice.next_attempt_at)
            .where(Notice.sent_at.is_(None), Notice.obsolete_at.is_(None),
                   Notice.next_attempt_at <= now, Notice.attempts < MAX_ATTEMPTS)
            .order_by(Notice.next_attempt_at, Notice.id)
            .limit(limit)).all()
    smtp: smtplib.SMTP | None = None
    sent = 0
    try:
        for notice_id, seen in due:
            if not _claim(store, notice_id, seen, now):
                continue  # another sender has it
            with store.read() as s:
                notice = s.get(Notice, notice_id)
                if notice is None:  # erased meanwhile, with its patron
                    continue
                s.expunge(notice)
                stale = outdated(s, notice.kind, notice.patron_id, notice.not_after, now)
            if stale:
                _obsolete(store, notice_id, now)
                continue
            if smtp is None:
                try:
                    smtp = connect(smtp_config)
                except (smtplib.SMTPException, OSError) as exc:
                    _release(store, notice_id, seen, now)
                    _server_down(store, smtp_config, exc)
                    break
            try:
                # One recipient, the notice's, whatever its To header would parse into.
                smtp.send_message(message(smtp_config, notice, now),
                                  to_addrs=[notice.to_address])
            except (smtplib.SMTPException, OSError, ValueError, MessageError) as exc:
                fault = _fault(exc, notice.to_address)
                if fault == "server":
                    _release(store, notice_id, seen, now)
                    _server_down(store, smtp_config, exc)
                    break
                _failed(store, notice_id, exc, now)
                if fault == "connection":
                    break  # the connection is gone; the next round opens a new one
                if not _reset(smtp):
                    _close(smtp)
                    smtp = None  # the next notice opens a new one
                continue
            _sent(store, notice_id, now)
            _server_up(store, smtp_config)
            sent += 1
    finally:
        _close(smtp)
    return sent


def _reset(smtp: smtplib.SMTP) -> bool:
    """RSET after a refused message, whatever state it left (smtplib does not reset after a
    refused DATA command, nor after an address it failed to encode halfway); answers
    whether the connection is fit for the next message."""
    try:
        code, _ = smtp.rset()
    except (smtplib.SMTPException, OSError):
        return False
    return code == 250


def _close(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def start_sender(store: Store, smtp_config: SmtpConfig, clock: Callable[[], datetime],
                 every: float = 30.0,
                 before: Callable[[], object] | None = None) -> threading.Event:
    """Send due notices in the background every `every` seconds while the server runs;
    answers an event that stops it. `before`: work that queues notices, done first each round
    (the new-course e-mails, kiosk.registry.alerts)."""
    def work() -> None:
        if before is not None:
            try:
                before()
            except Exception:  # its failure must not hold up the notices already queued
                log.exception("kiosk-mail-sender: queuing before the round failed")
        send_due(store, smtp_config, clock())

    return run_every(every, work, name="kiosk-mail-sender", log=log)
