"""Fixtures for every folder: the app on a fresh SQLite registry, its client and CLI runner,
the service itself, registry services on SQLite and PostgreSQL, a registered patron, staff
clients. Plain helpers (patron data, configurations, staff passwords…) are in tests/support;
the browser's fixtures in tests/browser/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kiosk.registry.services import RegistryService
from kiosk.registry.store import Store
from tests.support.factories import (
    IN_CI,
    PG_ADMIN_URL,
    build_app,
    form_data,
    log_in_staff,
    new_store,
    postgres_unavailable,
    serial,
)

# The run's header, --quick, a line per long test, the `progress` fixture; the CLI tests' clean
# environment.
pytest_plugins = ["tests.support.progress", "tests.support.cli_environment"]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return build_app(tmp_path)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):  # type: ignore[no-untyped-def]
    return app.test_cli_runner()


@pytest.fixture
def service(app: Flask) -> RegistryService:
    return app.extensions["registry_service"]


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    reason = postgres_unavailable()
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
        name = f"kiosk_test_{os.getpid()}_{next(serial)}"
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
        return lambda: f"sqlite:///{tmp_path / f'registry-{next(serial)}.sqlite3'}"
    return request.getfixturevalue("create_database")


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


@pytest.fixture
def registered(client: FlaskClient) -> Iterator[dict[str, str]]:
    """A patron who registered through the form (and so is logged in on `client`)."""
    data = form_data()
    response = client.post("/en/account/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    yield data


@pytest.fixture
def staff_client(app: Flask):  # type: ignore[no-untyped-def]
    """A factory: a fresh test client logged in as the demo staff member you name."""

    def make(username: str, lang: str = "en") -> FlaskClient:
        client = app.test_client()
        log_in_staff(client, username, lang)
        return client

    return make
