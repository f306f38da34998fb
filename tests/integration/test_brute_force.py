"""Wrong passwords sent all at once (issue #13, item 6): however many attempts on one account
arrive together, from threads, workers or hosts, at most the log-in policy's number of
passwords (or PINs) is judged before the account locks, and then even the right one is
refused. Real threads on SQLite and PostgreSQL, over the API too, and a real SIP2 member
system; the negative control is the old count (read, check, write back), which lets more
wrong passwords be judged under the same load on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kiosk.registry.demo_member_system import Card, DemoMemberSystem
from kiosk.registry.domain import LoginPolicy, RegistryError
from kiosk.registry.member_system import MemberSystemConfig
from kiosk.registry.passwords import verify
from kiosk.registry.services import RegistryService, utcnow
from kiosk.registry.store import AuditEntry, Patron
from tests.support.contract import connect, registry_app
from tests.support.factories import STAFF_PASSWORDS, new_store, patron_data

AT_ONCE = 30
POLICY = LoginPolicy()  # five: four answered "login_failed", the fifth locks the account
# What 30 wrong passwords at once must be answered: never more "login_failed" than this.
BOUND = Counter({"login_failed": POLICY.max_failures - 1,
                 "account_locked": AT_ONCE - POLICY.max_failures + 1})
CARD = Card("21000123456", "1234", "Peeters, An")


def at_once(attempt: Callable[[], object], n: int = AT_ONCE) -> Counter[str]:
    """`attempt` run by `n` threads released together; answers how often each code came
    back ("logged_in" for a success)."""
    start = threading.Barrier(n)

    def one(_: int) -> str:
        start.wait()
        try:
            attempt()
        except RegistryError as refused:
            return refused.code
        return "logged_in"

    with ThreadPoolExecutor(n) as pool:
        return Counter(pool.map(one, range(n)))


def locked_out(login: Callable[[], object]) -> bool:
    try:
        login()
    except RegistryError as refused:
        return refused.code == "account_locked"
    return False


def test_thirty_wrong_passwords_at_once_are_judged_no_more_than_the_policy_allows(
        make_service) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = make_service()
    data = patron_data()
    card = service.register(data)
    answers = at_once(lambda: service.login(card, "wrong password"))
    assert answers == BOUND
    assert locked_out(lambda: service.login(card, data.password))  # even the right one


def test_a_right_password_puts_the_count_back_to_zero(
        make_service) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = make_service()
    data = patron_data()
    card = service.register(data)
    assert at_once(lambda: service.login(card, "wrong password"), n=3) == {"login_failed": 3}
    service.login(card, data.password)
    for left in (4, 3, 2, 1):
        with pytest.raises(RegistryError) as refused:
            service.login(card, "wrong password")
        assert refused.value.detail == {"attempts_left": left}


def test_thirty_wrong_staff_passwords_at_once_check_five_and_lock(
        make_service) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = make_service()
    since = utcnow()
    answers = at_once(lambda: service.staff.login("an.peeters", "not it"))
    assert answers == BOUND
    with service.store.read() as s:  # each password found wrong is audited: five were
        judged = s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "staff_login_failed", AuditEntry.at >= since))
    assert judged == POLICY.max_failures
    assert locked_out(lambda: service.staff.login("an.peeters", STAFF_PASSWORDS["an.peeters"]))


@pytest.fixture(scope="module")
def member_system() -> Iterator[DemoMemberSystem]:
    with DemoMemberSystem([CARD]) as system:
        yield system


def test_thirty_wrong_pins_at_once_reach_the_member_system_five_times(
        make_service, member_system: DemoMemberSystem) -> None:  # type: ignore[no-untyped-def]
    service: RegistryService = make_service()
    service.members.configure("ANT", MemberSystemConfig(host="127.0.0.1",
                                                        port=member_system.port, timeout=5),
                              actor="test")

    def sign_in(pin: str) -> object:
        return service.login(CARD.barcode, pin, library_code="ANT-PERMEKE")

    sign_in(CARD.pin)  # linked to an account of ours
    asked = member_system.asked.count("63")
    assert at_once(lambda: sign_in("0000")) == BOUND
    assert member_system.asked.count("63") - asked == POLICY.max_failures
    assert locked_out(lambda: sign_in(CARD.pin))
    assert member_system.asked.count("63") - asked == POLICY.max_failures  # not even asked


def test_thirty_wrong_passwords_at_once_over_the_api_are_judged_no_more(
        db_url, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Over HTTP the log-in runs inside the request's idempotency transaction: the count
    must be committed before the password is checked there too."""
    with ExitStack() as stack:
        app = registry_app(db_url, tmp_path)
        client = connect("http", app, stack)
        data = patron_data()
        card = client.register(data)
        assert at_once(lambda: client.login(card, "wrong password")) == BOUND
        assert locked_out(lambda: client.login(card, data.password))


# --- The negative control ------------------------------------------------------------------


def counted_the_old_way(service: RegistryService, card: str, password: str) -> None:
    """A log-in as it was before: the count read with the account, the password checked,
    the count plus one written back. Test code only: it must let more wrong passwords be
    judged than the policy allows, or the test above proves nothing."""
    policy, now = service.login_policy, utcnow()
    with service.store.write() as s:
        patron = s.scalar(select(Patron).where(Patron.card_number == card))
        assert patron is not None
        if policy.is_locked(patron.locked_until, now):
            raise RegistryError("account_locked", until=patron.locked_until)
        if not verify(patron.password_hash, password):
            patron.failed_logins, patron.locked_until = policy.after_failure(
                patron.failed_logins, now)
            s.flush()
            s.connection().commit()
            if patron.locked_until is not None:
                raise RegistryError("account_locked", until=patron.locked_until)
            raise RegistryError("login_failed")


@pytest.mark.postgres
def test_the_old_count_lets_more_wrong_passwords_be_judged_at_once(
        create_database) -> None:  # type: ignore[no-untyped-def]
    """(On SQLite the old log-in held the database's write lock while it checked, so it did
    not lose counts there; its member-card path did.)"""
    store = new_store(create_database())
    try:
        service = RegistryService(store)
        card = service.register(patron_data())
        answers = at_once(lambda: counted_the_old_way(service, card, "wrong password"))
        assert answers["login_failed"] > BOUND["login_failed"], answers
    finally:
        store.engine.dispose()
