"""The seat promises, on a real SQLite registry: cap, one seat per patron, FIFO, promotion."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from kiosk.registry.domain import RegistryError, Standing
from kiosk.registry.store import Place
from tests.support.factories import add_patron
from tests.support.unguarded import UnguardedClaims

COURSES = ("spanish-beginners", "instagram", "italian-beginners")


def seated(service) -> int:  # type: ignore[no-untyped-def]
    with service.store.read() as s:
        return s.scalar(select(func.count()).where(Place.status == "seated"))


def test_free_seat_is_granted_then_the_full_programme_answers_waiting(make_service) -> None:
    service = make_service(cap=2)
    results = [service.claim(add_patron(service)[1], "spanish-beginners") for _ in range(4)]
    assert [r.standing for r in results] == [Standing.SEATED] * 2 + [Standing.WAITING] * 2
    assert [r.position for r in results] == [None, None, 1, 2]
    status = service.programme_status()
    assert (status.seats_taken, status.waiting, status.seats_left) == (2, 2, 0)


def test_a_seat_belongs_to_the_patron_not_the_course(make_service) -> None:
    service = make_service(cap=1)
    _, token = add_patron(service)
    for slug in COURSES:
        assert service.claim(token, slug).standing is Standing.SEATED
    assert service.programme_status().seats_taken == 1
    assert [e.course_slug for e in service.status(token, "en").enrolments] == list(COURSES)


def test_claiming_the_same_course_twice_answers_the_same(make_service) -> None:
    service = make_service(cap=1)
    _, first = add_patron(service)
    _, second = add_patron(service)
    service.claim(first, "instagram")
    assert service.claim(second, "instagram") == service.claim(second, "instagram")
    assert service.status(second, "en").position == 1
    assert len(service.status(second, "en").enrolments) == 1


def test_waiting_patron_keeps_chosen_courses_and_gets_seat_in_order(make_service) -> None:
    service = make_service(cap=1)
    _, holder = add_patron(service)
    service.claim(holder, "instagram")
    waiting = [add_patron(service)[1] for _ in range(3)]
    for token, slug in zip(waiting, COURSES, strict=True):
        service.claim(token, slug)
    service.claim(waiting[0], "french-beginners")  # a second choice while waiting
    service.give_up_seat(holder)
    first = service.status(waiting[0], "en")
    assert first.standing is Standing.SEATED
    assert [e.course_slug for e in first.enrolments] == ["spanish-beginners", "french-beginners"]
    assert [service.status(t, "en").position for t in waiting[1:]] == [1, 2]


def test_withdrawing_from_the_last_course_frees_the_seat(make_service) -> None:
    service = make_service(cap=1)
    _, holder = add_patron(service)
    service.claim(holder, "instagram")
    service.claim(holder, "spanish-beginners")
    _, next_in_line = add_patron(service)
    service.claim(next_in_line, "instagram")
    service.withdraw(holder, "instagram")
    assert service.status(holder, "en").standing is Standing.SEATED  # one course left
    service.withdraw(holder, "spanish-beginners")
    assert service.status(holder, "en").standing is Standing.NONE
    assert service.status(next_in_line, "en").standing is Standing.SEATED


def test_leaving_the_waiting_list_closes_the_gap(make_service) -> None:
    service = make_service(cap=0)
    tokens = [add_patron(service)[1] for _ in range(3)]
    for token in tokens:
        service.claim(token, "instagram")
    service.leave_waiting_list(tokens[0])
    assert [service.status(t, "en").position for t in tokens] == [None, 1, 2]
    assert service.status(tokens[0], "en").enrolments == []
    with pytest.raises(RegistryError) as refused:
        service.leave_waiting_list(tokens[0])
    assert refused.value.code == "not_waiting"


def test_cap_raise_promotes_the_first_in_line_at_once(make_service) -> None:
    service = make_service(cap=1)
    tokens = [add_patron(service)[1] for _ in range(5)]
    for token in tokens:
        service.claim(token, "instagram")
    assert service.set_cap(3, actor="coordinator") == 2
    standings = [service.status(t, "en").standing for t in tokens]
    assert standings == [Standing.SEATED] * 3 + [Standing.WAITING] * 2
    assert [service.status(t, "en").position for t in tokens[3:]] == [1, 2]


def test_lowering_the_cap_takes_no_seat_away_and_stops_new_grants(make_service) -> None:
    service = make_service(cap=3)
    tokens = [add_patron(service)[1] for _ in range(3)]
    for token in tokens:
        service.claim(token, "instagram")
    assert service.set_cap(1, actor="coordinator") == 0
    assert seated(service) == 3
    _, newcomer = add_patron(service)
    assert service.claim(newcomer, "instagram").standing is Standing.WAITING
    service.give_up_seat(tokens[0])
    service.give_up_seat(tokens[1])
    assert service.status(newcomer, "en").standing is Standing.WAITING  # 1 seated = cap
    service.give_up_seat(tokens[2])
    assert service.status(newcomer, "en").standing is Standing.SEATED
    assert service.programme_status().seats_taken == 1


def test_database_refuses_more_seats_than_the_cap(make_service) -> None:
    service = make_service(cap=1)
    with pytest.raises(IntegrityError), service.store.write() as s:
        s.execute(text("UPDATE programme SET seats_taken = cap + 1"))


def test_database_refuses_two_outcomes_for_one_patron(make_service) -> None:
    service = make_service(cap=5)
    _, token = add_patron(service)
    service.claim(token, "instagram")
    with pytest.raises(IntegrityError), service.store.write() as s:
        s.execute(text(
            "INSERT INTO places (patron_id, status, queue_no, requested_at) "
            "SELECT patron_id, 'waiting', 99, requested_at FROM places"
        ))


def test_session_token_is_revoked_at_logout(make_service) -> None:
    service = make_service()
    _, token = add_patron(service)
    service.logout(token)
    with pytest.raises(RegistryError) as refused:
        service.status(token, "en")
    assert refused.value.code == "session_invalid"


def _storm(service, patrons: int, claims=None) -> list:  # type: ignore[no-untyped-def]
    """`patrons` claims at once, released together; `claims`: who claims (the service)."""
    claim_with = (claims or service).claim
    tokens = [add_patron(service)[1] for _ in range(patrons)]
    barrier = threading.Barrier(patrons)
    results: list = [None] * patrons

    def claim(i: int) -> None:
        barrier.wait()
        results[i] = claim_with(tokens[i], "instagram")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(patrons)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_claims_never_oversell(make_service) -> None:
    service = make_service(cap=5)
    results = _storm(service, 24)
    assert seated(service) == 5 == service.programme_status().seats_taken
    assert sum(r.standing is Standing.SEATED for r in results) == 5
    positions = sorted(r.position for r in results if r.standing is Standing.WAITING)
    assert positions == list(range(1, 20))


def test_negative_control_without_the_guard_the_same_storm_oversells(make_service) -> None:
    """Same storm, claimed the naive way (check, a pause, then act; no lock, no conditional
    update): the race must show, or the test above proves nothing."""
    service = make_service(cap=5)
    _storm(service, 24, claims=UnguardedClaims(service, pause=0.01))
    assert seated(service) > 5


def test_a_patrons_two_claims_at_once_give_one_place_and_two_courses(make_service) -> None:
    """Both claims wait for the programme lock (held here); the first to get it adds the
    patron's place, the second must read the place *after* the lock: read in the locking
    statement itself, PostgreSQL would give it the snapshot from before the wait, it would
    add a second place, and the primary key would turn the patron's claim into a crash."""
    service = make_service(cap=10)
    _, token = add_patron(service)
    results: dict[str, object] = {}

    def claim(course: str) -> None:
        try:
            results[course] = service.claim(token, course)
        except Exception as error:  # noqa: BLE001 - the test reports what went wrong
            results[course] = error

    claims = [threading.Thread(target=claim, args=(course,))
              for course in ("excel-basics", "instagram")]
    with holding_the_programme_lock(service, seconds=0.4):
        for thread in claims:
            thread.start()
    for thread in claims:
        thread.join()
    assert not any(isinstance(r, Exception) for r in results.values()), results
    assert {r.standing for r in results.values()} == {Standing.SEATED}  # type: ignore[union-attr]
    status = service.status(token, "en")
    assert len(status.enrolments) == 2
    assert service.programme_status().seats_taken == 1


@contextmanager
def holding_the_programme_lock(service, seconds: float) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Hold the seat ledger's lock in another transaction while the body starts its work,
    and for `seconds` after, so that everything it started queues for the lock."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with service.store.write() as s:
            service.seats(s)
            taken.set()
            done.wait()
            time.sleep(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait()
    try:
        yield
    finally:
        done.set()
        holder.join()
