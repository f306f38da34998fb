"""The wheel carries templates, static files, compiled catalogues and data, and works installed.

Builds the wheel from a clean copy of the checkout (no build/, no .mo: the build must compile
them), installs it in a fresh venv outside the repository and renders a page in every language
from a working directory outside the repository. Then, with the installed `kiosk` command only:
a registry on loopback (SQLite, waitress), a terminal configured by its kiosk.cfg, `kiosk doctor`
green, the terminal served by waitress in every language, and `kiosk doctor` red (saying why)
once its token is revoked. Slow: a build plus a pip install.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.wheel import REPO, build_wheel, clean_env, run

pytestmark = pytest.mark.slow

LANGS = ("nl", "fr", "en")

def _venv_bin(venv_dir: Path, name: str) -> Path:
    if os.name == "nt":
        return venv_dir / "Scripts" / f"{name}.exe"
    return venv_dir / "bin" / name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel-src") / "checkout",
                       tmp_path_factory.mktemp("wheel-dist"))


@pytest.fixture(scope="module")
def installed_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv_dir = tmp_path_factory.mktemp("wheel-venv") / "venv"
    assert not venv_dir.resolve().is_relative_to(REPO)
    run([sys.executable, "-m", "venv", str(venv_dir)], cwd=venv_dir.parent, timeout=300)
    python = _venv_bin(venv_dir, "python")
    # As the deploy files install it: the versions CI tested.
    run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(REPO / "constraints.txt"),
         str(wheel)],
        cwd=venv_dir.parent,
        timeout=1200,
    )
    return venv_dir


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())

    required = {"kiosk/__init__.py", "kiosk/data/demo_data.json", "kiosk/static/kiosk.css"}
    required |= {f"kiosk/translations/{lang}/LC_MESSAGES/messages.mo" for lang in LANGS}
    assert not required - names, f"missing from the wheel: {sorted(required - names)}"
    assert any(n.startswith("kiosk/templates/") and n.endswith(".html") for n in names)

    stray = sorted(
        n
        for n in names
        if n.split("/")[0] in {"tests", "benchmarks", "templates", "static", "translations"}
    )
    assert not stray, f"outside the kiosk package in the wheel: {stray}"

    # Everything in the checkout must be in the wheel: a new subpackage not listed in
    # setup.cfg, or a static file type not covered by package_data, fails here.
    expected = set()
    for path in (REPO / "kiosk").rglob("*.py"):
        if "__pycache__" not in path.parts:
            expected.add(path.relative_to(REPO).as_posix())
    for folder in ("templates", "static"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                expected.add("kiosk/" + path.relative_to(REPO).as_posix())
    for path in (REPO / "translations").glob("*/LC_MESSAGES/*.po"):
        expected.add("kiosk/" + path.relative_to(REPO).as_posix())
    missing = sorted(expected - names)
    assert not missing, f"in the checkout but not in the wheel (see setup.cfg): {missing}"


def test_wheel_declares_the_licence(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        dist_info = next(n.split("/")[0] for n in archive.namelist() if ".dist-info/" in n)
        metadata = archive.read(f"{dist_info}/METADATA").decode("utf-8")
        licence = archive.read(f"{dist_info}/licenses/LICENSE").decode("utf-8")
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: EUPL-1.2" in headers, headers
    assert "License-File: LICENSE" in headers, headers
    assert licence == (REPO / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("EUROPEAN UNION PUBLIC LICENCE v. 1.2\n")


_SMOKE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    venv_dir, repo, instance = (Path(arg).resolve() for arg in sys.argv[1:4])

    import kiosk
    from kiosk.app import create_app
    from kiosk.paths import resource_dir

    package = Path(kiosk.__file__).resolve().parent
    assert package.is_relative_to(venv_dir), f"kiosk imported from {package}, not the venv"
    assert not package.is_relative_to(repo), f"kiosk imported from the repo: {package}"
    for name in ("templates", "static", "translations"):
        assert resource_dir(name) == package / name, (name, resource_dir(name))
    for lang in ("nl", "fr", "en"):
        mo = package / "translations" / lang / "LC_MESSAGES" / "messages.mo"
        assert mo.is_file(), f"missing {mo}"

    app = create_app(
        {"TESTING": True, "SECRET_KEY": "x", "WTF_CSRF_ENABLED": False},
        instance_path=str(instance),
    )
    client = app.test_client()
    for lang in ("nl", "fr", "en"):
        response = client.get(f"/{lang}/")
        body = response.get_data(as_text=True)
        assert response.status_code == 200, (lang, response.status_code, body[:2000])
        assert f'<html lang="{lang}"' in body, (lang, body[:2000])
    response = client.get("/static/kiosk.css")
    assert response.status_code == 200, response.status_code
    response.close()
    print("wheel smoke test OK")
    """
)


def test_installed_wheel_renders_every_language(
    installed_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("wheel-cwd")
    script = workdir / "smoke.py"
    script.write_text(_SMOKE_SCRIPT, encoding="utf-8")
    instance = workdir / "instance"
    python = _venv_bin(installed_venv, "python")
    result = run(
        [str(python), str(script), str(installed_venv), str(REPO), str(instance)],
        cwd=workdir,
        timeout=300,
    )
    assert "wheel smoke test OK" in result.stdout


def test_console_script_installed(installed_venv: Path) -> None:
    script = _venv_bin(installed_venv, "kiosk")
    assert script.is_file(), f"no console script at {script}"


# --- The installed product end to end: registry, doctor, terminal, revoked token ------------

PAGE_WORDS = {
    "/nl/": ("nl", "Hulp nodig?"),
    "/fr/": ("fr", "Besoin d"),
    "/en/": ("en", "Need help? Ask a librarian"),
    "/fr/courses/": ("fr", "Word pour débutants"),  # a course title from the registry's data
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - loopback
            return answer.status, answer.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


class _Server:
    """A `kiosk … serve` subprocess in its own process group, logging to a file."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path, url: str):
        self.cmd, self.url, self.log = cmd, url, log
        flags: dict = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
            if os.name == "nt"
            else {"start_new_session": True}
        )
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, **flags
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-6000:]

    def wait_until_up(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{' '.join(self.cmd)} exited with {self.proc.returncode}\n{self.output()}"
                )
            try:
                _get(self.url + path, timeout=2)
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.url}{path} not up within {timeout:g} s\n{self.output()}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                if os.name == "nt":
                    self.proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
                else:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            if os.name == "nt":
                self.proc.kill()
            else:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        elif os.name != "nt":
            try:  # anything the group leader left behind (gunicorn workers, …)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass


class _Registry:
    """A registry served by the installed `kiosk registry serve --server waitress` on loopback,
    on its own SQLite file and instance folder."""

    def __init__(self, venv: Path, root: Path):
        self.kiosk, self.root = str(_venv_bin(venv, "kiosk")), root
        database = (root / "registry.sqlite3").as_posix()
        self.env = clean_env(
            KIOSK_INSTANCE_PATH=str(root / "instance"), KIOSK_DATABASE_URL=f"sqlite:///{database}",
            KIOSK_SECRET_KEY="wheel-test-registry-key",
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: _Server | None = None

    def cli(self, *args: str) -> str:
        return run(
            [self.kiosk, "registry", *args], cwd=self.root, timeout=120, env=self.env
        ).stdout

    def add_terminal(self, name: str) -> tuple[int, str]:
        """A new terminal for ANT-PERMEKE: its id and its token."""
        out = self.cli("add-terminal", "--library", "ANT-PERMEKE", "--name", name)
        token = re.search(r"^(kt_\S+)$", out, re.MULTILINE)
        terminal_id = re.search(r"^Terminal (\d+) ", out, re.MULTILINE)
        assert token and terminal_id, out
        listed = self.cli("terminals")
        assert re.search(
            # never seen yet: "offline" until its first call
            rf"^\s*{terminal_id[1]}\s+ANT-PERMEKE\s+{re.escape(name)}\s+never\s.*offline$",
            listed,
            re.MULTILINE,
        ), listed
        return int(terminal_id[1]), token[1]

    def start(self) -> None:
        cmd = [
            self.kiosk,
            "registry",
            "serve",
            "--server",
            "waitress",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        self.server = _Server(cmd, self.root, self.env, self.root / "registry.log", self.url)
        self.server.wait_until_up("/healthz")
        status, body = _get(self.url + "/readyz")
        assert status == 200, body

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture(scope="module")
def registry(installed_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Registry]:
    reg = _Registry(installed_venv, tmp_path_factory.mktemp("wheel-registry"))
    out = reg.cli("upgrade", "--demo-data")
    assert "(current)" in out, out
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()


def _terminal_instance(root: Path, registry: _Registry, token: str) -> Path:
    instance = root / "instance"
    instance.mkdir(parents=True)
    (instance / "kiosk.cfg").write_text(
        f"REGISTRY_URL = {registry.url!r}\n"
        f"REGISTRY_TOKEN = {token!r}\n"
        'LIBRARY_CODE = "ANT-PERMEKE"\n'
        'DEFAULT_LANGUAGE = "fr"\n',
        encoding="utf-8",
    )
    return instance


def _doctor(venv: Path, instance: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`kiosk doctor` as installed, configured only by the instance folder; its table."""
    result = run(
        [str(_venv_bin(venv, "kiosk")), "doctor"],
        cwd=instance.parent,
        timeout=120,
        env=clean_env(KIOSK_INSTANCE_PATH=str(instance)),
        check=False,
    )
    table = {}
    for line in result.stdout.splitlines()[1:]:
        name, status, detail = (line.split(None, 2) + [""])[:3]
        table[name] = (status, detail)
    return result, table


@pytest.fixture(scope="module")
def terminal(
    installed_venv: Path, registry: _Registry, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The instance folder of a terminal with a token of its own."""
    _, token = registry.add_terminal("Wheel kiosk 1")
    return _terminal_instance(tmp_path_factory.mktemp("wheel-terminal"), registry, token)


def test_installed_doctor_is_green(installed_venv: Path, terminal: Path) -> None:
    result, table = _doctor(installed_venv, terminal)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert {name: status for name, (status, _) in table.items()} == {
        "config": "OK",
        "secret": "SKIP",  # a terminal: its own key in the instance folder
        "ca": "SKIP",  # the registry is on http:// here
        "proxy": "OK",
        "registry": "OK",
        "token": "OK",
        "library": "OK",
        "migrations": "OK",
        "translations": "OK",
        "clock": "OK",
        "disk": "OK",
    }, output
    assert "ANT-PERMEKE" in table["library"][1], output



def _terminal_server(installed_venv: Path, terminal: Path, log: str) -> _Server:
    """`kiosk terminal serve` from the installed venv, configured by `terminal`/kiosk.cfg."""
    port = _free_port()
    cmd = [str(_venv_bin(installed_venv, "kiosk")), "terminal", "serve",
           "--host", "127.0.0.1", "--port", str(port), "--threads", "2"]
    return _Server(cmd, terminal.parent, clean_env(KIOSK_INSTANCE_PATH=str(terminal)),
                   terminal.parent / log, f"http://127.0.0.1:{port}")


def test_installed_terminal_serves_every_language(
    installed_venv: Path, registry: _Registry, terminal: Path
) -> None:
    # The registry's address and token come from the terminal's kiosk.cfg only.
    server = _terminal_server(installed_venv, terminal, "terminal.log")
    try:
        server.wait_until_up("/")
        # The start page sends a patron to the DEFAULT_LANGUAGE of the terminal's kiosk.cfg.
        with urllib.request.urlopen(server.url + "/", timeout=10) as answer:  # noqa: S310
            assert answer.url == server.url + "/fr/", answer.url
        for path, (lang, word) in PAGE_WORDS.items():
            status, body = _get(server.url + path)
            assert status == 200, (path, status, body[:2000], server.output())
            assert f'<html lang="{lang}"' in body, (path, body[:2000])
            assert word in body, (path, word, body[:4000])
        # The static files are the installed package's.
        status, css = _get(server.url + "/static/kiosk.css")
        assert status == 200, status
        installed = sorted(installed_venv.glob("[Ll]ib/**/site-packages/kiosk/static/kiosk.css"))
        assert len(installed) == 1, installed
        assert css == installed[0].read_text(encoding="utf-8")
    finally:
        server.stop()


def test_installed_terminal_serves_from_an_env_file(
    installed_venv: Path, registry: _Registry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """As the deploy files run it: settings in terminal.env only (the service's
    EnvironmentFile, the Windows runner's --env-file), an empty instance folder."""
    _, token = registry.add_terminal("Wheel kiosk env file")
    root = tmp_path_factory.mktemp("wheel-env-file")
    env_file = root / "terminal.env"
    env_file.write_text(f"KIOSK_REGISTRY_URL={registry.url}\nKIOSK_REGISTRY_TOKEN={token}\n"
                        f"KIOSK_LIBRARY_CODE=ANT-PERMEKE\nKIOSK_DEFAULT_LANGUAGE=nl\n"
                        f"KIOSK_INSTANCE_PATH={root / 'state'}\n", encoding="utf-8")
    kiosk = str(_venv_bin(installed_venv, "kiosk"))
    doctor = run([kiosk, "doctor", "--env-file", str(env_file)], cwd=root, timeout=120,
                  env=clean_env(), check=False)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    port = _free_port()
    server = _Server([kiosk, "terminal", "serve", "--env-file", str(env_file), "--host",
                      "127.0.0.1", "--port", str(port), "--threads", "2"], root, clean_env(),
                     root / "terminal.log", f"http://127.0.0.1:{port}")
    try:
        server.wait_until_up("/", timeout=30)
        with urllib.request.urlopen(server.url + "/", timeout=10) as answer:  # noqa: S310
            assert answer.url == server.url + "/nl/", answer.url
        assert (root / "state" / "secret_key").exists()
    finally:
        server.stop()


def test_installed_doctor_is_red_with_a_revoked_token(
    installed_venv: Path, registry: _Registry, tmp_path_factory: pytest.TempPathFactory
) -> None:
    terminal_id, token = registry.add_terminal("Wheel kiosk 2")
    instance = _terminal_instance(tmp_path_factory.mktemp("wheel-revoked"), registry, token)
    result, table = _doctor(installed_venv, instance)  # the registry now caches the token
    assert result.returncode == 0, result.stdout + result.stderr

    assert f"Terminal {terminal_id} revoked." in registry.cli("revoke-terminal", str(terminal_id))
    listed = registry.cli("terminals")
    assert re.search(rf"^\s*{terminal_id}\s.*revoked$", listed, re.MULTILINE), listed
    # Each registry process trusts a token it has checked for 10 s; a restart forgets that.
    registry.stop()
    registry.start()

    result, table = _doctor(installed_venv, instance)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert table["token"][0] == "FAIL" and "revoked" in table["token"][1], output
    assert table["registry"][0] == "OK", output

    # The terminal itself refuses to start on it, with the same reason in one line.
    started = run([str(_venv_bin(installed_venv, "kiosk")), "terminal", "serve", "--port",
                    str(_free_port())], cwd=instance.parent, timeout=60,
                   env=clean_env(KIOSK_INSTANCE_PATH=str(instance)), check=False)
    assert started.returncode == 1, started.stdout + started.stderr
    assert started.stderr.strip().splitlines()[-1] == (
        "REGISTRY_TOKEN was revoked at the registry (issue a new one: kiosk registry "
        "add-terminal)"), started.stderr
