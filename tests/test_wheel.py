"""The wheel carries templates, static files, compiled catalogues and data, and works installed.

Builds the wheel from a clean copy of the checkout (no build/, no .mo: the build must compile
them), installs it in a fresh venv outside the repository and renders a page in every language
from a working directory outside the repository. Slow: a build plus a pip install.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
LANGS = ("nl", "fr", "en")
IN_CI = os.environ.get("CI", "").lower() == "true"

# Left out of the copy the wheel is built from: at the top level ...
_TOP_LEVEL_JUNK = {
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "instance",
    "node_modules",
    ".pytest_cache",
    ".ruff_cache",
}
# ... and anywhere.
_JUNK_PATTERNS = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mo", "*.egg-info")


def _ignore(directory: str, names: list[str]) -> set[str]:
    ignored = set(_JUNK_PATTERNS(directory, names))
    if Path(directory).resolve() == REPO:
        ignored |= {n for n in names if n in _TOP_LEVEL_JUNK or n.startswith("tmp-")}
    return ignored


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed with exit code {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
    )
    return result


def _venv_bin(venv_dir: Path, name: str) -> Path:
    if os.name == "nt":
        return venv_dir / "Scripts" / f"{name}.exe"
    return venv_dir / "bin" / name


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("build") is None:
        reason = "the 'build' package is not installed (pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    source = tmp_path_factory.mktemp("wheel-src") / "checkout"
    assert not source.resolve().is_relative_to(REPO), "pytest's tmp dir is inside the repo"
    shutil.copytree(REPO, source, ignore=_ignore, symlinks=True)
    outdir = tmp_path_factory.mktemp("wheel-dist")
    _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), "."],
        cwd=source,
        timeout=600,
    )
    wheels = sorted(outdir.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {outdir}, got {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def installed_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv_dir = tmp_path_factory.mktemp("wheel-venv") / "venv"
    assert not venv_dir.resolve().is_relative_to(REPO)
    _run([sys.executable, "-m", "venv", str(venv_dir)], cwd=venv_dir.parent, timeout=300)
    python = _venv_bin(venv_dir, "python")
    _run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
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


_SMOKE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    venv_dir, repo, instance = (Path(arg).resolve() for arg in sys.argv[1:4])

    import kiosk
    from kiosk.paths import resource_dir

    package = Path(kiosk.__file__).resolve().parent
    assert package.is_relative_to(venv_dir), f"kiosk imported from {package}, not the venv"
    assert not package.is_relative_to(repo), f"kiosk imported from the repo: {package}"
    for name in ("templates", "static", "translations"):
        assert resource_dir(name) == package / name, (name, resource_dir(name))
    for lang in ("nl", "fr", "en"):
        mo = package / "translations" / lang / "LC_MESSAGES" / "messages.mo"
        assert mo.is_file(), f"missing {mo}"

    app = kiosk.create_app(
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
    result = _run(
        [str(python), str(script), str(installed_venv), str(REPO), str(instance)],
        cwd=workdir,
        timeout=300,
    )
    assert "wheel smoke test OK" in result.stdout


def test_console_script_installed(installed_venv: Path) -> None:
    script = _venv_bin(installed_venv, "kiosk")
    assert script.is_file(), f"no console script at {script}"
