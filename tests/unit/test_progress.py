"""The run says what it does: a long test on a line of its own, the quick subset leaves the
long and PostgreSQL tests out. A small suite run by pytest in a child process, with the plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SUITE = '''
import pytest

def test_short_one(): pass

@pytest.mark.slow
def test_long_one(): pass

@pytest.mark.postgres
def test_on_postgres(): pass

def test_short_two(): pass
'''

INI = """[pytest]
markers =
    slow: long
    browser: browser
    postgres: postgres
"""


def run(tmp_path: Path, *args: str) -> str:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_suite.py").write_text(SUITE)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.progress", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_suite.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "300"})  # the long temporary path: one line each
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_long_test_gets_a_line_of_its_own_with_its_result(tmp_path: Path) -> None:
    lines = run(tmp_path).splitlines()
    assert any(line.startswith("full run: ") for line in lines)  # the header
    long_line = next(n for n, line in enumerate(lines) if "test_long_one" in line)
    assert lines[long_line].rstrip().endswith("test_suite.py test_long_one … .")
    assert "test_suite.py .." in lines[long_line + 1]  # the short ones after it: a new line


def test_the_quiet_run_names_the_long_test_on_its_own_line(tmp_path: Path) -> None:
    lines = run(tmp_path, "-q").splitlines()
    assert any(line.endswith("test_suite.py test_long_one … .") for line in lines), lines


def test_quick_leaves_out_the_long_and_postgres_tests(tmp_path: Path) -> None:
    out = run(tmp_path, "--quick")
    assert "quick subset" in out
    assert "2 passed, 2 deselected" in out
