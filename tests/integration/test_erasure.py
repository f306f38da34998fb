"""Erasure (GDPR art. 17): nothing of the patron stays, their seat goes to the next in line in
the same transaction, and the audit log keeps its meaning without personal data."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from kiosk.cli import main
from kiosk.registry.domain import RegistryError, Standing
from kiosk.registry.services import RegistryService, pseudonym
from kiosk.registry.store import AuditEntry, Base, Patron
from tests.support.factories import patron_data


def everything_stored(service: RegistryService) -> str:
    """Every row of every table as text: what a database-wide search would look through."""
    with service.store.read() as s:
        return "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in s.execute(select(table)).all()
        ).lower()


def register(service: RegistryService, **overrides: object) -> tuple[str, str, str]:
    """(card number, session token, password) of a new patron."""
    data = patron_data(**overrides)
    card = service.register(data)
    token, _ = service.login(card, data.password)
    return card, token, data.password


def test_erasing_a_seated_patron_leaves_no_trace_and_seats_the_next_in_line(
        make_service) -> None:
    service = make_service(cap=1)
    card, token, password = register(service, first_name="Zoë", last_name="Vandermeulen",
                                     email="zoe.vandermeulen@example.be", phone="0470123456")
    service.claim(token, "excel-basics")
    _, waiting, _ = register(service)
    assert service.claim(waiting, "excel-basics").position == 1
    with service.store.read() as s:
        patron_id = s.scalar(select(Patron.id).where(Patron.card_number == card))

    service.erase_account(token, password)

    after = service.status(waiting, "en")
    assert after.standing is Standing.SEATED  # promoted by the erasure itself
    status = service.programme_status()
    assert (status.seats_taken, status.waiting) == (1, 0)
    stored = everything_stored(service)
    for trace in ("zoe.vandermeulen@example.be", "vandermeulen", "zoë", card, "0470123456"):
        assert trace.lower() not in stored, f"{trace!r} is still stored"
    with pytest.raises(RegistryError) as gone:
        service.whoami(token)
    assert gone.value.code == "session_invalid"
    with service.store.read() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "patron_erased")).one()
        assert entry.subject == pseudonym(patron_id)
        assert entry.detail == {"had": "seated"}
        assert entry.actor == pseudonym(patron_id)


def test_erasure_asks_for_the_password_again(make_service) -> None:
    service = make_service()
    card, token, _ = register(service)
    with pytest.raises(RegistryError) as refused:
        service.erase_account(token, "not my password")
    assert (refused.value.code, dict(refused.value.fields)) == (
        "invalid", {"password": "password_wrong"})
    assert service.whoami(token).card_number == card  # nothing was erased


def test_erasure_of_a_waiting_patron_closes_the_gap_in_the_line(make_service) -> None:
    service = make_service(cap=0)
    tokens = [register(service)[1] for _ in range(3)]
    for token in tokens:
        service.claim(token, "excel-basics")
    card_of_second = service.whoami(tokens[1]).card_number
    service.erase_by_card(card_of_second, actor="librarian: request at the desk")
    assert service.status(tokens[2], "en").position == 2
    assert service.programme_status().waiting == 2


def test_erase_patron_command(app) -> None:
    service: RegistryService = app.extensions["registry_service"]
    card, _, _ = register(service, email="weg@example.be")
    args = ["registry", "erase-patron", card, "--actor", "dpo", "--yes",
            "--database-url", app.config["DATABASE_URL"]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "weg@example.be" not in everything_stored(service)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "no patron" in again.output
