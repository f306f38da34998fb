"""The rule of `kiosk registry doctor`'s connections row, alone: what the registry host may open
at full load against what PostgreSQL accepts, and the sentence that says what to change."""

from __future__ import annotations

from kiosk.config import Config
from kiosk.doctor import FAIL, OK, WARN
from kiosk.registry_doctor import Serving, connection_budget, serving_from
from kiosk.serving import THREADS, WORKERS

SHIPPED = Serving(workers=WORKERS, threads=THREADS, senders=2, pool_size=Config.DATABASE_POOL_SIZE,
                  max_overflow=Config.DATABASE_MAX_OVERFLOW)


def test_the_shipped_settings_fit_postgresqls_default_of_100_with_room_to_spare() -> None:
    result = connection_budget(SHIPPED, max_connections=100, reserved=3)
    assert result.status == OK, result.detail
    assert result.detail == ("19 connections at full load (2 workers × (4 + 4) + 3 for "
                             "housekeeping and a command by hand); PostgreSQL accepts 97 "
                             "(max_connections 100 − 3 reserved)")


def test_a_workers_pool_keeps_a_connection_a_thread_and_sender_and_allows_two_a_thread() -> None:
    assert SHIPPED.pool_size >= SHIPPED.steady == 2 + 2
    assert SHIPPED.per_worker >= SHIPPED.at_once == 2 * 2 + 2


def test_more_than_postgresql_accepts_fails_and_says_what_to_lower_or_raise() -> None:
    busy = Serving(workers=12, threads=2, senders=0, pool_size=4, max_overflow=4)
    result = connection_budget(busy, max_connections=100, reserved=3)
    assert result.status == FAIL
    assert result.detail.startswith("99 connections at full load (12 workers × (4 + 4) + 3 ")
    for remedy in ("Lower KIOSK_WORKERS", "KIOSK_DATABASE_POOL_SIZE",
                   "KIOSK_DATABASE_MAX_OVERFLOW", "raise max_connections in postgresql.conf"):
        assert remedy in result.detail


def test_exactly_what_postgresql_accepts_is_not_a_failure_but_leaves_no_room() -> None:
    full = Serving(workers=10, threads=2, senders=0, pool_size=4, max_overflow=5)  # 93
    assert connection_budget(full, max_connections=96, reserved=3).status == WARN
    assert connection_budget(full, max_connections=95, reserved=3).status == FAIL


def test_the_reserved_connections_are_not_the_registrys() -> None:
    serving = Serving(workers=3, threads=2, senders=0, pool_size=4, max_overflow=4)  # 27
    assert connection_budget(serving, max_connections=30, reserved=0).status == WARN
    assert connection_budget(serving, max_connections=30, reserved=4).status == FAIL


def test_over_four_fifths_of_the_limit_warns_of_little_room() -> None:
    serving = Serving(workers=9, threads=2, senders=0, pool_size=4, max_overflow=4)  # 75
    assert connection_budget(serving, max_connections=100, reserved=3).status == OK  # 77.6
    tight = connection_budget(serving, max_connections=93, reserved=3)  # 72 of 90
    assert tight.status == WARN and "little room is left" in tight.detail


def test_a_pool_smaller_than_a_workers_threads_need_warns_with_the_sizes_to_set() -> None:
    more_threads = Serving(workers=3, threads=8, senders=2, pool_size=4, max_overflow=4)
    result = connection_budget(more_threads, max_connections=100, reserved=3)
    assert result.status == WARN
    assert result.detail.endswith("But a worker's 8 threads and 2 sender(s) keep 10 "
                                  "connections busy and may need 18 at once (a request up to "
                                  "2): requests would wait for one, or open and close one "
                                  "each time. Set KIOSK_DATABASE_POOL_SIZE to at least 10 and "
                                  "KIOSK_DATABASE_MAX_OVERFLOW to at least 8.")
    sized = Serving(workers=3, threads=8, senders=2, pool_size=10, max_overflow=8)
    assert connection_budget(sized, max_connections=100, reserved=3).status == OK  # 57


def test_a_pool_kept_too_small_warns_even_when_the_overflow_would_cover_the_threads() -> None:
    churning = Serving(workers=3, threads=2, senders=2, pool_size=2, max_overflow=6)
    result = connection_budget(churning, max_connections=100, reserved=3)
    assert result.status == WARN and "open and close one each time" in result.detail
    assert result.detail.endswith("POOL_SIZE to at least 4 and KIOSK_DATABASE_MAX_OVERFLOW "
                                  "to at least 2.")


def test_an_overflow_too_small_for_two_connections_a_request_warns() -> None:
    short = Serving(workers=3, threads=2, senders=2, pool_size=4, max_overflow=1)
    result = connection_budget(short, max_connections=100, reserved=3)
    assert result.status == WARN and "may need 6 at once" in result.detail
    assert result.detail.endswith("KIOSK_DATABASE_MAX_OVERFLOW to at least 2.")


def test_every_registry_host_on_the_database_counts() -> None:
    two = Serving(workers=2, threads=2, senders=2, pool_size=4, max_overflow=4, hosts=2)
    assert two.at_full_load == 2 * SHIPPED.at_full_load == 38
    assert "2 hosts × (2 workers × (4 + 4) + 3 " in connection_budget(two, 100, 3).detail
    four = Serving(workers=3, threads=2, senders=2, pool_size=4, max_overflow=4, hosts=4)
    assert connection_budget(four, max_connections=100, reserved=3).status == FAIL


def test_only_the_senders_that_are_on_count() -> None:
    cfg = {"SMTP_HOST": "smtp.example.be", "ACADEMY_SCIM_URL": " ", "DATABASE_POOL_SIZE": 2,
           "DATABASE_MAX_OVERFLOW": 1}
    assert serving_from(cfg, workers=5, threads=3, hosts=1) == Serving(5, 3, 1, 2, 1, 1)
