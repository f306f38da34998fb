"""What a claim over the API sends PostgreSQL, read from libpq's trace (issue 11): three round
trips, e-mail on or off (the BEGIN, the key's mark and the one read of the session, the course
and what the e-mail needs; `kiosk_claim`; the COMMIT), and after `kiosk_claim` takes the
programme lock only one — the key's answer, the patron's e-mail and the academy's change go
with the COMMIT — so nothing is read and little Python runs while the lock is held, whatever
is switched on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.registry import academy, notices
from tests.support.factories import add_patron, build_app
from tests.support.round_trips import traced

pytestmark = pytest.mark.postgres


def _round_trips(messages: list[tuple[str, str]]) -> list[str]:
    """Each round trip's messages, joined, in order."""
    trips, current = [], []
    for kind, body in messages:
        current.append(f"{kind} {body}")
        if kind in ("Query", "Sync"):
            trips.append(" ".join(current))
            current = []
    return trips


@pytest.mark.parametrize(("mail", "link"), [(False, False), (True, False), (True, True)],
                         ids=["mail off", "mail on", "mail and academy link on"])
def test_a_claim_holds_the_programme_lock_for_one_round_trip_after_kiosk_claim(
        tmp_path: Path, create_database, mail: bool, link: bool) -> None:  # type: ignore[no-untyped-def]
    app = build_app(tmp_path, registry=True, DATABASE_URL=create_database(),
                    DATABASE_POOL_SIZE=1, DATABASE_MAX_OVERFLOW=0)
    service = app.extensions["registry_service"]
    notices.enable(service.store, mail)
    academy.enable(service.store, link)
    terminal, _ = service.add_terminal("ANT-PERMEKE", "kiosk", actor="test")
    client = app.test_client()

    def claim(session: str) -> int:
        return client.post("/api/v1/me/claims", json={"course": "excel-basics"},
                           headers={"Authorization": f"Bearer {terminal}",
                                    "X-Patron-Session": session,
                                    "Idempotency-Key": session[-20:]}).status_code

    assert claim(add_patron(service)[1]) == 200  # the terminal's token is checked and kept
    _, session = add_patron(service)
    # A new connection: the statements are prepared on it in this claim, their text traced.
    service.store.engine.dispose()
    raw = service.store.engine.raw_connection()  # the pool's one connection
    connection = raw.dbapi_connection
    raw.close()
    try:
        with traced(connection) as sent:
            assert claim(session) == 200
        trips = _round_trips(sent.messages)
        assert len(trips) == 3
        assert "BEGIN ISOLATION LEVEL READ COMMITTED" in trips[0]
        assert "idempotency_keys" in trips[0] and "patron_sessions" in trips[0]
        locked = [i for i, trip in enumerate(trips) if "kiosk_claim" in trip]
        assert locked == [len(trips) - 2]
        last = trips[-1]
        assert "UPDATE idempotency_keys" in last and "COMMIT" in last
        assert ("INSERT INTO notices" in last) is mail
        assert ("INSERT INTO academy_changes" in last) is link
        with service.store.read() as s:
            assert s.query(notices.Notice).filter_by(kind="enrolled").count() == 2 * mail
    finally:
        service.store.engine.dispose()
