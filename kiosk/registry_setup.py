"""Which registry a terminal talks to: the embedded default runs it in this process."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask, current_app, has_request_context, request
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from .registry import api_server, passwords, schema
from .registry.client import LocalRegistryClient, RegistryClient
from .registry.domain import LoginPolicy
from .registry.http_client import HttpRegistryClient
from .registry.seed import load_demo_data, seed, seed_staff
from .registry.services import RegistryService, utcnow
from .registry.store import Store, make_engine

_log = logging.getLogger("kiosk.registry")


def build_service(app: Flask) -> RegistryService:
    cfg = app.config
    passwords.return_big_blocks_to_the_system()  # this process will hash passwords
    store = Store(make_engine(cfg["DATABASE_URL"], isolation=cfg["DATABASE_ISOLATION"],
                              pool_size=cfg["DATABASE_POOL_SIZE"],
                              max_overflow=cfg["DATABASE_MAX_OVERFLOW"],
                              pooler=cfg["DATABASE_POOLER"]))
    if cfg["AUTO_MIGRATE"]:
        schema.upgrade(store.engine)
    else:
        require_current_schema(store.engine)
    if cfg["SEED_DEMO"]:
        data = load_demo_data()
        seed(store, data, utcnow().date())
        seed_staff(store, data, utcnow())
    service = RegistryService(
        store,
        clock=cfg.get("CLOCK", utcnow),
        min_age=cfg["MIN_AGE"],
        login_policy=LoginPolicy(
            max_failures=cfg["LOGIN_MAX_FAILURES"],
            lock_for=timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"]),
        ),
        session_max=timedelta(seconds=cfg["SESSION_MAX_SECONDS"]),
    )
    # Mail off (no SMTP_HOST): notices are not even queued.
    service.notices.enabled = bool(cfg["SMTP_HOST"].strip())
    # E-mails about new courses: signed stop links on the registry's public address.
    service.alerts.secret_key = cfg["SECRET_KEY"]
    service.alerts.link_base = cfg["PUBLIC_URL"].strip()
    service.alerts.settle = timedelta(minutes=cfg["ALERTS_SETTLE_MINUTES"])
    return service


def require_current_schema(engine: Engine) -> None:
    """Refuse to serve a database whose schema is not current. A database that is away for
    now (restarting, not up yet after a reboot) is no reason to refuse: each gunicorn worker
    builds its app, and one that fails to boot makes gunicorn stop the whole registry, so a
    worker restarted while PostgreSQL restarts would take every terminal down with it.
    The registry serves instead: requests answer "busy" and /readyz "unavailable" (it checks
    the schema too) until the database answers. libpq gives no SQLSTATE for a refused
    connection, so a wrong database name is not told apart from a restart: the warning
    says which it is, as do /readyz and `kiosk registry doctor`."""
    try:
        current = schema.is_current(engine)
    except OperationalError as exc:
        _log.warning("The registry database does not answer (%s): serving anyway, every "
                     "request answers busy until it does.", str(exc.orig).strip())
        return
    if not current:
        raise SystemExit("The registry database schema is not current: "
                         "run `kiosk registry upgrade` first.")


def init_service(app: Flask) -> RegistryService:
    service = build_service(app)
    app.extensions["registry_service"] = service
    return service


def init_app(app: Flask) -> None:
    """The terminal's registry: in-process (embedded default, API mounted too) or over HTTP.
    The API's writes never reach Flask's CSRF check: kiosk.registry.api_server answers them."""
    if app.config.get("REGISTRY_URL"):
        app.extensions["registry"] = HttpRegistryClient.from_config(app.config)
        return
    app.extensions["registry"] = LocalRegistryClient(init_service(app), where=_kiosk_place)
    api_server.init_app(app)


def _kiosk_place() -> str:
    """Where a librarian's action at this kiosk comes from, for the audit log."""
    where = current_app.config.get("LIBRARY_CODE") or "kiosk"
    address = request.remote_addr if has_request_context() else ""
    return f"{where} {address or ''}".strip()


def registry() -> RegistryClient:
    return current_app.extensions["registry"]
