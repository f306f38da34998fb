"""`kiosk registry set-cap`: as the coordinator's page, a reason is required, the preview is
shown first (masked cards, in order) and the change is audited with the reason."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from kiosk.cli import main
from kiosk.registry.store import AuditEntry
from tests.support.factories import add_patron


def test_set_cap_previews_needs_a_reason_and_audits_it(app, service) -> None:  # type: ignore[no-untyped-def]
    url = ["--database-url", app.config["DATABASE_URL"]]
    service.set_cap(1, actor="test")
    cards = []
    for _ in range(3):
        card, token = add_patron(service)
        service.claim(token, "excel-basics")
        cards.append(card)

    no_reason = CliRunner().invoke(main, ["registry", "set-cap", "3", *url])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    blank = CliRunner().invoke(main, ["registry", "set-cap", "3", "--reason", "  ", *url])
    assert blank.exit_code == 1 and "--reason is required" in blank.output
    assert service.programme_status().cap == 1

    looked = CliRunner().invoke(main, ["registry", "set-cap", "3", "--preview", "--reason",
                                       "x", *url])
    assert looked.exit_code == 0, looked.output
    assert "Cap 1 -> 3: 2 of 2 waiting given a seat." in looked.output
    assert cards[1][-3:] in looked.output and cards[1] not in looked.output  # masked
    assert service.programme_status().cap == 1  # a preview changes nothing

    done = CliRunner().invoke(main, ["registry", "set-cap", "3", "--actor", "cli:sofie",
                                     "--reason", "Tweede schijf licenties", *url])
    assert done.exit_code == 0, done.output
    assert "Cap is now 3; 2 patron(s) given a seat" in done.output
    assert service.programme_status().seats_taken == 3
    with service.store.read() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "cap_changed")
                          .order_by(AuditEntry.id.desc())).first()
        assert entry is not None and entry.actor == "cli:sofie"
        assert entry.detail["reason"] == "Tweede schijf licenties"
