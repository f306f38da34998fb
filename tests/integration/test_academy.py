"""Seats provisioned to the academy over SCIM: the outbox written with the seat change, the
sender making a real SCIM platform (scim2-server on loopback) match the registry, the sync,
the export. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kiosk.academy_demo import ScimTestServer
from kiosk.registry import academy
from kiosk.registry.academy_link import AcademyLink
from kiosk.registry.academy_sender import MAX_ATTEMPTS, send_due
from kiosk.registry.academy_sync import export_csv, reconcile
from kiosk.registry.domain import RegistryError, Standing
from kiosk.registry.services import RegistryService
from kiosk.registry.store import AcademyChange, AuditEntry, Patron
from tests.support.factories import add_patron
from tests.support.scim_server import (
    platform_users,
    scim_config,
    start_platform,
    token_file,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def platform() -> Iterator[ScimTestServer]:
    server = start_platform()
    yield server
    server.stop()


@pytest.fixture
def service(make_service) -> RegistryService:  # type: ignore[no-untyped-def]
    registry: RegistryService = make_service(cap=2)
    registry.academy.enabled = True
    return registry


def _id(service: RegistryService, card: str) -> int:
    with service.store.read() as s:
        return int(s.scalar(select(Patron.id).where(Patron.card_number == card)) or 0)


def _send(service: RegistryService, platform: ScimTestServer) -> None:
    result = send_due(service.store, scim_config(platform), service.clock())
    assert result.down == ""


def _holders(service: RegistryService) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """What the platform should hold for every seat holder."""
    with service.store.read() as s:
        accounts = [academy.account_of(s, pid) for pid in academy.seat_holders(s)]
    return {a.external_id: (True, a.courses) for a in accounts if a is not None}


def _active(platform: ScimTestServer) -> dict[str, tuple[bool, tuple[str, ...]]]:
    return {k: v for k, v in platform_users(platform).items() if v[0]}


def _changes(service: RegistryService) -> int:
    with service.store.read() as s:
        return s.scalar(select(func.count()).select_from(AcademyChange)) or 0


def test_a_claim_makes_an_active_user_with_the_course_and_a_release_deactivates_it(
        service: RegistryService, platform: ScimTestServer) -> None:
    card, token = add_patron(service)
    service.claim(token, "excel-basics")
    service.claim(token, "word-basics")  # a second course on the same seat
    assert service.status(token).academy == "pending"
    _send(service, platform)
    ext = academy.external_id(_id(service, card))
    assert platform_users(platform) == {ext: (True, ("excel-basics", "word-basics"))}
    (user,) = platform.users()
    assert user.user_name == card and user.emails and user.emails[0].value
    assert service.status(token).academy == "ready"

    service.withdraw(token, "word-basics")
    _send(service, platform)
    assert platform_users(platform) == {ext: (True, ("excel-basics",))}

    service.give_up_seat(token)
    _send(service, platform)
    assert platform_users(platform) == {ext: (False, ())}
    with service.store.read() as s:
        actions = [e.detail["change"] for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "academy_user_changed")
            .order_by(AuditEntry.id))]
        subjects = set(s.scalars(select(AuditEntry.subject)
                                 .where(AuditEntry.action.like("academy_%"))))
    assert actions == ["created", "updated", "deactivated"]
    assert subjects == {f"patron#{_id(service, card)}"}


def test_erasure_deletes_the_user_on_the_platform(service: RegistryService,
                                                  platform: ScimTestServer) -> None:
    card, token = add_patron(service)
    service.claim(token, "excel-basics")
    _send(service, platform)
    assert len(platform.users()) == 1
    service.erase_by_card(card, actor="desk")
    _send(service, platform)
    assert platform.users() == []


def test_the_next_in_line_is_provisioned_when_a_seat_is_freed(
        service: RegistryService, platform: ScimTestServer) -> None:
    tokens = [add_patron(service) for _ in range(3)]  # cap 2: the third waits
    for _, token in tokens:
        service.claim(token, "excel-basics")
    _send(service, platform)
    assert len(_active(platform)) == 2
    service.give_up_seat(tokens[0][1])
    _send(service, platform)
    third = academy.external_id(_id(service, tokens[2][0]))
    assert third in _active(platform)
    assert _active(platform) == _holders(service)
    fourth = add_patron(service)
    service.claim(fourth[1], "word-basics")  # waits: the programme is full
    _send(service, platform)
    assert academy.external_id(_id(service, fourth[0])) not in platform_users(platform)
    service.set_cap(3, actor="coordinator")  # a raise promotes the fourth
    _send(service, platform)
    assert academy.external_id(_id(service, fourth[0])) in _active(platform)
    assert _active(platform) == _holders(service) and len(_holders(service)) == 3


def test_an_offer_is_provisioned_once_accepted_and_not_when_it_lapses(
        service: RegistryService, platform: ScimTestServer) -> None:
    service.policies.set_seat_policy("offer", 3, False, {}, actor="test")
    patrons = [add_patron(service) for _ in range(4)]  # cap 2: two wait
    for _, token in patrons:
        service.claim(token, "excel-basics")
    service.give_up_seat(patrons[0][1])  # the third is offered the seat
    _send(service, platform)
    third = academy.external_id(_id(service, patrons[2][0]))
    assert third not in platform_users(platform)  # an offer is not a seat yet
    service.accept_offer(patrons[2][1])
    _send(service, platform)
    assert third in _active(platform)
    service.give_up_seat(patrons[1][1])  # the fourth is offered, lets it lapse
    later = service.clock() + timedelta(days=30)
    service.clock = lambda: later
    service.expire_offers()
    _send(service, platform)
    assert _active(platform) == _holders(service) == {third: (True, ("excel-basics",))}


def test_done_changes_are_purged_after_30_days_but_each_patrons_last_is_kept(
        service: RegistryService, platform: ScimTestServer) -> None:
    card, token = add_patron(service)
    service.claim(token, "excel-basics")
    service.claim(token, "word-basics")
    _send(service, platform)
    assert _changes(service) == 2
    later = service.clock() + timedelta(days=31)
    service.clock = lambda: later
    assert service.academy.purge() == 1
    with service.store.read() as s:
        assert academy.state_of(s, _id(service, card), Standing.SEATED) == "ready"


def test_a_rolled_back_change_queues_and_sends_nothing(service: RegistryService,
                                                        platform: ScimTestServer) -> None:
    card, _ = add_patron(service)
    patron_id = _id(service, card)
    with pytest.raises(RuntimeError), service.store.write() as s:
        service.claim_for(s, patron_id, "excel-basics")
        raise RuntimeError("the rest of the use case failed")
    assert _changes(service) == 0
    _send(service, platform)
    assert platform.users() == []


def test_nothing_is_queued_while_the_academy_link_is_off(service: RegistryService) -> None:
    service.academy.enabled = False
    _, token = add_patron(service)
    service.claim(token, "excel-basics")
    assert _changes(service) == 0
    assert service.status(token).academy == ""


def test_a_platform_down_for_a_while_is_retried_with_back_off_then_gets_everything(
        service: RegistryService, platform: ScimTestServer) -> None:
    now = service.clock()
    service.clock = lambda: now
    patrons = [add_patron(service) for _ in range(3)]
    platform.stop()
    for _, token in patrons:
        service.claim(token, "excel-basics")
    service.give_up_seat(patrons[0][1])  # the third is promoted, all while it is down
    cfg = scim_config(platform, timeout=0.5)
    first = send_due(service.store, cfg, now)
    assert first.synced == 0 and first.down
    with service.store.read() as s:
        head = s.execute(select(AcademyChange.attempts, AcademyChange.next_attempt_at,
                                AcademyChange.last_error)
                         .order_by(AcademyChange.id).limit(1)).one()
    assert head.attempts == 1 and head.next_attempt_at == now + timedelta(seconds=30)
    assert "Network" in head.last_error or "Connect" in head.last_error
    # Many rounds while down: never given up, each failure waits longer.
    later = now
    for _ in range(MAX_ATTEMPTS + 3):
        later += timedelta(days=1)
        assert send_due(service.store, cfg, later).synced == 0
    assert service.academy.state().given_up == 0
    assert service.academy.state().backlog == _changes(service)
    with service.store.read() as s:
        waits = [w - later for w in s.scalars(select(AcademyChange.next_attempt_at))]
    assert max(waits) <= timedelta(minutes=5)  # back within minutes of its return

    platform.start()  # back, on the same address
    later += timedelta(days=1)
    done = send_due(service.store, cfg, later)
    assert done.down == "" and done.synced == 3
    assert _active(platform) == _holders(service) and len(_holders(service)) == 2
    first_ext = academy.external_id(_id(service, patrons[0][0]))
    # The first patron's claim and give-up, synced in order: never created, or deactivated.
    assert platform_users(platform).get(first_ext, (False, ()))[0] is False
    assert service.academy.state().backlog == 0
    assert service.academy.state().last_success == later


def test_sync_fixes_drift_both_ways_and_a_dry_run_changes_nothing(
        service: RegistryService, platform: ScimTestServer) -> None:
    patrons = [add_patron(service) for _ in range(2)]
    for _, token in patrons:
        service.claim(token, "excel-basics")
    _send(service, platform)
    keep, lost = (academy.external_id(_id(service, card)) for card, _ in patrons)
    with AcademyLink(scim_config(platform)) as link:
        # Drift: one user deleted by hand on the platform, one stray user of ours added
        # for a patron without a seat, another's courses changed, one not ours at all.
        (gone,) = link.find(lost)
        link.apply(None, [gone], "deleted")
        with service.store.read() as s:
            account = academy.account_of(s, _id(service, patrons[0][0]))
        assert account is not None
        link.apply(replace(account, courses=("word-basics",)), link.find(keep), "updated")
        stray_card, _ = add_patron(service)
        with service.store.read() as s:
            stray = academy.account_of(s, _id(service, stray_card))
        assert stray is not None
        link.apply(replace(stray, active=True), [], "created")
        link.apply(replace(stray, external_id="other-system-1", user_name="someone-else",
                           active=True), [], "created")
        before = platform_users(platform)

        dry = reconcile(service.store, link, service.clock(), dry_run=True)
        assert platform_users(platform) == before
        assert dry.counts["created"] == 1 and dry.counts["updated"] == 1
        assert dry.counts["deactivated"] == 1

        report = reconcile(service.store, link, service.clock())
        assert "1 created" in report.summary() and "1 deactivated" in report.summary()
    after = platform_users(platform)
    assert {k: v for k, v in after.items() if v[0] and k.startswith("kiosk-")} \
        == _holders(service)
    assert after["other-system-1"] == (True, ())  # not ours: left alone
    assert service.status(patrons[1][1]).academy == "ready"


@pytest.mark.slow
def test_a_mini_storm_of_claims_releases_and_promotions_leaves_the_platform_equal_to_the_seat_holders(  # noqa: E501
        make_service, platform: ScimTestServer) -> None:  # type: ignore[no-untyped-def]
    service = make_service(cap=8)
    service.academy.enabled = True
    rng = random.Random(12)
    patrons = [add_patron(service)[1] for _ in range(20)]
    courses = ["excel-basics", "word-basics", "email-outlook"]
    for step in range(60):
        token = rng.choice(patrons)
        action = rng.random()
        try:
            if action < 0.6:
                service.claim(token, rng.choice(courses))
            elif action < 0.8:
                service.give_up_seat(token)
            else:
                service.withdraw(token, rng.choice(courses))
        except Exception as refusal:  # noqa: BLE001 - not seated, not enrolled: fine
            assert getattr(refusal, "code", "") in ("not_seated", "not_enrolled"), refusal
        if step % 15 == 7:
            _send(service, platform)
    _send(service, platform)
    assert _active(platform) == _holders(service)
    assert service.academy.state().backlog == 0


def test_the_csv_export_lists_the_seat_holders_with_their_courses(
        service: RegistryService) -> None:
    card, token = add_patron(service)
    service.claim(token, "excel-basics")
    out = io.StringIO()
    assert export_csv(service.store, out, now=service.clock) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("external_id,user_name")
    assert lines[1].startswith(f"kiosk-{_id(service, card)},{card},") \
        and lines[1].endswith(",true,excel-basics")


@pytest.mark.slow
def test_a_registry_killed_mid_run_loses_no_change_for_the_academy(
        make_service, platform: ScimTestServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    service = make_service(cap=6)
    service.academy.enabled = True
    tokens = [add_patron(service)[1] for _ in range(12)]
    (tmp_path / "tokens.json").write_text(json.dumps(tokens), encoding="utf-8")
    url = str(service.store.engine.url.render_as_string(hide_password=False))

    def worker(seed: int, steps: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.academy_worker", url, platform.url,
             token_file(tmp_path), str(tmp_path / "tokens.json"), str(seed), str(steps)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)

    first = worker(1, 400)
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("step 25"):
            break
    first.send_signal(signal.SIGKILL)  # mid-run: claims and the sender's syncs cut short
    first.wait(timeout=10)
    first.stdout.close()
    assert first.returncode == -signal.SIGKILL
    second = worker(2, 30)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0 and out.rstrip().endswith("done")
    # The killed sender's leases end; whatever is left is sent now.
    later = service.clock() + timedelta(minutes=10)
    send_due(service.store, scim_config(platform), later)
    assert service.academy.state().backlog == 0
    assert _active(platform) == _holders(service)


@pytest.mark.slow
def test_concurrent_claims_and_releases_with_two_senders_running_leave_the_platform_equal(
        make_service, platform: ScimTestServer) -> None:  # type: ignore[no-untyped-def]
    """Eight patrons' kiosks at once (claims, give-ups, withdrawals), while two senders sync
    side by side (leases, per-patron order): at the end the platform holds exactly the seat
    holders, and nothing waits."""
    service = make_service(cap=5)
    service.academy.enabled = True
    tokens = [add_patron(service)[1] for _ in range(16)]
    courses = ["excel-basics", "word-basics", "email-outlook"]
    stop = threading.Event()
    senders = [threading.Thread(target=_keep_sending, args=(service, platform, stop))
               for _ in range(2)]
    for sender in senders:
        sender.start()

    def kiosk(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            token = rng.choice(tokens)
            try:
                if rng.random() < 0.6:
                    service.claim(token, rng.choice(courses))
                elif rng.random() < 0.5:
                    service.give_up_seat(token)
                else:
                    service.withdraw(token, rng.choice(courses))
            except RegistryError as refusal:
                assert refusal.code in ("not_seated", "not_enrolled", "busy"), refusal

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(kiosk, range(8)))
    finally:  # a failed kiosk must not leave the senders running into the next tests
        stop.set()
        for sender in senders:
            sender.join(30)
    _send(service, platform)
    assert service.academy.state().backlog == 0
    assert _active(platform) == _holders(service)


def _keep_sending(service: RegistryService, platform: ScimTestServer,
                  stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            send_due(service.store, scim_config(platform), service.clock())
        except RegistryError as refusal:  # as the real sender: a busy round waits for the next
            assert refusal.code == "busy", refusal
        stop.wait(0.05)
