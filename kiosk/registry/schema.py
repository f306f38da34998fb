"""Schema versions: apply the Alembic migrations, and tell whether a database is current.

Alembic (with mako and pygments) costs a serving process about 10 MB and a fifth of a second
to import, and most starts have nothing to migrate. So whether a database is current is read
with plain SQL against `HEAD_REVISION`, and Alembic is imported only when a migration or a
new revision is made (tests/integration/test_schema.py holds the constant to Alembic's head).
"""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from .store import make_engine

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration in migrations/versions: update it with each new revision.
HEAD_REVISION = "0012"
VERSION_TABLE = "alembic_version"


def _config() -> Config:
    from alembic.config import Config  # only to migrate (see the module's docstring)

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

    A database already at head is left alone without loading Alembic: every start of a
    process (and every test's app) checks, few have anything to do."""
    if revision == "head" and is_current(engine):
        return
    from alembic import command  # only to migrate (see the module's docstring)

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


def upgrade_in_child(database_url: str) -> bool:
    """Migrate the database at `database_url` to head in a short-lived child process, so
    that a serving process that finds it behind (a new demo) never holds Alembic. Answers
    whether there was anything to do; raises if the migration failed."""
    engine = make_engine(database_url)
    try:
        if is_current(engine):
            return False
    finally:
        engine.dispose()
    subprocess.run([sys.executable, "-m", __name__, database_url], check=True)
    return True


def alembic_head() -> str | None:
    """The head as Alembic reads it from the migration scripts (for the check of
    HEAD_REVISION)."""
    from alembic.script import ScriptDirectory  # only for this check

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: no schema yet), as Alembic records it."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == HEAD_REVISION


def make_revision(engine: Engine, message: str) -> None:
    """For developers: autogenerate a migration from the models against a current database."""
    from alembic import command  # only for developers

    with engine.begin() as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


if __name__ == "__main__":  # upgrade_in_child's child: python -m kiosk.registry.schema URL
    upgrade(make_engine(sys.argv[1]))
