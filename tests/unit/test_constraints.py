"""constraints.txt, the versions CI tested, against setup.cfg and the running venv.

Every requirement of setup.cfg (runtime and test extras, on Linux and on Windows) has a pin its
bounds allow; every package those requirements bring here is installed at its pinned version
(CI installs with `-c constraints.txt`, so a pin that no longer installs, or a package that
arrived without one, fails); and no pin is left for a package nothing needs any more.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from configparser import ConfigParser
from itertools import takewhile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"
REFRESH = "python3 tools/refresh_constraints.py"
FIX = (
    f"install with `pip install -e '.[test]' -c constraints.txt`, or, after a change to "
    f"setup.cfg, refresh the file: `{REFRESH}`"
)

LINUX = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
WINDOWS = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"}
# constraints.txt is made on 3.11 (CI's); a PC may run a later Python.
PYTHONS = ("3.11", "3.12", "3.13", "3.14")


def _pins() -> dict[NormalizedName, Version]:
    pins: dict[NormalizedName, Version] = {}
    for number, raw in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"line {number}: not a pin: {raw}"
        assert not req.marker and not req.extras, f"line {number}: a bare name==version: {raw}"
        name = canonicalize_name(req.name)
        assert name not in pins, f"line {number}: {req.name} pinned twice"
        pins[name] = Version(specs[0].version)
    return pins


def _setup_cfg_requirements() -> list[Requirement]:
    config = ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    lines = (
        config["options"]["install_requires"].splitlines()
        + config["options.extras_require"]["test"].splitlines()
    )
    return [Requirement(s) for s in (line.strip() for line in lines) if s and s[0] != "#"]


def _applies(req: Requirement, environment: dict[str, str], extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**environment, "extra": e}) for e in {"", *extras})


def _needed(environment: dict[str, str]) -> set[NormalizedName]:
    """The packages setup.cfg's requirements bring, markers evaluated in `environment` (over
    this interpreter's), followed through the installed metadata; a package not installed
    here (a Windows-only one on Linux) is counted but not followed."""
    todo: list[tuple[Requirement, frozenset[str]]] = [
        (req, frozenset()) for req in _setup_cfg_requirements()
    ]
    needed: set[NormalizedName] = set()
    followed: set[tuple[NormalizedName, frozenset[str]]] = set()
    while todo:
        req, asking_extras = todo.pop()
        if not _applies(req, environment, asking_extras):
            continue
        name = canonicalize_name(req.name)
        needed.add(name)
        if (name, frozenset(req.extras)) in followed:
            continue
        followed.add((name, frozenset(req.extras)))
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo.extend((Requirement(line), frozenset(req.extras)) for line in requires)
    return needed


def test_the_file_says_what_it_is_and_how_to_refresh_it() -> None:
    lines = CONSTRAINTS.read_text(encoding="utf-8").splitlines()
    header = "\n".join(takewhile(lambda line: line.startswith("#"), lines))
    assert "-c constraints.txt" in header and REFRESH in header, header
    assert (ROOT / "tools" / "refresh_constraints.py").is_file()


@pytest.mark.parametrize("platform", [LINUX, WINDOWS], ids=["linux", "windows"])
def test_every_requirement_is_pinned_within_its_bounds(platform: dict[str, str]) -> None:
    pins = _pins()
    problems = []
    for req in _setup_cfg_requirements():
        if not _applies(req, platform, ()):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req}: no pin")
        elif not req.specifier.contains(pin, prereleases=True):
            problems.append(f"{req}: pinned at {pin}")
    assert not problems, f"setup.cfg against constraints.txt: {problems}; {FIX}"


def test_the_venv_is_the_pinned_one() -> None:
    pins = _pins()
    problems = []
    for name in sorted(_needed({})):
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name}: not installed")
            continue
        if name not in pins:
            problems.append(f"{name} {installed}: no pin")
        elif installed != pins[name]:
            problems.append(f"{name}: {installed} installed, {pins[name]} pinned")
    assert not problems, f"the venv against constraints.txt: {problems}; {FIX}"


def test_no_pin_is_left_for_a_package_nothing_needs() -> None:
    needed: set[NormalizedName] = set()
    for platform in (LINUX, WINDOWS):
        for python in PYTHONS:
            needed |= _needed(
                {**platform, "python_version": python, "python_full_version": f"{python}.0"}
            )
    stale = sorted(set(_pins()) - needed)
    assert not stale, f"pinned, but nothing setup.cfg asks for needs them: {stale}; {FIX}"


def test_ci_installs_with_the_constraints() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    installs = [line for line in run.splitlines() if "pip install" in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
