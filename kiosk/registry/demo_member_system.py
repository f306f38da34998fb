"""A small SIP2 member system with made-up cards, for `kiosk demo` and the tests: pysip2's
server, on loopback, in a background thread. It answers Login (93), Patron Status (23) and
Patron Information (63) the way a library management system does; nothing else.

Not for production: the cards and their PINs are printed on the demo's start-up banner.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import SocketAttribute
from pysip2 import (
    LOGIN,
    PATRON_INFORMATION,
    PATRON_STATUS,
    LoginRequest,
    LoginResponse,
    PatronInformationRequest,
    PatronInformationResponse,
    PatronStatusRequest,
    PatronStatusResponse,
    SIP2Server,
)

from .member_system import sip_now


class _Server(SIP2Server):
    """pysip2's server, with a listener that is closed when serving stops (pysip2 0.1's
    `start` leaves its listening socket open)."""

    @asynccontextmanager
    async def serving(self, host: str, port: int) -> AsyncIterator[int]:
        listener = await self.listen(host, port)
        async with listener, anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, self._handle_connection)
            try:
                yield listener.extra(SocketAttribute.local_port)
            finally:
                tasks.cancel_scope.cancel()


@dataclass(frozen=True)
class Card:
    barcode: str
    pin: str
    name: str
    email: str = ""
    blocked: bool = False
    expired: bool = False
    delay: float = 0.0  # seconds before it answers about this card (a slow system)


# The demo's cards (README, "The demo"): one of each kind a librarian meets.
DEMO_CARDS = (
    Card("21000123456", "1234", "Peeters, An", "an.peeters@example.be"),
    Card("21000654321", "4321", "Mohamed El Amrani"),
    Card("21000999999", "9999", "Janssens, Luc", blocked=True),
    Card("21000888888", "8888", "Dubois, Marie", expired=True),
)
DEMO_LOGIN = ("kiosk", "demo-sip-password")


class DemoMemberSystem:
    """`with DemoMemberSystem(cards) as system:` serves on 127.0.0.1:`system.port`."""

    def __init__(self, cards: Iterable[Card], *, login: tuple[str, str] | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.cards = {card.barcode: card for card in cards}
        self.login = login
        self.host = host
        self.port = port
        self.asked: list[str] = []  # the commands it answered, in order ("93", "63", …)
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _server(self) -> _Server:
        server = _Server(institution_id="DEMO", library_name="Demo member system",
                            login_required=self.login is not None, idle_timeout=30)

        @server.route(LOGIN)
        def log_in(req: LoginRequest, ctx: Any) -> LoginResponse:
            self.asked.append("93")
            ok = self.login == (req.login_user_id, req.login_password)
            return LoginResponse(ok="1" if ok else "0")

        @server.route(PATRON_STATUS)
        async def status(req: PatronStatusRequest, ctx: Any) -> PatronStatusResponse:
            self.asked.append("23")
            card, valid, pin_ok = await self._look_up(req.patron_identifier,
                                                     req.patron_password)
            return PatronStatusResponse(
                patron_status=self._flags(card), language="000",
                transaction_date=sip_now(datetime.now()), institution_id=req.institution_id,
                patron_identifier=req.patron_identifier,
                personal_name=card.name if card else "", valid_patron=valid,
                valid_patron_password=pin_ok)

        @server.route(PATRON_INFORMATION)
        async def information(req: PatronInformationRequest,
                              ctx: Any) -> PatronInformationResponse:
            self.asked.append("63")
            card, valid, pin_ok = await self._look_up(req.patron_identifier,
                                                     req.patron_password or "")
            return PatronInformationResponse(
                patron_status=self._flags(card), language="000",
                transaction_date=sip_now(datetime.now()), hold_items_count="0000",
                overdue_items_count="0000", charged_items_count="0000",
                fine_items_count="0000", recall_items_count="0000",
                unavailable_holds_count="0000", institution_id=req.institution_id,
                patron_identifier=req.patron_identifier,
                personal_name=card.name if card else "", valid_patron=valid,
                valid_patron_password=pin_ok,
                email_address=(card.email or None) if card and pin_ok == "Y" else None,
                screen_message=("Card expired",) if card and card.expired else ())

        return server

    async def _look_up(self, barcode: str, pin: str) -> tuple[Card | None, str, str]:
        card = self.cards.get(barcode)
        if card is not None and card.delay:
            await anyio.sleep(card.delay)
        if card is None:
            return None, "N", "N"
        return card, "Y", "Y" if pin == card.pin else "N"

    @staticmethod
    def _flags(card: Card | None) -> str:
        """As Koha: an expired or blocked card has its charge privileges denied."""
        denied = card is not None and (card.blocked or card.expired)
        return ("Y" if denied else " ") + " " * 13

    async def _main(self) -> None:
        async with self._server().serving(self.host, self.port) as bound:
            self.port = bound
            self._ready.set()
            while not self._stop.is_set():
                await anyio.sleep(0.05)

    def _run(self) -> None:
        try:
            anyio.run(self._main)
        except BaseException as exc:  # told to the starting thread, which raises it
            self._error = exc
            self._ready.set()

    def start(self) -> DemoMemberSystem:
        self._thread = threading.Thread(target=self._run, name="demo-member-system",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"the demo member system did not start: {self._error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> DemoMemberSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

