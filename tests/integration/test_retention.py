"""Retention: what is kept only for a while goes when its time is up (a frozen clock)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import select

from kiosk.cli import main
from kiosk.registry import domain
from kiosk.registry.domain import Standing
from kiosk.registry.idempotency import IdempotencyKeys
from kiosk.registry.store import IdempotencyRecord, Patron
from tests.support.factories import patron_data


def test_idempotency_keys_are_kept_24_hours_then_purged(make_service) -> None:
    service = make_service()
    terminal = service.add_terminal("ANT-PERMEKE", "kiosk 1", actor="test")[1]
    now = datetime(2026, 12, 2, 9, 0)
    keys = IdempotencyKeys(service.store, clock=lambda: now)
    for key, age in (("old", timedelta(hours=24, seconds=1)), ("young", timedelta(hours=23))):
        now = datetime(2026, 12, 2, 9, 0) - age
        with service.store.write() as s:
            keys.begin(s, terminal.id, key, fingerprint="f")
    now = datetime(2026, 12, 2, 9, 0)
    assert keys.purge() == 1
    with service.store.read() as s:
        assert s.scalars(select(IdempotencyRecord.key)).all() == ["young"]


def test_accounts_two_years_without_activity_are_erased_and_free_their_seat(
        make_service) -> None:
    now = datetime(2026, 12, 2, 9, 0)
    service = make_service(cap=1, clock=lambda: now)
    now = datetime(2024, 12, 1, 8, 0)  # two years and a day before the purge
    asleep = patron_data()
    service.register(asleep)
    token, _ = service.login(asleep.email, asleep.password)
    service.claim(token, "excel-basics")
    now = datetime(2024, 12, 3, 8, 0)  # a day short of two years
    recent = patron_data()
    service.register(recent)
    now = datetime(2026, 12, 1, 8, 0)
    waiting = patron_data()
    service.register(waiting)
    waiting_token, _ = service.login(waiting.email, waiting.password)
    service.claim(waiting_token, "excel-basics")

    now = datetime(2026, 12, 2, 9, 0)
    assert service.erase_inactive() == 1
    with service.store.read() as s:
        left = set(s.scalars(select(Patron.email)).all())
    assert left == {recent.email, waiting.email}
    fresh, _ = service.login(waiting.email, waiting.password)  # the old session has expired
    assert service.status(fresh, "en").standing is Standing.SEATED
    assert service.erase_inactive() == 0  # nothing else is due


def test_a_log_in_counts_as_activity(make_service) -> None:
    now = datetime(2024, 1, 10, 9, 0)
    service = make_service(clock=lambda: now)
    data = patron_data()
    service.register(data)
    now = datetime(2025, 6, 1, 9, 0)
    service.login(data.email, data.password)
    now = datetime(2026, 2, 1, 9, 0)  # over two years after sign-up, not after the log-in
    assert service.erase_inactive() == 0


def test_two_years_after_the_programme_ends_every_account_goes(make_service) -> None:
    now = datetime(2026, 12, 2, 9, 0)
    service = make_service(clock=lambda: now)
    for _ in range(3):
        service.register(patron_data())
    service.set_end_date(date(2025, 1, 31), actor="coordinator")
    assert service.erase_inactive() == 0  # ended less than two years ago
    now = datetime(2027, 1, 31, 0, 0)
    assert service.erase_inactive() == 3


def test_retention_cutoff_rule() -> None:
    now = datetime(2028, 2, 29, 12, 0)
    assert domain.retention_cutoff(now, None) == datetime(2026, 2, 28, 12, 0)
    assert domain.retention_cutoff(now, date(2026, 3, 1)) == datetime(2026, 2, 28, 12, 0)
    assert domain.retention_cutoff(now, date(2026, 2, 28)) == datetime.max


def test_purge_and_set_end_date_commands(app) -> None:
    url = ["--database-url", app.config["DATABASE_URL"]]
    ended = CliRunner().invoke(main, ["registry", "set-end-date", "2020-06-30", *url])
    assert ended.exit_code == 0 and "2020-06-30" in ended.output
    app.extensions["registry_service"].register(patron_data())
    purged = CliRunner().invoke(main, ["registry", "purge", *url])
    assert purged.exit_code == 0, purged.output
    assert "Erased 1 account(s)" in purged.output
    bad = CliRunner().invoke(main, ["registry", "set-end-date", "30/06/2020", *url])
    assert bad.exit_code == 2 and "30/06/2020" in bad.output  # click names the bad value


def test_housekeeping_runs_on_one_host_at_a_time(make_service, db_url) -> None:  # type: ignore[no-untyped-def]
    """Two registry hosts' hourly timers fire together: on PostgreSQL the second skips (an
    advisory lock, held by the first); SQLite is one host's file and has no second."""
    service = make_service()
    url = str(service.store.engine.url.render_as_string(hide_password=False))
    with service.store.alone("housekeeping") as first:
        assert first
        with service.store.alone("housekeeping") as second:
            assert second is service.store.is_sqlite
        purged = CliRunner().invoke(main, ["registry", "purge", "--database-url", url])
        assert purged.exit_code == 0, purged.output
        assert ("skipped" in purged.output) is not service.store.is_sqlite
    with service.store.alone("housekeeping") as again:
        assert again  # released at the end
