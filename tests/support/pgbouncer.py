"""A private PgBouncer (Debian's pgbouncer package) on loopback, in transaction pooling mode, in
front of the test PostgreSQL: its own folder, configuration, user list, log and free port.
Every database of that server is reached through it under the same name (`url_for`).

PgBouncer refuses to run as root: as root it is started with `-u nobody`, and its folder is
given to that user. Nothing of the machine's own PgBouncer (its service, /etc/pgbouncer) is
used or touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.storm_support import free_port, stop_process_group

UNPRIVILEGED = "nobody"


def find_pgbouncer() -> str | None:
    """Debian's pgbouncer (/usr/sbin is not on every user's PATH), else one on PATH."""
    if os.access("/usr/sbin/pgbouncer", os.X_OK):
        return "/usr/sbin/pgbouncer"
    return shutil.which("pgbouncer")


def version(binary: str) -> str:
    """"1.18.0" from `pgbouncer --version`'s first line, "PgBouncer 1.18.0"."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    return out.stdout.split()[1]


class PgBouncer:
    """PgBouncer listening on 127.0.0.1:`port`, pooling transactions to the server of
    `server_url` (any database, any user of its user list: trust, as the test server), with
    at most `pool_size` server connections per database and user."""

    def __init__(self, binary: str, server_url: str, pool_size: int = 4):
        self.binary = binary
        server = make_url(server_url)
        self.server_host, self.server_port = server.host or "127.0.0.1", server.port or 5432
        self.user = server.username or "postgres"
        self.pool_size = pool_size
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="kiosk-pgbouncer-"))
        self.ini = self.folder / "pgbouncer.ini"
        self.log_file = self.folder / "pgbouncer.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        # No unix socket (it would go to /tmp/.s.PGSQL.<port>, shared); no admin console.
        return ("[databases]\n"
                f"* = host={self.server_host} port={self.server_port}\n"
                "[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
                f"auth_type = trust\nauth_file = {self.folder / 'users.txt'}\n"
                f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\n"
                "max_client_conn = 200\n"
                f"logfile = {self.log_file}\npidfile = {self.folder / 'pgbouncer.pid'}\n")

    def url_for(self, database_url: str) -> str:
        """`database_url` (a database of the same server) reached through this PgBouncer."""
        parsed = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    def start(self, timeout: float = 10) -> PgBouncer:
        self.ini.write_text(self.config(), encoding="utf-8")
        (self.folder / "users.txt").write_text(f'"{self.user}" ""\n', encoding="utf-8")
        cmd = [self.binary, self.ini.as_posix()]
        if os.geteuid() == 0:
            owner = pwd.getpwnam(UNPRIVILEGED)
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            cmd[1:1] = ["-u", UNPRIVILEGED]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n"
                                   + self.log())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not listen within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)  # SIGTERM: PgBouncer's fast exit
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""
