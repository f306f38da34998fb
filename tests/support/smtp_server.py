"""A real SMTP server on loopback (aiosmtpd) that answers each recipient as a test tells it:
accepted, refused for good (5xx), refused for now (4xx), or "accepted" and then forgotten so
that the DATA command itself is refused; with or without SMTPUTF8."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from kiosk.registry.mailer import SmtpConfig

MAIL_FROM = "Online leren <noreply@bib.example.be>"


@dataclass(frozen=True)
class Delivery:
    """One message the server accepted."""

    rcpt_tos: list[str]
    mail_options: list[str]
    message: EmailMessage
    peer: object  # the client's (host, port): one per connection


class Mailbox:
    """An aiosmtpd handler. `answers` maps a recipient to the reply to its RCPT: a 4xx or 5xx
    refuses it; a 2xx "accepts" it without keeping it (the DATA command is then refused
    with 503, as a server that lost the recipient would). Every RCPT asked is kept in
    `asked`, every accepted message in `delivered`."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.asked: list[str] = []
        self.delivered: list[Delivery] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]  # noqa: N802
        with self.lock:
            self.asked.append(address)
            answer = self.answers.get(address)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.delivered.append(Delivery(list(envelope.rcpt_tos),
                                           list(envelope.mail_options), message,
                                           session.peer))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Delivery]:
        """The messages delivered to this address (by the envelope)."""
        with self.lock:
            return [d for d in self.delivered if address in d.rcpt_tos]

    def connections(self) -> int:
        """How many connections the accepted messages came over."""
        with self.lock:
            return len({d.peer for d in self.delivered})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(port: int, timeout: float = 5) -> SmtpConfig:
    """The sender's settings for a plain server on loopback at `port`."""
    return SmtpConfig(host="127.0.0.1", port=port, security="none", mail_from=MAIL_FROM,
                      timeout=timeout)


@contextmanager
def smtp_server(*, smtputf8: bool = False) -> Iterator[tuple[Mailbox, SmtpConfig]]:
    """A plain SMTP server on 127.0.0.1 for the duration; `smtputf8` makes it offer
    SMTPUTF8 (aiosmtpd offers 8BITMIME always)."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(),
                            enable_SMTPUTF8=smtputf8)
    controller.start()
    try:
        yield mailbox, config(controller.port)
    finally:
        controller.stop()
