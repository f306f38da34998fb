"""More than one registry host (issue #14 item 4): two `kiosk registry serve` (gunicorn, as the
unit runs it) on 127.0.0.2 and 127.0.0.3, one PostgreSQL database, the same KIOSK_SECRET_KEY,
behind the shipped nginx site with both in its upstream (tests/support/registry_hosts.py).

1. A claim storm through nginx with the terminal's own HTTP client (its retries and keys; a
   patron told "try again" sends the same form again), one host killed with kill -9 (master
   and workers) in the middle: exactly the cap seated, one waiting line without gaps in the
   order the claims were decided, every claim a terminal saw answered is in the database as
   answered, nobody with two places. The proof that the kill struck: nginx's error log names
   the dead host.
2. A staff member logs in through nginx and the next 20 pages work, answered by both hosts
   (their access logs say which answered what). The negative control: with two different keys
   the staff session breaks.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from kiosk.registry import request_scope
from kiosk.registry.domain import ClaimResult, RegistryError, Standing
from kiosk.registry.http_client import UNAVAILABLE, HttpRegistryClient
from kiosk.registry.seed import load_demo_data
from tests.support.factories import STAFF_PASSWORDS
from tests.support.nginx import require_nginx
from tests.support.registry_hosts import (
    SHARED_KEY,
    RegistryHosts,
    Step,
    registries_behind_nginx,
    staff_visit,
    terminal_client,
)
from tests.support.storm_support import (
    bulk_patrons,
    create_storm_database,
    drop_storm_database,
    read_seats,
    wait_for_places,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # two gunicorns, nginx, a storm

CAP, PATRONS = 30, 120
TERMINALS, PATRONS_AT_ONCE = 5, 10  # 50 claims in flight, from 5 addresses
STORM_DEADLINE = 45.0  # seconds for every patron's claim, presses again included
CLIENT_DEADLINE = 10.0  # REGISTRY_DEADLINE of the terminals' client
PAGES = 20


@pytest.fixture(scope="module")
def nginx() -> str:
    return require_nginx()


@pytest.fixture(scope="module")
def make_hosts(postgres_admin: str, nginx: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Callable[..., RegistryHosts]]:
    """Two registry hosts behind nginx on a new database: `make_hosts(secret_keys=…)`."""
    with ExitStack() as stack:
        def make(**options: Any) -> RegistryHosts:
            url = create_storm_database(postgres_admin, "twohosts")
            stack.callback(drop_storm_database, postgres_admin, url)
            return stack.enter_context(registries_behind_nginx(
                tmp_path_factory.mktemp("two-hosts"), nginx, url, cap=CAP, **options))
        yield make


@pytest.fixture(scope="module")
def shared_hosts(make_hosts: Callable[..., RegistryHosts]) -> RegistryHosts:
    """Both hosts with the same key, for the staff visit and then the storm (which kills one
    of them: it is started again before another test uses them)."""
    return make_hosts()


@pytest.fixture
def both_up(shared_hosts: RegistryHosts) -> RegistryHosts:
    for host in shared_hosts.hosts:
        if host.proc is None:
            host.start(prepare=False)
    return shared_hosts


@dataclass(frozen=True)
class Answered:
    """A patron's claim as their terminal saw it answered."""

    patron: int
    result: ClaimResult
    first_sent: float  # time.monotonic() when the patron first pressed
    answered: float
    presses: int


def _claim_until_answered(client: HttpRegistryClient, token: str, patron: int, course: str,
                          deadline: float) -> Answered | None:
    """As the kiosk does: the claim form has its key, and a patron told that the service could
    not be reached sends the same form again (the same key: the registry runs it once)."""
    form_key = uuid.uuid4()
    first_sent = time.monotonic()
    presses = 0
    while time.monotonic() < deadline:
        presses += 1
        try:
            with request_scope.page(None, form_key):
                result = client.claim(token, course)
        except RegistryError as refusal:
            assert refusal.code == UNAVAILABLE, refusal
            time.sleep(0.2)
            continue
        return Answered(patron, result, first_sent, time.monotonic(), presses)
    return None


def _answered_by(hosts: RegistryHosts, steps: list[Step]) -> list[str | None]:
    return hosts.answered_by([s.request_id for s in steps])


# --- A staff session: first, while both hosts are up ---------------------------------------


def test_a_staff_session_works_whichever_host_answers(both_up: RegistryHosts) -> None:
    steps = staff_visit(both_up, "coordinator", STAFF_PASSWORDS["coordinator"], PAGES)
    where = _answered_by(both_up, steps)
    assert [s.what for s in steps] == ["log-in page", "log-in", *["page"] * PAGES]
    assert [s.status for s in steps] == [200, 302, *[200] * PAGES], steps
    assert None not in where and "both" not in where, where
    pages_by = [w for s, w in zip(steps, where, strict=True) if s.what == "page"]
    assert set(pages_by) == {h.host for h in both_up.hosts}, f"one host served all: {pages_by}"


def test_negative_control_with_two_keys_the_staff_session_breaks(
        make_hosts: Callable[..., RegistryHosts]) -> None:
    """Each host signs with its own key: a cookie signed by one is nobody's on the other."""
    hosts = make_hosts(secret_keys=(SHARED_KEY, "another-key-on-the-second-host"))
    steps = staff_visit(hosts, "coordinator", STAFF_PASSWORDS["coordinator"], PAGES)
    where = _answered_by(hosts, steps)
    broken = steps[-1]
    assert (broken.what, broken.status) != ("page", 200), steps  # the visit did not get through
    # The step that broke reached the other host than the one before it, whose cookie it sent.
    assert where[-1] != where[-2], (steps, where)


# --- The storm, one host killed in the middle -----------------------------------------------


def test_a_claim_storm_through_nginx_survives_one_host_killed(both_up: RegistryHosts,
                                                               progress) -> None:  # type: ignore[no-untyped-def]
    hosts, database = both_up, both_up.database_url
    course = load_demo_data()["courses"][0]["slug"]
    patrons = bulk_patrons(database, PATRONS)
    clients = [terminal_client(hosts, hosts.hosts[0].add_terminal(f"library PC {i + 1}"),
                               f"127.0.1.{i + 1}", threads=PATRONS_AT_ONCE,
                               deadline=CLIENT_DEADLINE) for i in range(TERMINALS)]
    victim = hosts.hosts[1]
    go = threading.Barrier(TERMINALS * PATRONS_AT_ONCE + 1)
    deadline = time.monotonic() + STORM_DEADLINE + 10  # the barrier's wait included
    log_before = len(hosts.nginx.log())

    def patron(index: int) -> Answered | None:
        if index < TERMINALS * PATRONS_AT_ONCE:
            go.wait(timeout=10)  # the first 50 claims leave together
        p = patrons[index]
        return _claim_until_answered(clients[index % TERMINALS], p.token, p.id, course,
                                     deadline)

    started = time.monotonic()
    try:
        with ThreadPoolExecutor(TERMINALS * PATRONS_AT_ONCE) as pool:
            futures = [pool.submit(patron, i) for i in range(PATRONS)]
            go.wait(timeout=10)
            at_kill = wait_for_places(database, PATRONS // 4, timeout=STORM_DEADLINE)
            victim.kill9()
            killed_after = time.monotonic() - started
            answers = [f.result(timeout=STORM_DEADLINE + 15) for f in futures]
    finally:
        for client in clients:
            client.close()
    storm_seconds = time.monotonic() - started
    nginx_log = hosts.nginx.log()[log_before:]

    seats = read_seats(database)
    progress(f"[two hosts] {PATRONS} claims for {CAP} seats in {storm_seconds:.1f} s; "
             f"{victim.address} killed after {killed_after:.1f} s at {at_kill} places; pressed "
             f"again: {sum(a.presses > 1 for a in answers if a)}; {seats.summary()}")
    assert at_kill < PATRONS, "the storm was over before the kill: it proved nothing"
    assert victim.address in nginx_log, "nginx never met the killed host: it proved nothing"
    assert None not in answers, (
        f"{answers.count(None)} patron(s) got no answer within {STORM_DEADLINE:.0f} s")
    acked = [a for a in answers if a is not None]

    # Exactly the cap, one waiting line without gaps, nobody twice.
    assert not seats.problems(), seats.problems()
    assert len(seats.seated) == CAP == seats.seats_taken
    assert sorted(seats.waiting.values()) == list(range(1, PATRONS - CAP + 1)), "gaps"
    assert all(seats.enrolments[p.id] == 1 for p in patrons), "a claim lost or done twice"

    # No answered claim lost: each answer is what the database holds (nobody left the line,
    # so a position answered is still the patron's rank).
    wrong = [a for a in acked
             if (a.result.standing, a.result.position) != (
                 (Standing.SEATED, None) if a.patron in seats.seated
                 else (Standing.WAITING, seats.position(a.patron)))]
    assert not wrong, f"{len(wrong)} answer(s) the database does not hold, e.g. {wrong[:3]}"
    granted = [a.patron for a in acked if a.result.newly_granted]
    assert sorted(granted) == sorted(seats.seated), "a seat granted unsaid, or said twice"

    # First come, first served: a claim answered before another was first sent is ahead of it
    # (seated ones all rank 0: the seats have no order among themselves).
    def rank(a: Answered) -> int:
        return 0 if a.patron in seats.seated else seats.waiting[a.patron]

    overtaken = [(a.patron, b.patron) for a in acked for b in acked
                 if a.answered < b.first_sent and rank(b) < rank(a)]
    assert not overtaken, f"claims served out of order: {overtaken[:5]}"
