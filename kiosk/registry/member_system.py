"""Asking an institution's member system (its library management system: Koha, Wise, Alma…)
whether a library card and its PIN are good, over SIP2.

One check is one TCP connection: Login (93, when the institution gave us a SIP account), then
Patron Information (63) with the card and the PIN. The whole check has ONE deadline
(`MemberSystemConfig.timeout`), connect and every read included, so a slow or hung member
system cannot hold a kiosk longer than that. The wire format is pysip2's codec; frames carry
a sequence number and checksum (AY/AZ), and a checksum error is handled as the protocol says:
our frame refused (96) is sent again, a garbled answer is asked for again (97), twice at most.

Anything else that goes wrong (refused, reset, timed out, garbage, our SIP login refused, a
system that does not say whether the PIN was right) is `MemberSystemDown`: the patron gets
the calm "try again" page and no account is counted a failed log-in for it. Logs name the
institution and the reason, never a card number, a PIN or a name.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path

from pysip2 import (
    LoginRequest,
    LoginResponse,
    PatronInformationRequest,
    PatronInformationResponse,
    RequestACSResend,
    RequestSCResend,
    SIP2ChecksumError,
    SIP2Error,
    SIPMessage,
    decode_message,
    encode_message,
)

log = logging.getLogger("kiosk.members")

DEFAULT_PORT = 6001
DEFAULT_TIMEOUT = 5.0  # seconds, the whole check
MAX_FRAME = 8192
RESENDS = 2  # a checksum error, either way, is tried again this many times
# Patron status flags (the 14 Y/blank positions of a 24 or 64 answer) that mean the card
# needs a librarian: 0 "charge privileges denied" (Koha and others set it for an expired or
# blocked card), 4 "card reported lost".
ATTENTION_FLAGS = (0, 4)
# The expiry date some systems add (Evergreen, Koha: "PA", YYYYMMDD); pysip2 keeps to the
# standard fields, so it is read from the frame itself.
_EXPIRY = re.compile(rb"\|PA(\d{8})")


class Verdict(StrEnum):
    MEMBER = "member"  # a card of this library, the right PIN, in good standing
    WRONG_PIN = "wrong_pin"
    UNKNOWN = "unknown"  # not a card this member system knows
    NEEDS_ATTENTION = "needs_attention"  # blocked, lost or expired: the desk can help


@dataclass(frozen=True)
class MemberCheck:
    verdict: Verdict
    name: str = ""  # as the member system writes it ("First Last" or "Last, First")
    email: str = ""


class MemberSystemDown(Exception):
    """The member system could not give an answer (no personal data in the message)."""


@dataclass(frozen=True)
class MemberSystemConfig:
    """How to reach one institution's member system. The SIP password lives in a file
    (`password_file`, readable by the registry's service user only) and is read at each
    check: it is never stored in the database, shown on a page or written to a log."""

    host: str
    port: int = DEFAULT_PORT
    tls: bool = False
    login_user: str = ""
    password_file: str = ""
    location_code: str = ""
    sip_institution: str = ""  # the AO field the member system expects (often its own code)
    timeout: float = DEFAULT_TIMEOUT

    def password(self) -> str:
        if not self.password_file:
            return ""
        try:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MemberSystemDown(f"cannot read the SIP password file ({exc.strerror})") from exc

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}{' (TLS)' if self.tls else ''}"


def split_name(name: str) -> tuple[str, str]:
    """(first, last) from "Last, First" or "First Last" ("Cher" is a first name)."""
    name = " ".join(name.split())
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip(), last.strip()
    first, _, last = name.rpartition(" ")
    return (first, last) if first else (last, "")


def judge(answer: PatronInformationResponse, frame: bytes, today: date) -> MemberCheck:
    """What a Patron Information answer says about the card and PIN that were asked."""
    if answer.valid_patron == "N" or (answer.valid_patron is None
                                      and not answer.personal_name.strip()):
        return MemberCheck(Verdict.UNKNOWN)
    if answer.valid_patron_password is None:
        # It did not check the PIN: letting the patron in would trust a card number alone.
        raise MemberSystemDown("the answer does not say whether the PIN was right (no CQ)")
    if answer.valid_patron_password != "Y":
        return MemberCheck(Verdict.WRONG_PIN)
    expiry = _EXPIRY.search(frame)
    expired = expiry is not None and _date(expiry.group(1).decode()) < today
    flags = answer.patron_status
    if expired or any(flags[i] == "Y" for i in ATTENTION_FLAGS):
        return MemberCheck(Verdict.NEEDS_ATTENTION)
    return MemberCheck(Verdict.MEMBER, name=answer.personal_name.strip(),
                       email=(answer.email_address or "").strip())


def _date(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return date.max  # a date it cannot read does not make a card expired


def sip_now(now: datetime) -> str:
    """A SIP2 transaction date: YYYYMMDD, four blanks (local time), HHMMSS."""
    return now.strftime("%Y%m%d") + "    " + now.strftime("%H%M%S")


class _Line:
    """One SIP2 connection under one deadline (a monotonic time), with the resend rules."""

    def __init__(self, config: MemberSystemConfig, deadline: float):
        self.config = config
        self.deadline = deadline
        self.sequence = 0
        self.sock = self._connect()
        self.buffer = b""

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise MemberSystemDown("no answer before the deadline")
        return left

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.config.host, self.config.port),
                                            timeout=self._left())
            if self.config.tls:
                context = ssl.create_default_context()
                sock.settimeout(self._left())
                return context.wrap_socket(sock, server_hostname=self.config.host)
            return sock
        except TimeoutError as exc:
            raise MemberSystemDown("no answer before the deadline") from exc
        except (OSError, ssl.SSLError) as exc:
            raise MemberSystemDown(f"cannot connect ({type(exc).__name__})") from exc

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _send(self, frame: bytes) -> None:
        try:
            self.sock.settimeout(self._left())
            self.sock.sendall(frame)
        except TimeoutError as exc:
            raise MemberSystemDown("no answer before the deadline") from exc
        except OSError as exc:
            raise MemberSystemDown(f"connection lost ({type(exc).__name__})") from exc

    def _receive(self) -> bytes:
        while b"\r" not in self.buffer:
            if len(self.buffer) > MAX_FRAME:
                raise MemberSystemDown("an answer without an end")
            try:
                self.sock.settimeout(self._left())
                data = self.sock.recv(4096)
            except TimeoutError as exc:
                raise MemberSystemDown("no answer before the deadline") from exc
            except OSError as exc:
                raise MemberSystemDown(f"connection lost ({type(exc).__name__})") from exc
            if not data:
                raise MemberSystemDown("the member system closed the connection")
            self.buffer += data
        # Some systems end a frame with CR LF: the LF is the next frame's noise.
        frame, _, self.buffer = self.buffer.partition(b"\r")
        self.buffer = self.buffer.lstrip(b"\n")
        return frame + b"\r"

    def ask(self, request: SIPMessage, expected: type) -> tuple[SIPMessage, bytes]:
        """Send, and answer (message, frame) of the expected type."""
        sequence = self.sequence
        self.sequence = (self.sequence + 1) % 10
        frame = encode_message(request, sequence_number=sequence, checksum=True)
        self._send(frame)
        resends = 0
        while True:
            raw = self._receive()
            try:
                decoded = decode_message(raw)
            except SIP2ChecksumError:
                if resends >= RESENDS:
                    raise MemberSystemDown("answers keep failing their checksum") from None
                resends += 1
                self._send(encode_message(RequestACSResend(), checksum=True))
                continue
            except SIP2Error as exc:
                raise MemberSystemDown(f"an answer it cannot read ({type(exc).__name__})") \
                    from exc
            if isinstance(decoded.message, RequestSCResend):  # our frame arrived garbled
                if resends >= RESENDS:
                    raise MemberSystemDown("our requests keep failing their checksum")
                resends += 1
                self._send(frame)
                continue
            if not isinstance(decoded.message, expected):
                raise MemberSystemDown(
                    f"answered {type(decoded.message).__name__} to {type(request).__name__}")
            if decoded.sequence_number not in (None, sequence):
                raise MemberSystemDown("an answer to another request (sequence number)")
            return decoded.message, raw


def check_card(config: MemberSystemConfig, barcode: str, pin: str, now: datetime) -> MemberCheck:
    """Is this a card of this member system, with this PIN, in good standing?

    `now`: local time for the transaction date and the expiry. May raise MemberSystemDown."""
    secret = config.password()
    line = _Line(config, time.monotonic() + config.timeout)
    try:
        if config.login_user:
            answer, _ = line.ask(LoginRequest(
                uid_algorithm="0", pwd_algorithm="0", login_user_id=config.login_user,
                login_password=secret, location_code=config.location_code or None,
            ), LoginResponse)
            assert isinstance(answer, LoginResponse)
            if answer.ok != "1":
                raise MemberSystemDown("our SIP log-in was refused")
        info, raw = line.ask(PatronInformationRequest(
            language="000", transaction_date=sip_now(now), summary=" " * 10,
            institution_id=config.sip_institution, patron_identifier=barcode,
            terminal_password=secret or None, patron_password=pin,
        ), PatronInformationResponse)
        assert isinstance(info, PatronInformationResponse)
        return judge(info, raw, now.date())
    finally:
        line.close()


def can_log_in(config: MemberSystemConfig, now: datetime) -> str:
    """For `kiosk doctor`: log in (or, without a SIP account, ask about a card that does not
    exist) and answer what happened; raises MemberSystemDown when it does not answer."""
    check = check_card(config, "0000000000-doctor", "", now)
    return ("answers (SIP log-in accepted)" if config.login_user else "answers") + \
        f", {check.verdict.value} for a test card"
