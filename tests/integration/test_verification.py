"""Verification at the desk: "verify" institutions keep self-registered accounts pending until
a librarian has seen an identity document; pending accounts expire and are erased. The rules
on SQLite and PostgreSQL, the queue through the staff pages."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from kiosk.cli import main
from kiosk.registry import domain
from kiosk.registry.domain import RegistryError, Standing
from kiosk.registry.services import RegistryService, pseudonym
from kiosk.registry.store import AuditEntry, Patron, Programme
from tests.support.factories import patron_data
from tests.support.verification import audit, counts_match_places, patron_id, set_policy, staff

START = datetime(2026, 3, 2, 9, 0)  # a Monday


@pytest.fixture
def clocked(make_service):  # type: ignore[no-untyped-def]
    """A registry with ANT on "verify" (14 days) and a clock the test moves."""
    now = [START]
    service = make_service(clock=lambda: now[0])
    set_policy(service, "ANT", "verify", 14)
    return service, now


def test_verify_policy_makes_a_self_registered_account_pending(clocked) -> None:  # type: ignore[no-untyped-def]
    service, _now = clocked
    data = patron_data(library_code="ANT-PERMEKE")
    made = service.register_account(data)
    assert made.pending_until == date(2026, 3, 16)  # 14 days later
    assert made.possible_duplicate is False
    token, view = service.login(made.card_number, data.password)
    assert view.pending_until == date(2026, 3, 16)
    assert service.status(token, "en").pending_until == date(2026, 3, 16)
    assert service.my_data(token, "en").status.pending_until == date(2026, 3, 16)

    librarian, other, coordinator = (staff(service, u) for u in
                                     ("an.peeters", "els.maes", "coordinator"))
    queue = service.verification.pending(librarian)
    assert [(a.first_name, a.library_code, a.since, a.expires_at) for a in queue] == [
        ("Mia", "ANT-PERMEKE", START, START + timedelta(days=14))]
    assert service.verification.pending(other) == []
    assert [a.patron_id for a in service.verification.pending(coordinator)] == [
        queue[0].patron_id]


def test_open_policy_makes_the_account_active_at_once(clocked) -> None:  # type: ignore[no-untyped-def]
    service, _now = clocked
    set_policy(service, "KOR", "open")
    data = patron_data(library_code="KOR-CENTRUM")
    made = service.register_account(data)
    assert made.pending_until is None
    token, view = service.login(made.card_number, data.password)
    assert view.pending_until is None and service.status(token, "en").pending_until is None
    assert service.verification.pending(staff(service, "coordinator")) == []


def test_identity_checked_at_the_desk_makes_the_account_active(clocked) -> None:  # type: ignore[no-untyped-def]
    service, _now = clocked
    librarian = staff(service, "an.peeters")
    made = service.register_account(patron_data(), assisted_by=librarian,
                                    identity_checked=True)
    assert made.pending_until is None
    # Assisted but no document seen: still pending.
    unchecked = service.register_account(patron_data(), assisted_by=librarian)
    assert unchecked.pending_until is not None
    with service.store.read() as s:
        row = s.scalar(select(Patron).where(Patron.card_number == made.card_number))
        assert row is not None
        assert (row.pending_since, row.identity_checked_at, row.identity_checked_by) == (
            None, START, "staff:an.peeters")
    entries = audit(service, "patron_registered")
    assert entries[0].actor == "staff:an.peeters"
    assert entries[0].detail["assisted_by"] == librarian.assisted_label
    assert entries[0].detail["identity_checked"] is True
    assert [a.patron_id for a in service.verification.pending(librarian)] == [
        patron_id(service, unchecked.card_number)]


def test_a_librarian_checks_the_document_and_a_free_seat_goes_to_the_patron(clocked) -> None:  # type: ignore[no-untyped-def]
    service, now = clocked
    service.set_cap(1, actor="test")
    set_policy(service, "KOR", "open")
    holder = patron_data(library_code="KOR-CENTRUM")
    service.register(holder)
    holder_token, _ = service.login(holder.email, holder.password)
    service.claim(holder_token, "excel-basics")
    data = patron_data()
    made = service.register_account(data)
    token, _ = service.login(made.card_number, data.password)
    assert service.claim(token, "instagram").standing is Standing.WAITING
    # A seat comes free while the pending patron waits (a cap raised behind the line's back).
    with service.store.write() as s:
        s.execute(update(Programme).where(Programme.id == 1).values(cap=2))

    pid = patron_id(service, made.card_number)
    with pytest.raises(RegistryError) as elsewhere:  # not their institution
        service.verification.confirm_identity(pid, staff(service, "els.maes"))
    assert elsewhere.value.code == "not_found"
    librarian = staff(service, "an.peeters")
    now[0] += timedelta(days=3)
    assert service.verification.confirm_identity(pid, librarian, where="ANT-PERMEKE desk")
    token, _ = service.login(made.card_number, data.password)  # the old visit has ended
    status = service.status(token, "en")
    assert status.standing is Standing.SEATED and status.pending_until is None
    assert counts_match_places(service) == (2, 0)
    assert service.verification.pending(librarian) == []
    (entry,) = audit(service, "identity_checked")
    assert (entry.actor, entry.subject, entry.institution) == ("staff:an.peeters",
                                                               pseudonym(pid), "ANT")
    assert entry.detail == {"assisted_by": librarian.assisted_label}
    with pytest.raises(RegistryError) as again:
        service.verification.confirm_identity(pid, librarian)
    assert again.value.code == "not_pending"


def test_pending_accounts_expire_after_their_days_and_are_erased(clocked) -> None:  # type: ignore[no-untyped-def]
    service, now = clocked
    service.set_cap(1, actor="test")
    set_policy(service, "KOR", "verify", 3)
    holder = patron_data(library_code="KOR-CENTRUM")
    made_holder = service.register_account(holder, assisted_by=staff(service, "els.maes"),
                                           identity_checked=True)
    holder_token, _ = service.login(made_holder.card_number, holder.password)
    service.claim(holder_token, "excel-basics")
    waiting = patron_data()  # ANT, 14 days
    made = service.register_account(waiting)
    token, _ = service.login(made.card_number, waiting.password)
    service.claim(token, "instagram")
    now[0] += timedelta(days=1)
    short = service.register_account(patron_data(library_code="KOR-CENTRUM"))  # 3 days
    assert counts_match_places(service) == (1, 1)

    now[0] = START + timedelta(days=4)  # KOR's pending account: past its 3 days
    assert service.verification.erase_expired_pending() == 1
    now[0] = START + timedelta(days=14) - timedelta(seconds=1)
    assert service.verification.erase_expired_pending() == 0
    now[0] = START + timedelta(days=14)
    assert service.verification.erase_expired_pending() == 1
    with service.store.read() as s:
        left = set(s.scalars(select(Patron.card_number)).all())
    assert left == {made_holder.card_number}
    assert short.card_number not in left
    assert counts_match_places(service) == (1, 0)
    entries = audit(service, "pending_expired")
    assert [(e.actor, e.institution, e.detail["days"]) for e in entries] == [
        ("retention", "KOR", 3), ("retention", "ANT", 14)]
    assert {e.actor for e in audit(service, "patron_erased")} == {"retention"}


def test_a_librarian_erases_a_pending_account_with_a_reason(clocked) -> None:  # type: ignore[no-untyped-def]
    service, _now = clocked
    made = service.register_account(patron_data())
    pid = patron_id(service, made.card_number)
    librarian = staff(service, "an.peeters")
    with pytest.raises(RegistryError) as blank:
        service.verification.erase_pending(pid, "  ", librarian)
    assert blank.value.fields == {"reason": "required"}
    with pytest.raises(RegistryError) as elsewhere:
        service.verification.erase_pending(pid, "no document", staff(service, "els.maes"))
    assert elsewhere.value.code == "not_found"
    service.verification.erase_pending(pid, "no document", librarian, where="desk")
    with service.store.read() as s:
        assert s.get(Patron, pid) is None
    (entry,) = audit(service, "pending_erased")
    assert entry.detail == {"reason": "no document",
                            "assisted_by": librarian.assisted_label}
    assert "Mia" not in str(entry) and made.card_number not in str(entry)
    with service.store.read() as s:  # the erasure itself: who, from where, for whom
        erased = s.scalar(select(AuditEntry).where(AuditEntry.action == "patron_erased"))
        assert erased is not None and erased.terminal == "desk"
        assert erased.detail["assisted_by"] == librarian.assisted_label


def test_the_last_day_is_the_day_before_the_deadline_moment() -> None:
    since = datetime(2026, 3, 2, 0, 0)
    assert domain.pending_until(since, 14) == date(2026, 3, 15)
    assert domain.pending_until(since + timedelta(hours=9), 14) == date(2026, 3, 16)
    assert not domain.pending_expired(since, 14, datetime(2026, 3, 15, 23, 59))
    assert domain.pending_expired(since, 14, datetime(2026, 3, 16, 0, 0))
    assert domain.starts_pending("verify", False) and not domain.starts_pending("verify", True)
    assert not domain.starts_pending("open", False)


def institutions_form(service: RegistryService, **changes: str) -> dict:  # type: ignore[type-arg]
    """The settings page's institutions form as it stands, with `changes`."""
    form: dict = {}
    for inst in service.policies.settings().institutions:
        form[f"opening_days_{inst.code}"] = [str(d) for d in inst.opening_days]
        form[f"verification_{inst.code}"] = inst.verification
        form[f"pending_days_{inst.code}"] = str(inst.pending_days)
    return {**form, **changes}


def test_a_pending_account_keeps_the_days_it_was_told(clocked) -> None:  # type: ignore[no-untyped-def]
    """Lowering an institution's days counts for accounts made from then on: one already
    waiting keeps the last day it was told (and so does it when the policy turns "open")."""
    service, now = clocked
    made = service.register_account(patron_data())
    assert made.pending_until == date(2026, 3, 16)
    every_day = [1, 2, 3, 4, 5, 6]
    assert service.policies.set_institution_policies({"ANT": (every_day, "verify", 3)},
                                                      actor="test") == 1
    later = service.register_account(patron_data())
    assert later.pending_until == date(2026, 3, 5)  # 3 days, from the new setting
    ant = staff(service, "an.peeters")
    shown = {p.patron_id: p.expires_at.date() for p in service.verification.pending(ant)}
    first, second = (patron_id(service, m.card_number) for m in (made, later))
    assert shown == {first: date(2026, 3, 16), second: date(2026, 3, 5)}
    now[0] = START + timedelta(days=5)
    assert service.verification.erase_expired_pending() == 1  # only the newer one
    # "open" now: the account keeps waiting, and keeps the day it was told.
    service.policies.set_institution_policies({"ANT": (every_day, "open", 3)}, actor="test")
    now[0] = START + timedelta(days=13)
    assert service.verification.erase_expired_pending() == 0
    assert [p.patron_id for p in service.verification.pending(ant)] == [first]
    now[0] = START + timedelta(days=15)
    assert service.verification.erase_expired_pending() == 1


def test_the_settings_page_lowers_the_days_for_new_accounts(app, staff_client) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = app.extensions["registry_service"]
    set_policy(service, "ANT", "verify", 14)
    waiting = service.register_account(patron_data())
    coordinator = staff_client("coordinator")
    page = coordinator.get("/en/staff/settings").get_data(as_text=True)
    assert "keep waiting when you switch to “Open”" in page
    assert "only counts for accounts made from now on" in page
    response = coordinator.post("/en/staff/settings/institutions",
                                data=institutions_form(service, pending_days_ANT="7"))
    assert response.status_code == 302
    assert next(i for i in service.policies.settings().institutions
                if i.code == "ANT").pending_days == 7
    token, patron = service.login(waiting.card_number, patron_data().password)
    assert patron.pending_until == waiting.pending_until  # still the day it was told


# --- Pages and the purge command --------------------------------------------------------


def test_purge_command_erases_expired_pending_accounts(app) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = app.extensions["registry_service"]
    set_policy(service, "ANT", "verify", 0)  # due at once
    service.register(patron_data())
    url = ["--database-url", app.config["DATABASE_URL"]]
    purged = CliRunner().invoke(main, ["registry", "purge", *url])
    assert purged.exit_code == 0, purged.output
    assert "Erased 1 pending account(s)" in purged.output


def test_the_pending_queue_page(app, staff_client) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = app.extensions["registry_service"]
    set_policy(service, "ANT", "verify")
    made = service.register_account(patron_data(first_name="Zoë", last_name="Verhoeven"))
    pid = patron_id(service, made.card_number)

    desk = staff_client("an.peeters")
    page = desk.get("/en/staff/pending")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Zoë Verhoeven" in text
    assert "Identity document checked" in text and 'aria-current="page"' in text
    assert "Zoë" not in staff_client("els.maes").get("/en/staff/pending").get_data(as_text=True)
    for lang in ("nl", "fr"):
        assert desk.get(f"/{lang}/staff/pending").status_code == 200

    # Another institution's librarian: as if it did not exist.
    other = staff_client("els.maes")
    assert other.post(f"/en/staff/pending/{pid}/confirm").status_code == 404
    assert other.get(f"/en/staff/pending/{pid}/erase").status_code == 404
    assert staff_client("it.support").get("/en/staff/pending").status_code == 403

    done = desk.post(f"/en/staff/pending/{pid}/confirm", follow_redirects=True)
    assert done.status_code == 200
    assert "the account is active" in done.get_data(as_text=True)
    stale = desk.get(f"/en/staff/pending/{pid}/erase", follow_redirects=True)
    assert "no longer waits for an identity check" in stale.get_data(as_text=True)
    assert other.get(f"/en/staff/pending/{pid}/erase").status_code == 404
    assert service.verification.pending(staff(service, "coordinator")) == []


def test_erasing_from_the_queue_needs_a_reason(app, staff_client) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = app.extensions["registry_service"]
    set_policy(service, "ANT", "verify")
    pid = patron_id(service, service.register_account(patron_data()).card_number)
    desk = staff_client("coordinator")
    form = desk.get(f"/en/staff/pending/{pid}/erase")
    assert form.status_code == 200 and "Reason" in form.get_data(as_text=True)
    missing = desk.post(f"/en/staff/pending/{pid}/erase", data={"reason": ""})
    assert missing.status_code == 422
    assert "Type the reason." in missing.get_data(as_text=True)
    erased = desk.post(f"/en/staff/pending/{pid}/erase", data={"reason": "no document"})
    assert erased.status_code == 302
    assert desk.get(f"/en/staff/pending/{pid}/erase").status_code == 404


def test_the_created_page_tells_about_the_identity_check(app, client) -> None:  # type: ignore[no-untyped-def]
    from tests.support.factories import form_data

    service: RegistryService = app.extensions["registry_service"]
    set_policy(service, "MUN", "verify", 10)
    response = client.post("/en/account/new", data=form_data(), follow_redirects=True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "show an identity document at the desk of your library" in text
    assert "within 10 days" in text
    assert "You may already choose a course" in text

    set_policy(service, "MUN", "open")
    fresh = app.test_client()
    text = fresh.post("/en/account/new", data=form_data(),
                      follow_redirects=True).get_data(as_text=True)
    assert "identity document" not in text
