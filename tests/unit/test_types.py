"""The type checker over kiosk/ (settings in pyproject.toml's [tool.mypy]) finds nothing: run
here, it is part of the README's test command and so of CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_kiosk_has_no_type_errors() -> None:
    checked = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                             text=True, timeout=600)
    assert checked.returncode == 0, checked.stdout[-6000:] + checked.stderr[-2000:]
