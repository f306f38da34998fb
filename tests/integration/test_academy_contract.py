"""The academy's state of a patron travels to the terminal the same way in-process and over
HTTP (the contract suite's `registry` fixture: {local, http} × {SQLite, PostgreSQL})."""

from __future__ import annotations

from kiosk.registry.academy_sender import send_due
from tests.support.contract import Registry
from tests.support.scim_server import scim_config, start_platform


def test_the_academy_state_is_in_the_patrons_status_through_both_clients(
        registry: Registry) -> None:
    client, service = registry.client, registry.service
    _card, token = registry.patron()
    client.claim(token, "excel-basics")
    assert client.status(token, "en").academy == ""  # no academy link: nothing said
    service.academy.enabled = True
    _other, seated = registry.patron()
    client.claim(seated, "word-basics")
    status = client.status(seated, "en")
    assert status.academy == "pending" and status == service.status(seated, "en")
    platform = start_platform()
    try:
        send_due(service.store, scim_config(platform), service.clock())
    finally:
        platform.stop()
    status = client.status(seated, "nl")
    assert status.academy == "ready" and status == service.status(seated, "nl")
    assert client.withdraw(seated, "word-basics").academy == ""  # no seat any more
