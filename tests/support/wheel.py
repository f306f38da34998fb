"""The project's wheel, built as a deployer builds it, and commands run outside this venv.

`build_wheel` builds from a clean copy of the checkout (no build/, no .mo: the build must
compile them), so a file the wheel needs but only the checkout has cannot slip through.
`clean_env` and `run` keep the developer's PYTHONPATH, venv and KIOSK_* settings away from
what an installed `kiosk` sees."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.factories import IN_CI

REPO = Path(__file__).resolve().parents[2]

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


def clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH, no venv, no user site and no KIOSK_* of the developer's; then `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("KIOSK_")
    }
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run(
    cmd: list[str], cwd: Path, timeout: int, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        cmd,
        cwd=cwd,
        env=env if env is not None else clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert not check or result.returncode == 0, (
        f"{' '.join(cmd)} failed with exit code {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
    )
    return result


def build_wheel(source: Path, outdir: Path) -> Path:
    """The wheel of a clean copy of the checkout made at `source` (a folder that does not
    exist yet, outside the repository), written into `outdir`. Skips (fails in CI) without
    the `build` package; fails on any warning of the build."""
    if importlib.util.find_spec("build") is None:
        reason = "the 'build' package is not installed (pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    assert not source.resolve().is_relative_to(REPO), "pytest's tmp dir is inside the repo"
    shutil.copytree(REPO, source, ignore=_ignore, symlinks=True)
    built = run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), "."],
        cwd=source,
        timeout=600,
    )
    # No warning from the build either, as filterwarnings=error has it for the tests: e.g.
    # setuptools' for a License :: classifier (it refuses one beside the licence expression).
    output = built.stdout + built.stderr
    lines = output.splitlines()
    warned = [line for line in lines if line.startswith("WARNING") or "Warning:" in line]
    assert not warned, "\n".join(warned) + "\n--- build output ---\n" + output[-6000:]
    wheels = sorted(outdir.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {outdir}, got {wheels}"
    return wheels[0]
