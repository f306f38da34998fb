"""The registry (gunicorn, as served) when PostgreSQL restarts under it, and when someone else
holds the programme row: claims retried with their key succeed soon after the database is
back (no key left "running"), a queue of waiters is answered "busy" within 3 s each, and the
seat promises hold after the dust settles."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest

from tests.support.factories import IN_CI
from tests.support.private_postgres import PrivateCluster, binaries
from tests.support.storm_support import (
    Policy,
    RegistryServer,
    bulk_patrons,
    call,
    claim_job,
    create_storm_database,
    drive,
    drop_storm_database,
    prepare_registry,
    read_seats,
    release_job,
    wait_for_places,
)

pytestmark = pytest.mark.postgres

RECOVERY = 5.0  # seconds after the database is back by which every retried claim succeeds
LOCK_BOUND = 3.0  # seconds after its start by which a waiter for the programme row answers


@pytest.fixture
def cluster():  # type: ignore[no-untyped-def]
    if binaries() is None:
        if IN_CI:
            pytest.fail("CI must run this test: Debian's postgresql package is needed")
        pytest.skip("needs a PostgreSQL server installed (initdb, pg_ctl)")
    made = PrivateCluster()
    made.start()
    yield made
    made.close()


def test_claims_retried_after_a_postgresql_restart_succeed_within_5_s(cluster) -> None:
    url = cluster.create_database("kiosk_restart")
    registry = prepare_registry(url, cap=150, terminals=2)
    patrons = bulk_patrons(url, 600)
    back: list[float] = []

    def restart() -> None:
        wait_for_places(url, 40, timeout=60)  # claims are being served: now, in the middle
        cluster.stop("fast")  # as for an update: every session ended
        time.sleep(1.0)
        cluster.start()
        back.append(time.monotonic())

    with RegistryServer(url, workers=2, threads=4) as server:
        load = drive(server.base_url, [claim_job(p.token, registry.courses[0]) for p in patrons],
                     registry.terminal_tokens, processes=1, threads=8, during=restart,
                     policy=Policy(retry_connection_errors=True, retry_busy=True,
                                   give_up_after=60), timeout=300)
        errors = server.errors_logged()
    assert back, "the database was not restarted"
    # The claims the restart refused at least once (the others were served before or after).
    hit = [o for o in load.outcomes if len(o.statuses) > 1]
    assert hit, "no claim met the restart: the test proved nothing"
    slowest = max(o.ended - back[0] for o in hit)
    in_progress = sum(s == 409 for o in load.outcomes for s in o.statuses)
    print(f"\n[restart] {len(hit)} claims retried; attempts {dict(load.all_statuses())}; "
          f"last success {slowest:.2f} s after the database was back; 409 in progress "
          f"{in_progress}")
    assert {o.status for o in load.outcomes} <= {200, 201}, load.summary()
    assert slowest <= RECOVERY, f"a retried claim succeeded {slowest:.1f} s after the restart"
    assert errors == 0
    seats = read_seats(url)
    assert seats.problems() == [], seats.problems()
    assert len(seats.seated) == 150 and len(seats.waiting) == 450  # one place per patron
    assert sorted(seats.waiting.values()) == sorted(set(seats.waiting.values()))
    assert [seats.position(pid) for pid in seats.queue()] == list(range(1, 451))


def test_a_worker_restarted_while_postgresql_is_down_serves_once_it_is_back(cluster) -> None:
    """gunicorn stops the whole registry when a worker fails to boot: a worker that died
    while the database was away must boot anyway, answer "busy", and serve once it is back."""
    url = cluster.create_database("kiosk_reboot")
    registry = prepare_registry(url, cap=10, terminals=1)
    patron = bulk_patrons(url, 1)[0]
    terminal = registry.terminal_tokens[0]
    claim = claim_job(patron.token, registry.courses[0])
    with RegistryServer(url, workers=1, threads=2) as server:
        cluster.stop("fast")
        [worker] = server.worker_pids()
        os.kill(worker, signal.SIGKILL)  # the arbiter boots another while the database is away
        deadline = time.monotonic() + 60
        while server.worker_pids() in ([], [worker]) and time.monotonic() < deadline:
            time.sleep(0.1)
        readyz = ("GET", "/readyz", "", "", b"")
        while call(server.base_url, readyz, terminal)[0] != 503:  # booted: it answers
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        status, body = call(server.base_url, claim, terminal)
        assert status == 503 and b'"busy"' in body, (status, body)
        cluster.start()
        back = time.monotonic()
        while (status := call(server.base_url, claim, terminal)[0]) == 503:
            assert time.monotonic() - back < RECOVERY, server.log_tail()
            time.sleep(0.2)
        assert status == 200
        assert call(server.base_url, readyz, terminal)[0] == 200
        assert "does not answer" in server.log.read_text()
        assert server.proc is not None and server.proc.poll() is None


def test_every_waiter_for_a_held_programme_row_is_answered_busy_within_3_s(
        postgres_admin) -> None:
    url = create_storm_database(postgres_admin, "lockbound")
    try:
        registry = prepare_registry(url, cap=50, terminals=1)
        patrons = bulk_patrons(url, 14)
        course = registry.courses[0]
        # 16 threads a worker: each of the 14 waiters has a thread of its own even if one
        # worker takes them all (a request queued for a thread is a capacity question).
        with RegistryServer(url, workers=2, threads=16) as server:
            seated = drive(server.base_url, [claim_job(p.token, course) for p in patrons[:4]],
                           registry.terminal_tokens, processes=1, threads=4)
            assert {o.status for o in seated.outcomes} == {200}, seated.summary()
            # Someone else holds the programme row: an operator's open transaction.
            with psycopg.connect(url) as holder:
                holder.execute("SELECT 1 FROM programme FOR UPDATE")
                jobs = ([claim_job(p.token, course) for p in patrons[4:]]
                        + [release_job(p.token) for p in patrons[:4]])
                queued = drive(server.base_url, jobs, registry.terminal_tokens, processes=1,
                               threads=len(jobs))
                holder.rollback()
            after = drive(server.base_url, [claim_job(p.token, course) for p in patrons[4:]],
                          registry.terminal_tokens, processes=1, threads=10)
        waits = sorted(o.ended - o.started for o in queued.outcomes)
        print(f"\n[lock] {len(waits)} waiters answered after {waits[0]:.2f}–{waits[-1]:.2f} s")
        assert {o.status for o in queued.outcomes} == {503}, queued.summary()
        assert all(o.json["error"]["code"] == "busy" and o.json["error"]["retry_after"] >= 1
                   for o in queued.outcomes)
        assert waits[-1] <= LOCK_BOUND, waits
        assert waits[0] >= 1.0, "they did not wait for the lock: the test proved nothing"
        assert {o.status for o in after.outcomes} == {200}, after.summary()
        seats = read_seats(url)
        assert seats.problems() == [] and len(seats.seated) == 14
    finally:
        drop_storm_database(postgres_admin, url)
