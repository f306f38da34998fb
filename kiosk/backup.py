"""Back up and restore the registry: SQLite with its online backup API, PostgreSQL with
pg_dump / pg_restore (custom format).

Every failure is a `BackupError` with a one-line reason; no message ever holds a password.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from .registry import schema
from .registry.store import make_engine

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"  # the first bytes of a pg_dump custom-format archive


class BackupError(Exception):
    """A refusal or failure, told in one line."""


@dataclass(frozen=True)
class Restored:
    """What came back, so the operator sees it at once."""

    revision: str | None
    current: bool
    patrons: int
    seated: int
    waiting: int
    counters_match: bool  # the programme row's counts agree with the places rows


def shown(url: str) -> str:
    """The URL as it may be printed: password masked."""
    return make_url(url).render_as_string(hide_password=True)


def _kind(url: str) -> str:
    try:
        driver = make_url(url).drivername
    except (ArgumentError, ValueError):  # never echo it: it may hold a password
        raise BackupError("the database URL is not a database URL") from None
    if driver.startswith("sqlite"):
        return "sqlite"
    if driver.startswith("postgres"):
        return "postgresql"
    raise BackupError(f"cannot back up a {driver!r} database (sqlite or postgresql only)")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if database in (None, "", ":memory:"):
        raise BackupError("an in-memory SQLite database has nothing to back up or restore")
    return Path(database)


def _file_kind(path: Path) -> str:
    """'sqlite', 'pgdump' or 'other', read from the first bytes."""
    if not path.exists():
        raise BackupError(f"{path}: no such file")
    if not path.is_file():
        raise BackupError(f"{path}: not a file")
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "pgdump"
    return "other"


def _temp_beside(dest: Path) -> Path:
    """A 0600 file in DEST's folder: a backup holds personal data, and a rename in the same
    file system is atomic, so DEST is either the old backup or the whole new one."""
    folder = dest.parent if str(dest.parent) else Path(".")
    if not folder.is_dir():
        raise BackupError(f"{folder}: folder does not exist")
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=folder)
    os.close(fd)
    return Path(name)


# --- SQLite ---------------------------------------------------------------------------------


def _sqlite_connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    target = path.resolve().as_uri() + ("?mode=ro" if read_only else "")
    try:
        conn = sqlite3.connect(target, uri=True, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot open: {exc}") from None


def _sqlite_tables(conn: sqlite3.Connection, path: Path) -> set[str]:
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a SQLite database ({exc})") from None
    return {name for (name,) in rows}


def _sqlite_backup(url: str, dest: Path) -> None:
    path = _sqlite_path(url)
    if _file_kind(path) != "sqlite":
        raise BackupError(f"{path}: not a SQLite database")
    tmp = _temp_beside(dest)
    try:
        src = _sqlite_connect(path)
        try:
            if "alembic_version" not in _sqlite_tables(src, path):
                raise BackupError(f"{path}: not a kiosk registry (no alembic_version table)")
            out = sqlite3.connect(tmp)
            try:
                # One step (pages=-1): a consistent snapshot under a read transaction, which in
                # WAL mode never blocks the kiosk's writers (they go on writing to the WAL).
                src.backup(out)
                # A single self-contained file: no -wal/-shm to forget when copying it away.
                out.execute("PRAGMA journal_mode = DELETE")
                if out.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise BackupError("the backup failed its integrity check")
            finally:
                out.close()
        finally:
            src.close()
        os.replace(tmp, dest)
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup failed: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _sqlite_restore(url: str, src_path: Path, force: bool) -> None:
    kind = _file_kind(src_path)
    if kind == "pgdump":
        raise BackupError(f"{src_path}: a PostgreSQL dump; restore it into a PostgreSQL database")
    if kind != "sqlite":
        raise BackupError(f"{src_path}: not a registry backup (neither SQLite nor pg_dump)")
    target = _sqlite_path(url)
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: folder does not exist")
    if target.exists() and target.samefile(src_path):
        raise BackupError(f"{src_path} is the target database itself")
    src = _sqlite_connect(src_path, read_only=True)
    try:
        if "alembic_version" not in _sqlite_tables(src, src_path):
            raise BackupError(f"{src_path}: not a kiosk registry backup (no alembic_version)")
        dst = _sqlite_connect(target)
        try:
            if _sqlite_tables(dst, target) and not force:
                raise BackupError(f"{target} already holds a database; "
                                  "use --force to replace it")
            # Through the backup API, not a file copy: it takes the target's write lock, so a
            # running kiosk waits for it and then reads the restored pages (WAL mode is kept).
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite restore failed: {exc}") from None
    finally:
        src.close()


# --- PostgreSQL -----------------------------------------------------------------------------


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL (postgresql://, no SQLAlchemy driver) without its password, and the
    environment that carries the password: an argument would show in `ps`."""
    parsed: URL = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools "
                          "(e.g. apt-get install postgresql-client)")
    return found


def _run(args: list[str], env: dict[str, str], password: str | None) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[0] if lines else f"exit status {done.returncode}"
        if password:
            reason = reason.replace(password, "***")
        raise BackupError(f"{Path(args[0]).name} failed: {reason}")


def _connect_error(url: str, exc: SQLAlchemyError) -> BackupError:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return BackupError(f"cannot reach {shown(url)}: {reason[0] if reason else 'unknown error'}")


def _postgres_tables(engine: Engine, url: str) -> int:
    try:
        with engine.connect() as conn:
            return conn.scalar(text(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = current_schema()")) or 0
    except SQLAlchemyError as exc:
        raise _connect_error(url, exc) from None


def _postgres_backup(url: str, dest: Path) -> None:
    pg_dump = _tool("pg_dump")
    engine = make_engine(url)
    try:
        if not _postgres_tables(engine, url):  # also tells "unreachable" in one line
            raise BackupError(f"{shown(url)}: no tables, nothing to back up")
    finally:
        engine.dispose()
    libpq, env = _libpq(url)
    tmp = _temp_beside(dest)
    try:
        _run([pg_dump, "--format=custom", "--no-password", f"--file={tmp}", f"--dbname={libpq}"],
             env, make_url(url).password)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _postgres_restore(url: str, src_path: Path, force: bool) -> None:
    kind = _file_kind(src_path)
    if kind == "sqlite":
        raise BackupError(f"{src_path}: a SQLite backup; restore it into a SQLite database")
    if kind != "pgdump":
        raise BackupError(f"{src_path}: not a pg_dump custom-format archive")
    pg_restore = _tool("pg_restore")
    engine = make_engine(url)
    try:
        if _postgres_tables(engine, url) and not force:
            raise BackupError(f"{shown(url)} already holds tables; use --force to replace them")
    finally:
        engine.dispose()
    libpq, env = _libpq(url)
    # --single-transaction: a failed restore leaves the target as it was, not half replaced.
    _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--single-transaction",
          "--no-password", f"--dbname={libpq}", str(src_path)], env, make_url(url).password)


# --- Both -----------------------------------------------------------------------------------


def backup(url: str, dest: Path) -> None:
    """Write a backup of the registry at URL to DEST (replaced atomically)."""
    if _kind(url) == "sqlite":
        _sqlite_backup(url, dest)
    else:
        _postgres_backup(url, dest)


def restore(url: str, src: Path, *, force: bool = False) -> Restored:
    """Restore SRC into the registry at URL; refuse a non-empty target unless `force`."""
    if _kind(url) == "sqlite":
        _sqlite_restore(url, src, force)
    else:
        _postgres_restore(url, src, force)
    return inspect(url)


def inspect(url: str) -> Restored:
    """Schema revision and the counts an operator checks after a restore."""
    engine = make_engine(url)
    try:
        revision = schema.current_revision(engine)
        with engine.connect() as conn:
            def count(sql: str) -> int:
                return conn.scalar(text(sql)) or 0

            patrons = count("SELECT count(*) FROM patrons")
            seated = count("SELECT count(*) FROM places WHERE status = 'seated'")
            waiting = count("SELECT count(*) FROM places WHERE status = 'waiting'")
            counters = conn.execute(text(
                "SELECT seats_taken, waiting FROM programme WHERE id = 1")).first()
    except SQLAlchemyError as exc:
        raise BackupError(f"restored, but the registry cannot be read: "
                          f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}") from None
    finally:
        engine.dispose()
    return Restored(
        revision=revision, current=revision == schema.HEAD_REVISION, patrons=patrons,
        seated=seated, waiting=waiting,
        counters_match=counters is not None and tuple(counters) == (seated, waiting),
    )


def report(restored: Restored, echo: Callable[[str], None]) -> None:
    echo(f"Restored: {restored.patrons} patron(s), {restored.seated} seat(s) taken, "
         f"{restored.waiting} waiting.")
    if not restored.counters_match:
        echo("Warning: the programme's seat counters do not match the places rows.")
