"""Fixtures: the app on a fresh SQLite registry, its client and CLI runner, the service itself,
and helpers to make patrons quickly."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kiosk import create_app
from kiosk.registry import schema
from kiosk.registry.domain import NewPatron
from kiosk.registry.seed import load_demo_data, seed, seed_staff
from kiosk.registry.services import RegistryService, utcnow
from kiosk.registry.store import Store, make_engine

IN_CI = os.environ.get("CI", "").lower() == "true"
_serial = itertools.count(1)


def app_config(tmp_path: Path, **extra: object) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
        "WTF_CSRF_ENABLED": False,
        **extra,
    }


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(app_config(tmp_path), instance_path=str(tmp_path))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def service(app: Flask) -> RegistryService:
    return app.extensions["registry_service"]


PG_ADMIN_URL = os.environ.get("KIOSK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason to skip."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).strip()[:120]}"
    return None


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    reason = _postgres_available()
    if reason:
        if IN_CI:
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
        pytest.skip(reason)
    return PG_ADMIN_URL


@pytest.fixture
def create_database(request):  # type: ignore[no-untyped-def]
    """Makes throw-away databases on the test PostgreSQL; drops them after the test."""
    import psycopg

    admin = request.getfixturevalue("postgres_admin")
    made: list[str] = []

    def create() -> str:
        name = f"kiosk_test_{os.getpid()}_{next(_serial)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return admin.rsplit("/", 1)[0] + f"/{name}"

    yield create
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Each registry test runs on SQLite and on PostgreSQL: a factory of fresh database URLs."""
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path / f'registry-{next(_serial)}.sqlite3'}"
    return request.getfixturevalue("create_database")


def new_store(url: str, cap: int = 2000) -> Store:
    store = Store(make_engine(url))
    schema.upgrade(store.engine)
    data = load_demo_data()
    seed(store, data, utcnow().date(), cap=cap)
    seed_staff(store, data, utcnow())
    return store


@pytest.fixture
def make_service(db_url):  # type: ignore[no-untyped-def]
    """A registry service on a fresh database (SQLite and PostgreSQL) with the cap you choose."""
    stores: list[Store] = []

    def make(cap: int = 2000, **kwargs: object) -> RegistryService:
        stores.append(new_store(db_url(), cap))
        return RegistryService(stores[-1], **kwargs)

    yield make
    for store in stores:
        store.engine.dispose()


def patron_data(n: int | None = None, **overrides: object) -> NewPatron:
    n = n if n is not None else next(_serial)
    values: dict = {
        "first_name": "Mia",
        "last_name": f"Janssens{n}",
        "email": f"mia{n}@example.be",
        "birth_date": "1958-03-27",
        "postcode": "2000",
        "library_code": "ANT-PERMEKE",
        "password": "correct horse",
        "phone": "",
        "language": "nl",
        "consent": True,
    }
    values.update(overrides)
    return NewPatron(**values)


def add_patron(service: RegistryService, **overrides: object) -> tuple[str, str]:
    """Register and log in a patron; answers (card number, session token)."""
    data = patron_data(**overrides)
    card = service.register(data)
    token, _ = service.login(card, data.password)
    return card, token


def form_data(**overrides: str) -> dict[str, str]:
    n = next(_serial)
    data = {
        "first_name": "Élise",
        "last_name": "Dubois",
        "email": f"elise{n}@example.be",
        "birth_day": "3",
        "birth_month": "4",
        "birth_year": "1950",
        "postcode": "1000",
        "library": "MUN-MUNTPUNT",
        "phone": "0470 12 34 56",
        "password": "longenough",
        "consent": "y",
    }
    data.update(overrides)
    return data


@pytest.fixture
def registered(client: FlaskClient) -> Iterator[dict[str, str]]:
    """A patron who registered through the form (and so is logged in on `client`)."""
    data = form_data()
    response = client.post("/en/account/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    yield data


TODAY = date.today()


# The demo's staff accounts (kiosk/data/demo_data.json), seeded in every test registry.
STAFF_PASSWORDS = {
    "coordinator": "demo-coordinator",  # coordinator, programme-wide
    "an.peeters": "demo-librarian",  # librarian of ANT (Antwerpen), at ANT-PERMEKE
    "els.maes": "demo-librarian",  # librarian of KOR (Kortrijk), at KOR-CENTRUM
    "it.support": "demo-it-admin",  # IT admin
}


def log_in_staff(client: FlaskClient, username: str, lang: str = "en") -> None:
    """Log a demo staff member in on this test client (CSRF is off in tests)."""
    response = client.post(f"/{lang}/staff/login",
                           data={"username": username, "password": STAFF_PASSWORDS[username]})
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.fixture
def staff_client(app: Flask):  # type: ignore[no-untyped-def]
    """A factory: a fresh test client logged in as the demo staff member you name."""

    def make(username: str, lang: str = "en") -> FlaskClient:
        client = app.test_client()
        log_in_staff(client, username, lang)
        return client

    return make


# --- A real browser: Debian's Chromium through Playwright (never `playwright install`) -------

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]


def browser_missing() -> str | None:
    """None when the real-browser tests can run here, else the reason."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright is not installed ({exc}): pip install playwright"
    if not Path(CHROMIUM).exists():
        return "Chromium not installed: apt-get install chromium"
    return None


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """One Chromium for the whole run, shared by every browser test module: Playwright's
    sync API cannot be started a second time while it runs in the same thread."""
    reason = browser_missing()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true but the browser tests cannot run: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()
