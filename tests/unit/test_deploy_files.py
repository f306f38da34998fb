"""The deploy files under deploy/: systemd units that systemd itself accepts, the nginx site
before the registry (run for real in tests/integration/test_nginx_front.py), the Chromium
policies, the browser's exact flags, the locked-down screen (Chromium under cage on tty1: its
session, and every package and command it names found in Debian's archive; cage itself is never
installed here), and the Windows installer (parsed by PowerShell when it is there, checked for
structure otherwise)."""

from __future__ import annotations

import json
import mmap
import os
import re
import shlex
import shutil
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from kiosk.cli import main as kiosk_cli
from kiosk.config import Config, read_env_file
from kiosk.registry.members import MAX_TIMEOUT as MEMBER_SYSTEM_MAX_TIMEOUT
from kiosk.serving import THREADS, WORKERS
from tests.support.factories import IN_CI
from tests.support.nginx import SITE as NGINX_SITE
from tests.support.nginx import parse_config, seconds, size_bytes, unit_serve_options

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
LINUX = DEPLOY / "linux"
TERMINAL_UNIT = LINUX / "kiosk-terminal.service"
BROWSER_UNIT = LINUX / "kiosk-browser.service"
POLICY = LINUX / "policies" / "kiosk.json"
ENV_EXAMPLE = LINUX / "terminal.env.example"
REGISTRY_UNIT = LINUX / "kiosk-registry.service"
JOBS_UNIT = LINUX / "kiosk-registry-jobs.service"
JOBS_TIMER = LINUX / "kiosk-registry-jobs.timer"
REGISTRY_ENV = LINUX / "registry.env.example"
INSTALLER = DEPLOY / "windows" / "install-kiosk.ps1"
SCREEN_UNIT = LINUX / "kiosk-screen.service"
SCREEN_POLICY = LINUX / "policies" / "kiosk-screen.json"
README = DEPLOY.parent / "README.md"
CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")  # /usr/bin/chromium is Debian's wrapper
APT_LISTS = Path("/var/lib/apt/lists")

KIOSK_URL = "http://127.0.0.1:5000/"
BROWSER_FLAGS = [
    "--kiosk", "--incognito", "--noerrdialogs", "--disable-session-crashed-bubble",
    "--disable-pinch", "--overscroll-history-navigation=0", "--disable-component-update",
    "--lang=nl-BE",
]
SCREEN_USER = "kiosk-screen"
SCREEN_PROFILE = "/run/kiosk-screen/chromium"
SCREEN_FLAGS = [
    "--ozone-platform=wayland", "--kiosk", "--incognito", f"--user-data-dir={SCREEN_PROFILE}",
    "--no-first-run", "--noerrdialogs", "--disable-session-crashed-bubble", "--disable-translate",
    "--disable-features=Translate", "--check-for-update-interval=31536000",
    "--disable-component-update", "--disable-pinch", "--overscroll-history-navigation=0",
    "--lang=nl-BE",
]
# Every program the screen unit runs, and the Debian package that ships it.
SCREEN_COMMANDS = {"/usr/bin/timeout": "coreutils", "/bin/bash": "bash", "/usr/bin/cage": "cage",
                   "/usr/bin/chromium": "chromium"}


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI must run this check: {reason}", pytrace=False)
    pytest.skip(reason)


def _unit(path: Path) -> ConfigParser:
    # strict=False: systemd allows a key more than once (SystemCallFilter=, ExecStart=).
    parser = ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def _exec_start(path: Path) -> list[str]:
    return shlex.split(_unit(path)["Service"]["ExecStart"])


def _assignments(path: Path) -> dict[str, dict[str, list[str]]]:
    """Every value of every key, section by section, as systemd reads them: a key given again
    adds to the list, an empty one empties it (ConfigParser keeps only the last)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert "=" in line and not line.endswith("\\"), line  # no continued lines here
        key, value = (part.strip() for part in line.split("=", 1))
        values = current.setdefault(key, [])
        if value:
            values.append(value)
        else:
            values.clear()
    return sections


def _only(values: list[str]) -> str:
    [value] = values
    return value


def _unit_names(values: list[str]) -> set[str]:
    """The units named by a list setting (After=, Wants=…), given on one line or several."""
    return {name for value in values for name in value.split()}


def _terminal_address() -> tuple[str, str]:
    command = _exec_start(TERMINAL_UNIT)
    options = dict(zip(command[3::2], command[4::2], strict=True))
    return options["--host"], options["--port"]


# --- systemd ------------------------------------------------------------------------------


def _verify(unit_text: str, name: str, tmp_path: Path, *, user: bool) -> None:
    """`systemd-analyze verify` exits 0 on unknown keys and bad values (it only warns), so any
    line about our unit counts as a failure too."""
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is None:
        _skip_or_fail("systemd-analyze not installed (apt-get install systemd)")
    unit = tmp_path / name
    unit.write_text(unit_text, encoding="utf-8")
    env = dict(os.environ)
    args = [systemd_analyze, "verify", str(unit)]
    if user:  # the user manager needs a runtime directory, which a test run has not
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        args.insert(1, "--user")
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    about_us = [line for line in (result.stdout + result.stderr).splitlines() if name in line]
    assert result.returncode == 0 and not about_us, result.stdout + result.stderr


def test_terminal_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point it at this checkout's `kiosk`.
    kiosk = Path(sys.executable).parent / "kiosk"
    assert kiosk.exists(), "install the project (pip install -e .) first"
    text = TERMINAL_UNIT.read_text(encoding="utf-8")
    assert "/opt/kiosk/venv/bin/kiosk " in text
    _verify(text.replace("/opt/kiosk/venv/bin/kiosk ", f"{kiosk} "), TERMINAL_UNIT.name,
            tmp_path, user=False)


def test_browser_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = BROWSER_UNIT.read_text(encoding="utf-8")
    if not Path("/usr/bin/chromium").exists():  # any executable will do for verify
        text = text.replace("/usr/bin/chromium ", f"{sys.executable} ")
    _verify(text, BROWSER_UNIT.name, tmp_path, user=True)


def test_terminal_unit_runs_the_real_command_sandboxed() -> None:
    unit = _unit(TERMINAL_UNIT)
    service = unit["Service"]
    assert service["User"] == "kiosk" and service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/kiosk/terminal.env"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "StateDirectory": "kiosk",
                       "ReadWritePaths": "/var/lib/kiosk"}.items():
        assert service[key] == value, key
    assert unit["Install"]["WantedBy"] == "multi-user.target"

    command = _exec_start(TERMINAL_UNIT)
    assert command[:3] == ["/opt/kiosk/venv/bin/kiosk", "terminal", "serve"]
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert options == {"--host": "127.0.0.1", "--port": "5000"}
    # Only options the command really has (a typo would stop the service at every boot).
    help_text = CliRunner().invoke(kiosk_cli, ["terminal", "serve", "--help"]).output
    for option in options:
        assert option in help_text


def test_environment_example_names_real_settings() -> None:
    """Every KIOSK_* in the example reaches a setting: the instance folder, the rest through
    config.from_environment (KIOSK_<name of a Config attribute>); `kiosk doctor --env-file`
    reads it as systemd does."""
    settings = read_env_file(ENV_EXAMPLE)
    assert {"KIOSK_REGISTRY_URL", "KIOSK_REGISTRY_TOKEN", "KIOSK_LIBRARY_CODE",
            "KIOSK_DEFAULT_LANGUAGE", "KIOSK_INSTANCE_PATH"} <= set(settings)
    state = _unit(TERMINAL_UNIT)["Service"]["StateDirectory"]
    assert settings["KIOSK_INSTANCE_PATH"] == f"/var/lib/{state}"
    for name in set(settings) - {"KIOSK_INSTANCE_PATH"}:
        assert hasattr(Config, name.removeprefix("KIOSK_")), name


@pytest.mark.parametrize("path", [REGISTRY_UNIT, JOBS_UNIT, JOBS_TIMER], ids=lambda p: p.name)
def test_registry_units_pass_systemd_analyze_verify(path: Path, tmp_path: Path) -> None:
    kiosk = Path(sys.executable).parent / "kiosk"
    text = path.read_text(encoding="utf-8").replace("/opt/kiosk/venv/bin/kiosk ", f"{kiosk} ")
    if path.suffix == ".timer":  # verify looks for the service the timer starts, beside it
        (tmp_path / JOBS_UNIT.name).write_text(
            JOBS_UNIT.read_text(encoding="utf-8").replace("/opt/kiosk/venv/bin/kiosk ",
                                                         f"{kiosk} "), encoding="utf-8")
    _verify(text, path.name, tmp_path, user=False)


def test_registry_units_run_real_commands() -> None:
    """The server serves the API and the staff pages on loopback (nginx in front, with
    kiosk-registry.nginx); the timer runs the housekeeping every hour: offers past their
    time, retention."""
    command = _exec_start(REGISTRY_UNIT)
    assert command[:3] == ["/opt/kiosk/venv/bin/kiosk", "registry", "serve"]
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert options["--host"] == "127.0.0.1"
    help_text = CliRunner().invoke(kiosk_cli, ["registry", "serve", "--help"]).output
    for option in options:
        assert option in help_text
    assert _exec_start(JOBS_UNIT) == ["/opt/kiosk/venv/bin/kiosk", "registry", "purge"]
    purge_help = CliRunner().invoke(kiosk_cli, ["registry", "purge", "--help"]).output
    assert "offers" in purge_help and "retention" in purge_help
    timer = _unit(JOBS_TIMER)["Timer"]
    assert timer["OnCalendar"] == "hourly" and timer["Persistent"] == "true"
    for unit in (REGISTRY_UNIT, JOBS_UNIT):
        service = _unit(unit)["Service"]
        assert service["User"] == "kiosk" and service["NoNewPrivileges"] == "yes"
        assert service["EnvironmentFile"] == "/etc/kiosk/registry.env"
    names = [line.split("=", 1)[0] for line in REGISTRY_ENV.read_text().splitlines()
             if line and not line.startswith("#")]
    assert "KIOSK_DATABASE_URL" in names
    state = _unit(REGISTRY_UNIT)["Service"]["StateDirectory"]
    assert read_env_file(REGISTRY_ENV)["KIOSK_INSTANCE_PATH"] == f"/var/lib/{state}"
    for name in set(names) - {"KIOSK_INSTANCE_PATH"}:
        assert name.startswith("KIOSK_") and hasattr(Config, name.removeprefix("KIOSK_")), name


def test_the_registry_unit_leaves_workers_and_threads_to_registry_env() -> None:
    """So that KIOSK_WORKERS and KIOSK_THREADS in registry.env are what runs (an option on
    the command line would win over them), and what `kiosk registry doctor` counts."""
    command = _exec_start(REGISTRY_UNIT)
    assert "--workers" not in command and "--threads" not in command
    for name in ("serve", "doctor"):
        help_text = CliRunner().invoke(kiosk_cli, ["registry", name, "--help"]).output
        assert f"env var: KIOSK_WORKERS; default: {WORKERS}" in " ".join(help_text.split())
        assert f"env var: KIOSK_THREADS; default: {THREADS}" in " ".join(help_text.split())
    assert "# KIOSK_WORKERS=2\n# KIOSK_THREADS=2\n" in REGISTRY_ENV.read_text()
    assert (WORKERS, THREADS) == (2, 2)  # as the README tells: 2 workers × 2 threads


def test_browser_unit_has_exactly_the_kiosk_flags() -> None:
    command = _exec_start(BROWSER_UNIT)
    assert command == ["/usr/bin/chromium", *BROWSER_FLAGS, KIOSK_URL]
    unit = _unit(BROWSER_UNIT)
    assert unit["Service"]["Restart"] == "always"
    assert unit["Install"]["WantedBy"] == "graphical-session.target"
    # It waits for the terminal's port, the one the terminal unit listens on.
    assert "/dev/tcp/127.0.0.1/5000" in unit["Service"]["ExecStartPre"]


# --- The locked-down screen: Chromium under cage on tty1 ---------------------------------


def test_screen_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # cage is not installed here (CI must not install it): verify only wants an executable.
    text = SCREEN_UNIT.read_text(encoding="utf-8")
    assert "\nExecStart=/usr/bin/cage " in text
    text = text.replace("\nExecStart=/usr/bin/cage ", f"\nExecStart={sys.executable} ")
    if not Path("/usr/bin/chromium").exists():
        text = text.replace("/usr/bin/chromium ", f"{sys.executable} ")
    _verify(text, SCREEN_UNIT.name, tmp_path, user=False)


def test_screen_is_a_login_session_on_tty1_in_place_of_its_login_prompt() -> None:
    unit = _assignments(SCREEN_UNIT)
    service = unit["Service"]
    terminal_user = _unit(TERMINAL_UNIT)["Service"]["User"]
    # Its own user: the terminal's may read the registry token, the screen's must not.
    assert _only(service["User"]) == SCREEN_USER != terminal_user
    expected = {"Type": "simple", "PAMName": "login", "TTYPath": "/dev/tty1",
                "UtmpIdentifier": "tty1", "StandardInput": "tty-fail",
                "StandardOutput": "journal", "StandardError": "journal"}
    assert {key: _only(service[key]) for key in expected} == expected
    assert "XDG_SESSION_TYPE=wayland" in service["Environment"]
    assert "getty@tty1.service" in _unit_names(unit["Unit"]["Conflicts"])
    assert {"systemd-user-sessions.service", "plymouth-quit-wait.service",
            "getty@tty1.service"} <= _unit_names(unit["Unit"]["After"])
    # Booting multi-user.target (GRUB, for maintenance) leaves tty1 to its login prompt.
    assert unit["Install"] == {"WantedBy": ["graphical.target"]}


def test_screen_starts_chromium_again_whenever_it_ends() -> None:
    unit = _assignments(SCREEN_UNIT)
    assert _only(unit["Service"]["Restart"]) == "always"  # a closed window exits with 0
    assert 0 < int(_only(unit["Service"]["RestartSec"])) <= 5
    assert _only(unit["Unit"]["StartLimitIntervalSec"]) == "0"  # never gives up


def test_screen_runs_only_chromium_in_kiosk_mode_at_the_terminals_address() -> None:
    host, port = _terminal_address()
    command = _exec_start(SCREEN_UNIT)
    # No cage option before "--": -s would let Ctrl+Alt+F1…F12 reach a console.
    assert command[:3] == ["/usr/bin/cage", "--", "/usr/bin/chromium"]
    assert command[3:] == [*SCREEN_FLAGS, f"http://{host}:{port}/"]
    assert set(BROWSER_FLAGS) <= set(SCREEN_FLAGS)  # all the desktop unit had, and more
    # A fresh profile at each start: home and profile in the runtime directory, which systemd
    # empties whenever the unit stops or restarts.
    service = _assignments(SCREEN_UNIT)["Service"]
    home = f"/run/{_only(service['RuntimeDirectory'])}"
    assert "RuntimeDirectoryPreserve" not in service
    assert f"HOME={home}" in service["Environment"]
    assert SCREEN_PROFILE.startswith(f"{home}/")


def test_screen_waits_for_the_terminal_to_answer() -> None:
    host, port = _terminal_address()
    unit = _assignments(SCREEN_UNIT)
    assert "kiosk-terminal.service" in _unit_names(unit["Unit"]["Wants"])
    assert "kiosk-terminal.service" in _unit_names(unit["Unit"]["After"])
    # "+": outside the PAM session, else each start would open and close one more on tty1.
    wait = _only(unit["Service"]["ExecStartPre"])
    assert wait.startswith("+/usr/bin/timeout ") and f"/dev/tcp/{host}/{port}" in wait


def _apt_cache() -> str:
    """apt-cache, with package lists to search."""
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        _skip_or_fail("apt-cache not installed (not a Debian system)")
    if not any(APT_LISTS.glob("*_Packages*")):
        pytest.skip("apt has no package lists to search (apt-get update)")
    return str(apt_cache)


def _in_debian(apt_cache: str, package: str) -> bool:
    result = subprocess.run([apt_cache, "show", "--no-all-versions", package],
                            capture_output=True, text=True, timeout=60)
    return result.returncode == 0 and f"Package: {package}\n" in result.stdout


def _installed_from(package: str, path: str) -> bool | None:
    """Whether dpkg says `path` comes from `package`; None where the package is not installed
    (cage: CI never installs it)."""
    dpkg_query = shutil.which("dpkg-query")
    if dpkg_query is None:
        return None
    status = subprocess.run([dpkg_query, "-W", "-f=${db:Status-Status}", package],
                            capture_output=True, text=True, timeout=60)
    if status.stdout != "installed":
        return None
    owner = subprocess.run([dpkg_query, "-S", path], capture_output=True, text=True, timeout=60)
    return f"{package}: {path}" in owner.stdout.splitlines()


def test_every_program_the_screen_runs_comes_from_a_debian_package() -> None:
    service = _assignments(SCREEN_UNIT)["Service"]
    commands = {word for line in service["ExecStartPre"] + service["ExecStart"]
                for word in shlex.split(line.lstrip("+-@!:"))
                if re.fullmatch(r"/(usr/)?s?bin/[\w.-]+", word)}
    assert commands == set(SCREEN_COMMANDS)
    apt_cache = _apt_cache()
    assert not _in_debian(apt_cache, "kiosk-no-such-package")  # the check can fail
    assert [package for package in SCREEN_COMMANDS.values()
            if not _in_debian(apt_cache, package)] == []
    assert [path for path, package in SCREEN_COMMANDS.items()
            if _installed_from(package, path) is False] == []


def _section(text: str, heading: str) -> str:
    start = text.index(f"### {heading}\n")
    end = text.find("\n### ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _apt_get_installs(text: str) -> list[list[str]]:
    """The packages of each `apt-get install` line (in code, or in a unit's comments)."""
    return [found.split() for found in re.findall(r"^[#\s]*apt-get install ([^#\n]+)", text,
                                                   re.M)]


def test_the_screen_recipe_installs_packages_debian_has() -> None:
    in_unit = _apt_get_installs(SCREEN_UNIT.read_text(encoding="utf-8"))
    readme = _section(README.read_text(encoding="utf-8"), "Deploying library PCs")
    assert len(in_unit) == 1 and _apt_get_installs(readme) == in_unit
    [packages] = in_unit
    assert {"cage", "chromium"} <= set(packages)
    apt_cache = _apt_cache()
    assert [package for package in packages if not _in_debian(apt_cache, package)] == []


def test_readme_installs_the_screen_as_its_unit_says() -> None:
    """The README's recipe and the unit's header: same user, same policy files, same unit."""
    readme = _section(README.read_text(encoding="utf-8"), "Deploying library PCs")
    header = SCREEN_UNIT.read_text(encoding="utf-8").split("\n[Unit]", 1)[0]
    for step in (f"useradd --system --home-dir /run/{SCREEN_USER} --no-create-home "
                 f"--shell /usr/sbin/nologin {SCREEN_USER}",
                 f"-t /etc/chromium/policies/managed policies/{POLICY.name} "
                 f"policies/{SCREEN_POLICY.name}",
                 "systemctl enable kiosk-screen", "systemctl set-default graphical.target"):
        assert step in readme and step in header, step
    assert "kiosk-browser.service /etc/systemd/user/" not in readme  # the desktop recipe is gone


# --- nginx before the registry ------------------------------------------------------------


def test_nginx_site_fronts_the_registry_units_address_with_the_apps_limits() -> None:
    """What the live test cannot see from outside: gunicorn's address is the unit's, the
    limits follow the app's, the deadlines outlast the app's own, and both public ports exist."""
    site = parse_config(NGINX_SITE.read_text(encoding="utf-8"))
    options = unit_serve_options()
    [upstream] = site.all("upstream")
    assert upstream.one("server").args == (f"{options['--host']}:{options['--port']}",)
    zone = site.one("limit_conn_zone").args[1].removeprefix("zone=").split(":")[0]
    plain, tls = site.all("server")
    assert [d.args for d in plain.all("listen")] == [("80",), ("[::]:80",)]
    assert plain.one("return").args == ("301", "https://$host$request_uri")
    assert [d.args for d in tls.all("listen")] == [("443", "ssl"), ("[::]:443", "ssl")]
    for server in (plain, tls):
        assert server.one("server_tokens").args == ("off",)
    readme = (DEPLOY.parent / "README.md").read_text(encoding="utf-8")
    for placeholder in ("ssl_certificate", "ssl_certificate_key"):
        assert tls.one(placeholder).args[0] in readme  # the README says what to put there
    assert size_bytes(tls.one("client_max_body_size").args[0]) == Config.MAX_CONTENT_LENGTH
    assert size_bytes(tls.one("client_body_buffer_size").args[0]) >= Config.MAX_CONTENT_LENGTH
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert 0 < seconds(tls.one(name).args[0]) <= 15, name
    assert 0 < seconds(tls.one("keepalive_timeout").args[0]) <= 30
    assert tls.one("limit_conn").args[0] == zone
    location = tls.one("location")
    assert location.args == ("/",)
    assert location.one("proxy_pass").args == (f"http://{upstream.args[0]}",)
    assert location.one("proxy_request_buffering").args == ("on",)
    assert location.one("proxy_buffering").args == ("on",)
    # gunicorn ends a worker after 30 s; a member system's card check may take MAX_TIMEOUT
    read_timeout = seconds(location.one("proxy_read_timeout").args[0])
    assert max(30, MEMBER_SYSTEM_MAX_TIMEOUT) < read_timeout <= 60
    assert 0 < seconds(location.one("proxy_connect_timeout").args[0]) <= 10
    headers = dict(d.args for d in location.all("proxy_set_header"))
    assert headers["X-Forwarded-For"] == "$remote_addr"
    assert headers["X-Forwarded-Proto"] == "$scheme"
    assert headers["Host"] == headers["X-Forwarded-Host"] == "$host"



def test_nginx_site_hands_a_failed_request_to_another_host_but_never_resends_a_post() -> None:
    """More than one registry host: a request one host refused or left unanswered goes to
    the next, once and soon; a POST one host received is never sent to another (staff forms
    and the log-in carry no Idempotency-Key). The README's second host is one line away."""
    text = NGINX_SITE.read_text(encoding="utf-8")
    [tls] = [server for server in parse_config(text).all("server") if server.all("location")]
    location = tls.one("location")
    # Not `non_idempotent`: nginx then resends only what no host has received.
    assert location.one("proxy_next_upstream").args == ("error", "timeout")
    assert location.one("proxy_next_upstream_tries").args == ("2",)
    # A host that does not even take the connection still leaves time to try the next one.
    connect = seconds(location.one("proxy_connect_timeout").args[0])
    assert connect < seconds(location.one("proxy_next_upstream_timeout").args[0]) <= 15
    assert "    # server 10.0.0.3:8000;\n}" in text
    readme = (DEPLOY.parent / "README.md").read_text(encoding="utf-8")
    assert "### More than one registry host" in readme

# --- Chromium policy ----------------------------------------------------------------------


def test_chromium_policy_locks_the_browser_down() -> None:
    policy = json.loads(POLICY.read_text(encoding="utf-8"))
    expected = {
        "TranslateEnabled": False, "PasswordManagerEnabled": False,
        "AutofillAddressEnabled": False, "AutofillCreditCardEnabled": False,
        "BrowserSignin": 0, "IncognitoModeAvailability": 2,  # forced, as --incognito
        "DownloadRestrictions": 3,  # block all downloads
        "DeveloperToolsAvailability": 2, "PrintingEnabled": True,  # receipts are printed
    }
    assert {key: policy.get(key) for key in expected} == expected
    # Idle backstop: longer than the kiosk's own reset (60 s + 30 s), whole minutes.
    assert isinstance(policy["IdleTimeout"], int) and 2 <= policy["IdleTimeout"] <= 15
    known_actions = {"close_browsers", "close_tabs", "reload_pages", "sign_out",
                     "clear_browsing_history", "clear_download_history",
                     "clear_cookies_and_other_site_data", "clear_cached_images_and_files",
                     "clear_password_signing", "clear_autofill", "clear_site_settings",
                     "clear_hosted_app_data"}
    actions = set(policy["IdleTimeoutActions"])
    assert actions <= known_actions
    assert {"clear_browsing_history", "clear_cookies_and_other_site_data",
            "clear_cached_images_and_files", "reload_pages"} <= actions
    assert policy["URLBlocklist"] == ["*"]
    assert "http://127.0.0.1:5000" in policy["URLAllowlist"]
    assert all(url.startswith(("http://127.0.0.1:5000", "chrome://print"))
               for url in policy["URLAllowlist"])


def test_screen_policy_closes_file_dialogs_and_save_as_pdf_but_keeps_printers() -> None:
    """A file dialog (Save as…, Save as PDF in print preview) would let a patron browse the
    PC's files; the library's printers ("local") stay for the receipt."""
    policy = json.loads(SCREEN_POLICY.read_text(encoding="utf-8"))
    assert policy == {"AllowFileSelectionDialogs": False,
                      "PrinterTypeDenyList": ["pdf", "extension"]}
    base = json.loads(POLICY.read_text(encoding="utf-8"))
    assert base["PrintingEnabled"] is True
    # Both files sit in managed/: a policy set in both would be a conflict Chromium resolves.
    assert not set(policy) & set(base)


def _chromium_knows(binary: mmap.mmap, policy: str) -> bool:
    # Chromium's policy names are NUL-terminated strings in the binary, each on its own.
    return binary.find(f"\0{policy}\0".encode()) >= 0


def test_every_policy_set_is_one_the_installed_chromium_knows() -> None:
    """A misspelt policy name is ignored by Chromium without a word at the kiosk."""
    if not CHROMIUM_BINARY.exists():
        _skip_or_fail(f"{CHROMIUM_BINARY} not installed (apt-get install chromium)")
    names = [name for path in (POLICY, SCREEN_POLICY)
             for name in json.loads(path.read_text(encoding="utf-8"))]
    with CHROMIUM_BINARY.open("rb") as file, mmap.mmap(file.fileno(), 0,
                                                       access=mmap.ACCESS_READ) as binary:
        assert not _chromium_knows(binary, "AllowFileSelectionDialog")  # the check can fail
        assert [name for name in names if not _chromium_knows(binary, name)] == []


# --- Windows installer --------------------------------------------------------------------


def _powershell_errors(source: str) -> list[str]:
    """Syntax errors in a PowerShell script: PowerShell's own parser where `pwsh` is
    installed, else the tree-sitter PowerShell grammar (from PyPI: Debian has no pwsh)."""
    pwsh = shutil.which("pwsh")
    if pwsh is not None:
        script = ("$errors = $null; $tokens = $null; "
                  "[void][System.Management.Automation.Language.Parser]::ParseInput("
                  "[Console]::In.ReadToEnd(), [ref]$tokens, [ref]$errors); "
                  "$errors | ForEach-Object { $_.ToString() }; exit $errors.Count")
        result = subprocess.run([pwsh, "-NoProfile", "-NonInteractive", "-Command", script],
                                input=source, capture_output=True, text=True, timeout=120)
        return [] if result.returncode == 0 else [result.stdout + result.stderr]
    import tree_sitter_powershell
    from tree_sitter import Language, Parser

    data = source.encode("utf-8")
    tree = Parser(Language(tree_sitter_powershell.language())).parse(data)
    found: list[str] = []
    pending = [tree.root_node]
    while pending:
        node = pending.pop()
        if node.type == "ERROR" or node.is_missing:
            snippet = data[node.start_byte:node.end_byte][:60].decode("utf-8", "replace")
            found.append(f"line {node.start_point[0] + 1}: {node.type} {snippet!r}")
        pending.extend(node.children)
    return sorted(found)


def _written_scripts(source: str) -> dict[str, str]:
    """The scripts the installer writes (its double-quoted here-strings), expanded as
    PowerShell would with sample values, so that they are parsed too."""
    samples = {"$kioskExe": r"C:\Kiosk\venv\Scripts\kiosk.exe",
               "$envFile": r"C:\Kiosk\venv\var\kiosk-instance\terminal.env",
               "$Port": "5000", "$edge": r"C:\Program Files (x86)\Microsoft\Edge\msedge.exe",
               "$edgeArgs": "--kiosk http://127.0.0.1:5000/ --edge-kiosk-type=public-browsing"}
    scripts = {}
    for match in re.finditer(r'@"\r?\n(.*?)\r?\n"@ \| Set-Content -LiteralPath \$(\w+)', source,
                             re.S):
        body = match.group(1)
        for name, value in sorted(samples.items(), key=lambda kv: -len(kv[0])):
            body = re.sub(r"(?<!`)" + re.escape(name) + r"\b", lambda _m, v=value: v, body)
        scripts[match.group(2)] = body.replace("`$", "$")
    return scripts


def test_installer_parses_as_powershell() -> None:
    source = INSTALLER.read_text(encoding="utf-8")
    assert _powershell_errors(source) == []
    written = _written_scripts(source)
    assert set(written) == {"runner", "browserRunner"}, written.keys()
    assert "kiosk.exe' terminal serve --env-file 'C:\\Kiosk" in written["runner"]
    assert "Start-Process -FilePath 'C:\\Program Files (x86)" in written["browserRunner"]
    for name, script in written.items():
        assert not re.search(r"\$(kioskExe|envFile|Port|edge)\b", script), (name, script)
        assert _powershell_errors(script) == [], (name, script)


def test_powershell_parse_catches_mistakes() -> None:
    """The negative control: the same installer with one brace or parenthesis lost."""
    source = INSTALLER.read_text(encoding="utf-8")
    for good, bad in (("foreach ($name in $dwords.Keys) {", "foreach ($name in $dwords.Keys {"),
                      ("if (-not $edge) { throw", "if (-not $edge) { throw (")):
        assert good in source
        assert _powershell_errors(source.replace(good, bad, 1)), bad


_PAIRS = {")": "(", "}": "{", "]": "["}


def _brackets_balance(source: str) -> str | None:
    """A small PowerShell lexer: skips comments, quoted strings and here-strings, and checks
    (), {} and [] nest properly. Returns the first problem, or None."""
    stack: list[tuple[str, int]] = []
    i, line = 0, 1
    while i < len(source):
        char = source[i]
        if source.startswith(("@'\n", '@"\n', "@'\r\n", '@"\r\n'), i):
            end = source.find("\n" + source[i + 1] + "@", i)
            if end < 0:
                return f"line {line}: here-string not closed"
            line += source.count("\n", i, end + 1)
            i = end + 3
            continue
        if source.startswith("<#", i):
            end = source.find("#>", i)
            if end < 0:
                return f"line {line}: block comment not closed"
            line += source.count("\n", i, end)
            i = end + 2
            continue
        if char == "#":
            i = source.find("\n", i)
            i = len(source) if i < 0 else i
            continue
        if char in "'\"":
            j = i + 1
            while j < len(source):
                if char == '"' and source[j] == "`":
                    j += 2
                    continue
                if source[j] == char:
                    if source[j + 1:j + 2] == char:  # '' or "" is an escaped quote
                        j += 2
                        continue
                    break
                j += 1
            else:
                return f"line {line}: string not closed"
            line += source.count("\n", i, j)
            i = j + 1
            continue
        if char == "`":  # escape, e.g. a line continuation
            i += 2
            continue
        if char == "\n":
            line += 1
        elif char in "({[":
            stack.append((char, line))
        elif char in ")}]":
            if not stack or stack[-1][0] != _PAIRS[char]:
                return f"line {line}: unexpected {char!r}"
            stack.pop()
        i += 1
    return f"line {stack[-1][1]}: {stack[-1][0]!r} not closed" if stack else None


def test_brackets_check_catches_mistakes() -> None:
    assert _brackets_balance("if ($a) { '}' } # }\n<# ( #>\n@'\n{\n'@\n") is None
    assert _brackets_balance("if ($a) { foo\n") == "line 1: '{' not closed"
    assert _brackets_balance("foo(bar]") == "line 1: unexpected ']'"


def test_installer_structure() -> None:
    source = INSTALLER.read_text(encoding="utf-8")
    assert _brackets_balance(source) is None, _brackets_balance(source)
    code = re.sub(r"<#.*?#>", "", source, flags=re.S)
    param = re.search(r"^param\(", code, re.M)
    strict = code.find("Set-StrictMode -Version Latest")
    assert param and 0 < strict and param.start() < strict
    assert "$ErrorActionPreference = 'Stop'" in code
    # The first [string] after [Parameter(Mandatory)] is the parameter it applies to.
    mandatory = re.findall(r"\[Parameter\(Mandatory\)\](?:(?!\[string\])[\s\S])*\[string\] \$(\w+)",
                           code)
    assert mandatory == ["WheelPath", "RegistryUrl", "RegistryToken", "LibraryCode", "KioskUser"]
    assert "[ValidateSet('nl', 'fr', 'en')]" in code
    # Edge in public-browsing kiosk mode on the terminal's address.
    assert "--kiosk $KioskUrl --edge-kiosk-type=public-browsing" in code
    assert '$KioskUrl = "http://127.0.0.1:$Port/"' in code and "$Port = 5000" in code
    # Nothing fetched from the internet at run time (pip's own index aside).
    for download in ("Invoke-WebRequest", "Invoke-RestMethod", "Start-BitsTransfer",
                     "DownloadFile", "DownloadString", "WebClient", "curl", "wget", "iwr ",
                     "irm "):
        assert download.lower() not in code.lower(), download
    urls = set(re.findall(r"https?://[^\s'\"`]+", code))
    assert urls <= {"http://127.0.0.1:$Port/", "http://127.0.0.1:$Port"}, urls


def test_installer_serves_with_waitress_checks_with_doctor_and_keeps_edge_up() -> None:
    """What the installer writes, read as text: the terminal is `kiosk terminal serve` (waitress)
    reading terminal.env itself, its log in the instance folder (the one folder LOCAL SERVICE
    may write), `kiosk doctor` on the same file at the end and as kiosk-doctor.cmd, and Edge
    started again whenever it is not running."""
    code = re.sub(r"<#.*?#>", "", INSTALLER.read_text(encoding="utf-8"), flags=re.S)
    serve = re.search(r"& '\$kioskExe' terminal serve (.+)", code)
    assert serve is not None
    args = serve.group(1).split()
    assert args[:2] == ["--env-file", "'$envFile'"]
    options = dict(zip(args[::2], args[1::2], strict=True))
    assert options["--host"] == "127.0.0.1" and options["--port"] == "$Port"
    help_text = CliRunner().invoke(kiosk_cli, ["terminal", "serve", "--help"]).output
    doctor_help = CliRunner().invoke(kiosk_cli, ["doctor", "--help"]).output
    assert all(option in help_text for option in options)
    assert "--env-file" in doctor_help
    assert "$logFile = Join-Path $instance 'logs\\terminal.log'" in code
    assert '"KIOSK_LOG_FILE=$logFile"' in code
    # The instance folder's ACL: LOCAL SERVICE (S-1-5-19) may modify, inherited by logs\.
    assert "& icacls.exe $instance /inheritance:r" in code and "'*S-1-5-19:(OI)(CI)M'" in code
    assert "& $kioskExe doctor --env-file $envFile" in code
    assert '"`"$kioskExe`" doctor --env-file `"$envFile`" %*"' in code
    assert re.search(r"if \(-not \(Get-Process -Name msedge[^\n]*\n\s*Start-Process "
                     r"-FilePath '\$edge' -ArgumentList '\$edgeArgs'", code)
