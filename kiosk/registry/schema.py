"""Schema versions: apply the Alembic migrations, and tell whether a database is current."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("kiosk.registry") / "migrations"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to `revision`, in one transaction.

    SQLite changes a column by copying its table and dropping the old one, and dropping a
    table with foreign keys on deletes what refers to it (sessions, seats: ON DELETE
    CASCADE). So, as SQLite's own procedure says, foreign keys are off while it migrates
    (outside the transaction: inside it the PRAGMA does nothing), every reference is checked
    before the commit, and they are on again after it.

    A database already at head is left alone without loading the migration environment:
    every start of a process (and every test's app) checks, few have anything to do."""
    if revision == "head" and is_current(engine):
        return
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys = OFF")
        try:
            with conn.begin():
                cfg = _config()
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration left broken references: {broken[:5]}")
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA foreign_keys = ON")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def make_revision(engine: Engine, message: str) -> None:
    """For developers: autogenerate a migration from the models against a current database."""
    with engine.begin() as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
