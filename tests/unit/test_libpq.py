"""How kiosk.registry.libpq writes a statement and its parameters for libpq."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from kiosk.registry.libpq import statement


def test_named_placeholders_become_numbered_once_per_name() -> None:
    st = statement("SELECT %(a)s::INTEGER, %(b)s::VARCHAR, %(a)s::INTEGER, 50 %% 7")
    assert st.text == b"SELECT $1::INTEGER, $2::VARCHAR, $1::INTEGER, 50 % 7"
    assert st.names == ("a", "b")
    assert st.values({"b": "één", "a": 3}) == [b"3", "één".encode()]


def test_positional_placeholders_keep_their_order() -> None:
    st = statement("SELECT * FROM kiosk_claim(%s, %s, %s)")
    assert st.text == b"SELECT * FROM kiosk_claim($1, $2, $3)" and st.names is None
    moment = datetime(2026, 12, 8, 9, 30, 15, 250)
    assert st.values((True, None, moment)) == [b"t", None, b"2026-12-08 09:30:15.000250"]


def test_a_statement_is_made_once_and_keeps_its_name() -> None:
    assert statement("SELECT 1") is statement("SELECT 1")
    assert statement("SELECT 1").name != statement("SELECT 2").name


def test_an_aware_moment_goes_as_the_naive_utc_the_store_keeps() -> None:
    brussels = timezone(timedelta(hours=1))
    assert statement("SELECT %s").values((datetime(2026, 12, 8, 10, 0, tzinfo=brussels),)) \
        == [b"2026-12-08 09:00:00"]
    assert statement("SELECT %s").values((datetime(2026, 12, 8, 9, 0, tzinfo=UTC),)) \
        == [b"2026-12-08 09:00:00"]


@pytest.mark.parametrize("value", [1.5, b"bytes", date(2026, 12, 8)])
def test_a_value_the_hot_path_does_not_send_is_refused(value: object) -> None:
    with pytest.raises(TypeError):
        statement("SELECT %s").values((value,))
