"""Rewrites constraints.txt: the newest versions setup.cfg's bounds allow, as a fresh venv
installs them, plus the packages only Windows installs. Run it on Linux with CI's Python, then
run the tests in a venv installed with `-c constraints.txt` and commit the file:

    python3 tools/refresh_constraints.py

Linux pins: `pip install -e '.[test]'` in a throwaway venv, then
`pip freeze --all --exclude-editable --exclude pip`. Windows pins: the requirements whose
markers hold only on Windows (read from the installed metadata), resolved for win_amd64 by pip.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = """\
# The exact versions CI tested: every package `pip install -e '.[test]'` brings (runtime and
# test extras), and the few only Windows installs (at the end). setup.cfg keeps the ranges the
# code accepts; this file picks the ones tested. A pin only limits a package something else
# asks for: it never adds one.
#
# CI (.ci/run), the README's install commands and the deploy files install with it:
#     pip install -e '.[test]' -c constraints.txt
#
# Refresh (a fresh venv, the newest versions setup.cfg allows), then test and commit:
#     python3 tools/refresh_constraints.py
# tests/unit/test_constraints.py fails when this file, setup.cfg and the venv disagree.
"""

# Run inside the fresh venv: the requirements that hold on Windows but not here, as
# "name specifier" lines (markers dropped), for what is installed.
_WINDOWS_ONLY = """
import importlib.metadata as md, json, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon
dists = {canon(d.metadata["Name"]): d for d in md.distributions()}
requires = {name: [Requirement(r) for r in d.requires or []] for name, d in dists.items()}
# the extras anything asks of a package, and our test extra
extras = {"library-course-kiosk": {"test"}}
for reqs in requires.values():
    for req in reqs:
        extras.setdefault(canon(req.name), set()).update(req.extras)
windows = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
           "platform_machine": "AMD64"}
found = set()
for name, reqs in requires.items():
    for req in reqs:
        if req.marker is None or canon(req.name) in dists:
            continue
        wanted = {"", *extras.get(name, ())}
        if any(req.marker.evaluate({**windows, "extra": e}) for e in wanted) and not any(
            req.marker.evaluate({"extra": e}) for e in wanted
        ):
            found.add(f"{req.name}{req.specifier}")
json.dump(sorted(found), sys.stdout)
"""


def _run(*cmd: str | Path) -> str:
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        python = Path(tmp) / "venv" / "bin" / "python"
        _run(sys.executable, "-m", "venv", Path(tmp) / "venv")
        _run(python, "-m", "pip", "install", "-q", "-e", ".[test]")
        frozen = _run(
            python, "-m", "pip", "freeze", "--all", "--exclude-editable", "--exclude", "pip"
        )
        windows_only = json.loads(_run(python, "-c", _WINDOWS_ONLY))
        pins = []
        if windows_only:
            report = Path(tmp) / "windows.json"
            _run(python, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed",
                 "--no-deps", "--only-binary=:all:", "--platform", "win_amd64",
                 "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}",
                 "--target", Path(tmp) / "windows",
                 "--report", report, *windows_only)
            for item in json.loads(report.read_text(encoding="utf-8"))["install"]:
                meta = item["metadata"]
                # --no-deps, since pip reads markers for this machine, not for Windows
                if meta.get("requires_dist"):
                    sys.exit(f"{meta['name']} has requirements of its own, not resolved here "
                             f"for Windows: {meta['requires_dist']}")
                pins.append(f"{meta['name']}=={meta['version']}")
    text = HEADER + frozen
    if pins:
        text += "# Only on Windows (not installed here; resolved for win_amd64):\n"
        text += "".join(f"{pin}\n" for pin in sorted(pins, key=str.lower))
    (ROOT / "constraints.txt").write_text(text, encoding="utf-8")
    print(f"constraints.txt: {len(frozen.splitlines()) + len(pins)} pins")


if __name__ == "__main__":
    main()
