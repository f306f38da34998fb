"""`kiosk registry doctor`: is this registry host fit to serve the terminals?

Its settings (the same refusals as the start, and the secret key shared by every registry
host, which `kiosk registry serve` requires), its database (it answers, its migrations are
current) and the connections it may open at full load against what PostgreSQL accepts. Each
check answers one `doctor.Result`; nothing is created or migrated here. `connection_budget`
is the rule, in plain Python; `check_connections` asks the database for its numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from . import config as config_module
from .doctor import FAIL, OK, SKIP, WARN, Result, check_secret_key, database_missing
from .registry import schema
from .registry.store import PGBOUNCER, make_engine

# Beside the workers, on each host: the hourly housekeeping (`kiosk registry purge`) holds
# one connection for its lock and works on another; one more for a command run by hand or a
# backup's pg_dump meanwhile.
HOUSEKEEPING_CONNECTIONS = 2
BY_HAND_CONNECTIONS = 1
# A request holds up to 2 connections at once (kiosk.registry.store.POOL_SIZE says why).
CONNECTIONS_PER_REQUEST = 2
# Past this share of what PostgreSQL accepts, little is left for psql, monitoring, another
# application on the same server or a second registry host added later.
ROOM = 0.8


@dataclass(frozen=True)
class Serving:
    """What the registry host runs: `kiosk registry serve`'s workers and threads, each
    worker's background senders (mail, academy: one connection each while they work) and
    its pool; `hosts` registry hosts like it share the database."""

    workers: int
    threads: int
    senders: int
    pool_size: int
    max_overflow: int
    hosts: int = 1

    @property
    def per_worker(self) -> int:
        return self.pool_size + self.max_overflow

    @property
    def steady(self) -> int:
        """The connections one worker's threads and senders keep busy under load (a request
        holds one most of the time): the pool should keep that many open."""
        return self.threads + self.senders

    @property
    def at_once(self) -> int:
        """The most connections one worker's threads and senders may hold at once."""
        return self.threads * CONNECTIONS_PER_REQUEST + self.senders

    @property
    def at_full_load(self) -> int:
        """The most connections all of it may hold at once."""
        return self.hosts * (self.workers * self.per_worker + HOUSEKEEPING_CONNECTIONS
                             + BY_HAND_CONNECTIONS)

    def sum_text(self) -> str:
        one = (f"{self.workers} workers × ({self.pool_size} + {self.max_overflow}) + "
               f"{HOUSEKEEPING_CONNECTIONS + BY_HAND_CONNECTIONS} for housekeeping and a "
               "command by hand")
        return one if self.hosts == 1 else f"{self.hosts} hosts × ({one})"


def serving_from(cfg: Mapping[str, Any], workers: int, threads: int, hosts: int) -> Serving:
    senders = sum(bool(cfg[key].strip()) for key in ("SMTP_HOST", "ACADEMY_SCIM_URL"))
    return Serving(workers, threads, senders, cfg["DATABASE_POOL_SIZE"],
                   cfg["DATABASE_MAX_OVERFLOW"], hosts)


def connection_budget(serving: Serving, max_connections: int, reserved: int) -> Result:
    """The connections the registry may open at full load against the `max_connections`
    PostgreSQL accepts, less those `reserved` for superusers: FAIL when they do not fit
    (under load, requests would fail with "too many clients"), WARN when a worker's pool
    keeps fewer open than its threads and senders keep busy (each request past them would
    open and close its own) or allows fewer than they may hold at once (requests would
    wait), or when little room is left."""
    accepted = max_connections - reserved
    need = serving.at_full_load
    sums = (f"{need} connections at full load ({serving.sum_text()}); PostgreSQL accepts "
            f"{accepted} (max_connections {max_connections} − {reserved} reserved)")
    if need > accepted:
        return Result("connections", FAIL, f"{sums}. Lower KIOSK_WORKERS, "
                      "KIOSK_DATABASE_POOL_SIZE or KIOSK_DATABASE_MAX_OVERFLOW, or raise "
                      "max_connections in postgresql.conf (PostgreSQL must restart), or put "
                      "PgBouncer in front.")
    if serving.pool_size < serving.steady or serving.per_worker < serving.at_once:
        return Result("connections", WARN, f"{sums}. But a worker's {serving.threads} "
                      f"threads and {serving.senders} sender(s) keep {serving.steady} "
                      f"connections busy and may need {serving.at_once} at once (a request "
                      f"up to {CONNECTIONS_PER_REQUEST}): requests would wait for one, or "
                      "open and close one each time. Set KIOSK_DATABASE_POOL_SIZE to at least "
                      f"{serving.steady} and KIOSK_DATABASE_MAX_OVERFLOW to at least "
                      f"{serving.at_once - max(serving.pool_size, serving.steady)}.")
    if need > accepted * ROOM:
        return Result("connections", WARN, f"{sums}: over {ROOM:.0%}, little room is left "
                      "for psql, monitoring or another registry host. Lower KIOSK_WORKERS "
                      "or the pool, or raise max_connections.")
    return Result("connections", OK, sums)


def _server_limits(engine: Engine) -> tuple[int, int]:
    """max_connections, and the connections reserved for superusers (and, from PostgreSQL
    16, for the roles of pg_use_reserved_connections)."""
    with engine.connect() as conn:
        rows = {name: setting for name, setting in conn.execute(text(
            "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', "
            "'superuser_reserved_connections', 'reserved_connections')"))}
    reserved = sum(int(rows.get(name, 0)) for name in ("superuser_reserved_connections",
                                                       "reserved_connections"))
    return int(rows["max_connections"]), reserved


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _reason(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:160]}"


def check_config(cfg: Mapping[str, Any]) -> Result:
    """`config.check` as at start. An empty DATABASE_URL is the instance folder's SQLite
    file, and the start makes that folder: it need not exist yet."""
    try:
        config_module.check({**cfg, "DATABASE_URL": cfg["DATABASE_URL"] or "sqlite://"})
    except SystemExit as exc:
        return Result("config", FAIL, str(exc))
    through = " through PgBouncer" if cfg["DATABASE_POOLER"] == PGBOUNCER else ""
    where = _safe_url(cfg["DATABASE_URL"]) if cfg["DATABASE_URL"] else "the instance's SQLite"
    return Result("config", OK, f"database {where}{through}")


def check_database(engine: Engine) -> Result:
    try:
        current = schema.current_revision(engine)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the finding
        return Result("database", FAIL, f"does not answer: {_reason(exc)}")
    if current is None:
        return Result("database", FAIL, "no registry in it yet: run `kiosk registry init` "
                                        "(or `upgrade`)")
    if current != schema.HEAD_REVISION:
        return Result("database", FAIL, f"schema at {current}, this kiosk expects "
                                        f"{schema.HEAD_REVISION}: run `kiosk registry upgrade`")
    return Result("database", OK, f"answers, schema current ({current})")


def check_connections(engine: Engine, cfg: Mapping[str, Any], serving: Serving) -> Result:
    if engine.dialect.name == "sqlite":
        return Result("connections", SKIP, "SQLite: one file on this host, no connection limit")
    if cfg["DATABASE_POOLER"] == PGBOUNCER:
        return Result("connections", SKIP, f"through PgBouncer: {serving.at_full_load} "
                      f"connections to it at full load ({serving.sum_text()}); PgBouncer's "
                      "max_client_conn must allow them, and its default_pool_size is what "
                      "PostgreSQL sees")
    try:
        max_connections, reserved = _server_limits(engine)
    except Exception as exc:  # noqa: BLE001 - the database row says why already
        return Result("connections", SKIP, f"not checked: {_reason(exc)}")
    return connection_budget(serving, max_connections, reserved)


def run_all(cfg: Mapping[str, Any], instance: Path, *, workers: int, threads: int,
            hosts: int) -> list[Result]:
    """The rows in order; `cfg` as `doctor.load_config` reads it, `instance` its folder."""
    configured = check_config(cfg)
    if configured.status != OK:
        return [configured, *(Result(name, SKIP, "configuration refused")
                              for name in ("secret", "database", "connections"))]
    secret = check_secret_key({**cfg, "REGISTRY_URL": ""})  # this host is the registry
    cfg = {**cfg, "DATABASE_URL": cfg["DATABASE_URL"]
           or f"sqlite:///{instance / 'registry.sqlite3'}"}
    if database_missing(cfg["DATABASE_URL"]):  # opening it would create it
        return [configured, secret,
                Result("database", FAIL, "the SQLite file does not exist yet: "
                       "run `kiosk registry init` or `upgrade`"),
                Result("connections", SKIP, "no database")]
    engine = make_engine(cfg["DATABASE_URL"], pool_size=1, max_overflow=0,
                         pooler=cfg["DATABASE_POOLER"])
    try:
        return [configured, secret, check_database(engine),
                check_connections(engine, cfg, serving_from(cfg, workers, threads, hosts))]
    finally:
        engine.dispose()
