"""What the tests make: the test app (its configuration and its one builder, `build_app`), a
migrated and seeded registry store, patrons (as data, registered, or as a sign-up form), and
the demo staff accounts with their passwords; whether this is CI and where the test
PostgreSQL is."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from datetime import date
from functools import cache
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from kiosk.app import create_app, create_registry_app
from kiosk.registry import schema
from kiosk.registry.domain import NewPatron
from kiosk.registry.seed import load_demo_data, seed, seed_staff
from kiosk.registry.services import RegistryService, utcnow
from kiosk.registry.store import Store, make_engine

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("KIOSK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TODAY = date.today()
# What a confirmation page's button sends (kiosk.terminal.forms.ConfirmForm): a change that
# cannot be undone is made only with it.
CONFIRMED = {"confirm": "yes"}

# Numbers for what must be unique within a run: e-mail addresses, database names and files.
serial = itertools.count(1)


def app_config(tmp_path: Path, **extra: object) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
        "WTF_CSRF_ENABLED": False,
        **extra,
    }


def build_app(folder: Path, *, registry: bool = False, **config: object) -> Flask:
    """The app under test, configured by `app_config(folder, **config)` with `folder` as its
    instance folder (made if need be): the kiosk terminal with its embedded registry (the
    default; with REGISTRY_URL, a terminal talking HTTP), or with `registry=True` the central
    registry server's app (API, health checks, staff pages)."""
    folder.mkdir(parents=True, exist_ok=True)
    factory = create_registry_app if registry else create_app
    cfg = app_config(folder, **config)
    database = folder / "registry.sqlite3"
    # The registry the app would make itself (migrated, seeded with the demo data), copied.
    if (cfg["DATABASE_URL"] == f"sqlite:///{database}" and not database.exists()
            and not {"REGISTRY_URL", "SEED_DEMO", "AUTO_MIGRATE"} & set(config)
            and not {"KIOSK_SEED_DEMO", "KIOSK_AUTO_MIGRATE"} & set(os.environ)):
        shutil.copyfile(seeded_registry_file(utcnow().date(), None), database)
    return factory(cfg, instance_path=str(folder))


def new_store(url: str, cap: int | None = 2000) -> Store:
    """A migrated registry seeded with the demo data and `cap` (None: the demo's)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        shutil.copyfile(seeded_registry_file(utcnow().date(), cap),
                        url.removeprefix("sqlite:///"))
        return Store(make_engine(url))
    return _migrated_and_seeded(url, cap)


def _migrated_and_seeded(url: str, cap: int | None) -> Store:
    store = Store(make_engine(url))
    schema.upgrade(store.engine)
    data = load_demo_data()
    seed(store, data, utcnow().date(), cap=cap)
    seed_staff(store, data, utcnow())
    return store


@cache
def seeded_registry_file(today: date, cap: int | None) -> Path:
    """A SQLite registry migrated and seeded once per test process (and day: the seed's
    module of the month follows the date); tests start from copies of it. Migrating and
    seeding take 0.25 s, which hundreds of tests would each pay."""
    folder = Path(tempfile.mkdtemp(prefix="kiosk-test-registry-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "registry.sqlite3"
    _migrated_and_seeded(f"sqlite:///{path}", cap).engine.dispose()
    return path


def patron_data(n: int | None = None, **overrides: object) -> NewPatron:
    n = n if n is not None else next(serial)
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
    n = next(serial)
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


def postgres_unavailable() -> str | None:
    """None when the test PostgreSQL answers, else the reason to skip."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(exc).strip()[:120]}"
    return None
