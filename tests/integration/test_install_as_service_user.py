"""The production install runs as written: the README's commands and the units' ExecStart, on a
root-owned install, as an unprivileged service user, with the shipped example files filled in.

A folder stands for `/` (only the paths move: tests/support/service_install.py). Root builds
nothing by hand: the wheel goes into /opt/kiosk/venv by the README's own line, the example
files into /etc/kiosk by its `install` lines, then edited as its `edit it` comments ask.
Then, as the service user: the `systemd-run … kiosk registry init` line, the `sudo -u kiosk …
--env-file` lines, the housekeeping unit, the registry unit (gunicorn, behind the shipped
nginx site with a test CA), the registry host's own `kiosk doctor`, a library PC's against
the registry (every row OK) and the PC's terminal unit. The venv and the configuration do
not change while they run. Slow: a wheel, a venv and a pip install.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support import service_install
from tests.support.factories import IN_CI
from tests.support.nginx import SITE, Nginx, find_nginx, make_certificate, render_site
from tests.support.service_install import LINUX, Install, Unit, readme_line, systemd_run_command
from tests.support.storm_support import free_port, stop_process_group
from tests.support.wheel import REPO, build_wheel

PASSWORD = "een lang geheim wachtwoord"
REGISTRY_UNIT = LINUX / "kiosk-registry.service"
JOBS_UNIT = LINUX / "kiosk-registry-jobs.service"
TERMINAL_UNIT = LINUX / "kiosk-terminal.service"


def the_readme_commands() -> dict[str, str]:
    """The README's lines this test runs, found by how they start: a README that no longer
    has one of them (or has two different ones) fails here, before anything is installed."""
    kiosk = "sudo -u kiosk /opt/kiosk/venv/bin/kiosk"
    return {
        "venv": readme_line("python3 -m venv /opt/kiosk/venv && "),
        "registry.env": readme_line("install -d /etc/kiosk && install -m 0640 -o root -g kiosk "
                                    "registry.env.example"),
        "terminal.env": readme_line("install -d /etc/kiosk && install -m 0640 -g kiosk "
                                    "terminal.env.example"),
        "template": readme_line("kiosk registry init --write-template"),
        "init": readme_line("read -rs -p"),
        "upgrade": readme_line(f"{kiosk} registry upgrade --env-file"),
        "add-terminal": readme_line(f"{kiosk} registry add-terminal --env-file"),
        "purge": readme_line(f"{kiosk} registry purge --env-file"),
        "registry doctor": readme_line(f"{kiosk} doctor --env-file /etc/kiosk/registry.env"),
        "database doctor": readme_line(f"{kiosk} registry doctor --env-file "
                                       "/etc/kiosk/registry.env"),
        "terminal doctor": readme_line(f"{kiosk} doctor --env-file /etc/kiosk/terminal.env"),
    }


def test_the_readme_shows_every_command_this_test_runs() -> None:
    commands = the_readme_commands()
    assert "/opt/kiosk/venv/bin/pip install -c constraints.txt" in commands["venv"]
    init = systemd_run_command(commands["init"])
    assert init[-10:] == ["/opt/kiosk/venv/bin/kiosk", "registry", "init",
                          "/etc/kiosk/programme.json", "--coordinator", "an.peeters",
                          "--coordinator-name", "An Peeters", "--password-file", "-"], init
    assert {"-p", "User=kiosk"} <= set(init) and "EnvironmentFile=/etc/kiosk/registry.env" in init
    for name in ("upgrade", "add-terminal", "purge", "registry doctor", "database doctor"):
        assert "--env-file /etc/kiosk/registry.env" in commands[name], commands[name]
    assert Unit.read(REGISTRY_UNIT).exec_start[1:3] == ["registry", "serve"]
    assert Unit.read(JOBS_UNIT).exec_start[1:] == ["registry", "purge"]
    assert Unit.read(TERMINAL_UNIT).exec_start[1:3] == ["terminal", "serve"]


# --- The install ----------------------------------------------------------------------------


def _require(reason: str | None) -> None:
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true (run as root) must run this test: {reason}")
        pytest.skip(reason)


@pytest.fixture
def database(postgres_admin: str) -> Iterator[str]:
    """A fresh database owned by a role of its own, with a password: the service's
    KIOSK_DATABASE_URL."""
    name = f"kiosk_service_{os.getpid()}_{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    with psycopg.connect(postgres_admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
    admin = make_url(postgres_admin)
    try:
        yield str(admin.set(username=name, password=password, database=name).render_as_string(
            hide_password=False))
    finally:
        with psycopg.connect(postgres_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def root_folder() -> Iterator[Path]:
    """The folder that stands for `/`: root's, 0755, outside pytest's own (0700) folder."""
    folder = Path(tempfile.mkdtemp(prefix="kiosk-install-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _edit(path: Path, settings: dict[str, str], added: dict[str, str] | None = None) -> None:
    """What the README's `edit it` comments mean: the placeholder lines KEY=… get their
    values (each must be there), and `added` lines go at the end. Owner and mode stay."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for key, value in settings.items():
        found = [i for i, line in enumerate(lines) if line.startswith(f"{key}=")]
        assert len(found) == 1, f"{key}= is not in {path.name} once"
        lines[found[0]] = f"{key}={value}"
    lines += [f"{key}={value}" for key, value in (added or {}).items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _ok(done: subprocess.CompletedProcess[str], what: str) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{what}: exit {done.returncode}\n{output[-6000:]}"
    for bad in ("Traceback", "PermissionError", "Permission denied", "[ERROR]"):
        assert bad not in output, f"{what}: {bad}\n{output[-6000:]}"
    return done.stdout


def _doctor_rows(output: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[1] for line in output.splitlines()[1:] if line.strip()}


def _wait_for(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> bytes:
    """The body of `url`'s first answer 200, once the server started by a unit gives one."""
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, f"{log.name}: exited\n{log.read_text(errors='replace')}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                return answer.read()
        except OSError:
            assert time.monotonic() < deadline, f"{url} not up:\n{log.read_text()}"
            time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_root_owned_install_runs_as_the_service_user_as_the_readme_says(
        database: str, root_folder: Path, tmp_path: Path) -> None:
    _require(service_install.unavailable())
    nginx = find_nginx()
    _require(None if nginx else "nginx is not installed (apt-get install nginx)")
    assert nginx is not None
    commands = the_readme_commands()
    user = service_install.ensure_service_user()
    assert user.pw_uid != 0 and user.pw_gid != 0
    install = Install(root_folder, user.pw_name)

    # As root, in the folder the README's lines run in: the wheel and constraints.txt beside
    # it, and deploy/linux/'s files.
    here = tmp_path / "deploy"
    shutil.copytree(LINUX, here)
    build_wheel(tmp_path / "checkout", here)
    shutil.copy(REPO / "constraints.txt", here)
    started = time.monotonic()
    install.as_root(commands["venv"], cwd=here, timeout=600)
    installed_in = time.monotonic() - started
    print(f"\nthe README's venv line (python3 -m venv, pip install): {installed_in:.1f} s")
    venv_bin = install.path("/opt/kiosk/venv/bin")
    assert (venv_bin / "kiosk").is_file()
    install.as_root(commands["registry.env"], cwd=here)
    install.as_root(commands["terminal.env"], cwd=here)
    etc = install.path("/etc/kiosk")
    for name in ("registry.env", "terminal.env"):
        st = (etc / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, user.pw_gid, 0o640), name
    _edit(etc / "registry.env", {
        "KIOSK_DATABASE_URL": database,
        "KIOSK_SECRET_KEY": secrets.token_urlsafe(48),
        "KIOSK_INSTANCE_PATH": str(install.path("/var/lib/kiosk-registry")),
    })
    install.as_root(commands["template"], cwd=etc, bin_dir=venv_bin)
    programme = etc / "programme.json"
    text = programme.read_text(encoding="utf-8")
    assert '"cap": 1000' in text and "academy.example.be" in text
    programme.write_text(text.replace('"cap": 1000', '"cap": 250').replace(
        "academy.example.be", "academy.test.be"), encoding="utf-8")

    # The service user may write in the state directories only: everything else under the
    # root (the venv, /etc/kiosk) is compared before and after it runs.
    states = (install.path("/var/lib/kiosk-registry"), install.path("/var/lib/kiosk"))
    for folder in states:
        install.make_state_directory(folder.name)
    before = service_install.snapshot(root_folder, states)

    # The first start, as the README runs it: systemd-run, the password on standard input.
    init = install.systemd_run(systemd_run_command(commands["init"]), stdin=PASSWORD + "\n")
    assert "Registry ready: 2 institution(s), 3 library(ies)" in _ok(init, "init")
    assert "cap 250" in init.stdout
    assert "(current)" in _ok(install.sudo(commands["upgrade"]), "upgrade")
    added = _ok(install.sudo(commands["add-terminal"]), "add-terminal")
    token = re.search(r"^(kt_\S+)$", added, re.MULTILINE)
    assert token, added
    assert "Ended 0 seat offer(s)" in _ok(install.sudo(commands["purge"]), "purge")
    assert "Ended 0 seat offer(s)" in _ok(install.run_unit(Unit.read(JOBS_UNIT)), "jobs unit")
    host = _ok(install.sudo(commands["registry doctor"]), "registry doctor")
    assert set(_doctor_rows(host).values()) <= {"OK", "SKIP"}, host
    assert _doctor_rows(host)["migrations"] == "OK", host
    assert f"free in {states[0]}" in host, host  # the state directory, not the venv
    database = _ok(install.sudo(commands["database doctor"]), "database doctor")
    assert _doctor_rows(database) == {"config": "OK", "secret": "OK", "database": "OK",
                                      "connections": "OK"}, database
    assert service_install.changes(before, service_install.snapshot(root_folder, states)) == []

    # The registry unit, behind the shipped nginx site (TLS with a test CA the PC trusts).
    port = free_port()
    install.ports["8000"] = str(port)
    log, terminal_log = tmp_path / "registry.log", tmp_path / "terminal.log"
    server = install.start_unit(Unit.read(REGISTRY_UNIT), log)
    front: Nginx | None = None
    try:
        ready = _wait_for(f"http://127.0.0.1:{port}/readyz", server, log)
        assert json.loads(ready) == {"status": "ready"}
        certificate = make_certificate(tmp_path)
        ca = etc / "registry-ca.pem"
        shutil.copy(certificate.ca, ca)
        ca.chmod(0o644)
        https_port = free_port()
        site = render_site(SITE.read_text(encoding="utf-8"), http_port=free_port(),
                           https_port=https_port, upstream=f"127.0.0.1:{port}",
                           certificate=certificate)
        (tmp_path / "nginx").mkdir()
        front = Nginx(nginx, tmp_path / "nginx", site, https_port).start()

        # A library PC's settings, edited as the README says, then its own check.
        _edit(etc / "terminal.env", {
            "KIOSK_REGISTRY_URL": f"https://127.0.0.1:{https_port}",
            "KIOSK_REGISTRY_TOKEN": token[1],
            "KIOSK_INSTANCE_PATH": str(install.path("/var/lib/kiosk")),
        }, added={"KIOSK_REGISTRY_CA_FILE": str(ca)})
        before = service_install.snapshot(root_folder, states)
        checked = install.sudo(commands["terminal doctor"])
        report = checked.stdout + checked.stderr
        assert checked.returncode == 0, report
        rows = _doctor_rows(checked.stdout)
        assert set(rows) == {"config", "secret", "ca", "proxy", "registry", "token", "library",
                             "migrations", "clock", "translations", "disk"}, report
        # A terminal's secret key is its own (made in its state directory): not checked here.
        assert {name: status for name, status in rows.items() if status != "OK"} == \
            {"secret": "SKIP"}, report

        # The PC's own unit: the patron pages, its secret key made in its state directory.
        install.ports["5000"] = str(free_port())
        terminal = install.start_unit(Unit.read(TERMINAL_UNIT), terminal_log)
        try:
            url = f"http://127.0.0.1:{install.ports['5000']}"
            _wait_for(f"{url}/nl/", terminal, terminal_log)
            with urllib.request.urlopen(url + "/", timeout=10) as answer:  # noqa: S310
                assert answer.url == url + "/nl/"  # KIOSK_DEFAULT_LANGUAGE of terminal.env
                assert '<html lang="nl"' in answer.read().decode("utf-8")
        finally:
            stop_process_group(terminal)
    finally:
        if front is not None:
            front.stop()
        stop_process_group(server)
    for unit_log in (log, terminal_log):
        served = unit_log.read_text(encoding="utf-8", errors="replace")
        for bad in ("Traceback", "PermissionError", "Permission denied", "[ERROR]"):
            assert bad not in served, f"{unit_log.name}: {bad}\n{served[-6000:]}"
    key = states[1] / "secret_key"
    assert (key.stat().st_uid, key.stat().st_mode & 0o777) == (user.pw_uid, 0o600)

    # Nothing was written outside the state directories: the venv is as pip left it (no
    # .pyc, no instance folder), /etc/kiosk as root left it, and no file under the root is
    # the service user's elsewhere.
    assert service_install.changes(before, service_install.snapshot(root_folder, states)) == []
    theirs = [path for path in root_folder.rglob("*") if path.lstat().st_uid == user.pw_uid
              and not any(path.is_relative_to(state) for state in states)]
    assert theirs == []
    rest = time.monotonic() - started - installed_in
    print(f"the rest, from the env files to doctor: {rest:.1f} s")

