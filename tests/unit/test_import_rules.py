"""Test modules import plain helpers from tests/support, never from another test module or
from a conftest: fixtures come from conftest.py files by pytest's own lookup, and a test
module that another one imports runs its tests twice or drags its fixtures along."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _is_test_or_conftest(name: str) -> bool:
    return name.startswith("test_") or name == "conftest"


def forbidden_imports(source: str) -> list[str]:
    """The imports of `source` that reach a test module or a conftest of this suite: relative
    ones (`from .test_x import …`, `from ..conftest import …`, `from . import test_x`) and
    absolute ones under `tests` (`from tests.integration.test_x import …`,
    `import tests.conftest`, `from tests.unit import test_x`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".") if node.module else []
            ours = node.level > 0 or parts[:1] == ["tests"]
            names = [alias.name for alias in node.names]
            if ours and (any(map(_is_test_or_conftest, parts))
                         or any(map(_is_test_or_conftest, names))):
                module = "." * node.level + (node.module or "")
                found.append(f"line {node.lineno}: from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "tests" and any(map(_is_test_or_conftest, parts)):
                    found.append(f"line {node.lineno}: import {alias.name}")
    return found


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 40, modules  # the whole suite, not one folder of it
    offences = {str(path.relative_to(TESTS)): forbidden_imports(path.read_text("utf-8"))
                for path in modules}
    offences = {path: found for path, found in offences.items() if found}
    assert not offences, "import helpers from tests.support instead:\n" + "\n".join(
        f"{path}: {line}" for path, found in offences.items() for line in found)


def test_the_scan_catches_what_it_must_and_lets_support_through() -> None:
    """The negative control: each way of importing a test module or a conftest is caught."""
    offending = [
        "from .test_browser import Live, live_server",
        "from .conftest import add_patron",
        "from ..conftest import app_config",
        "from ..integration.test_contract import registry",
        "from . import test_takeover",
        "from . import conftest",
        "from tests.conftest import PG_ADMIN_URL",
        "from tests.integration.test_role_matrix import World",
        "from tests.unit import test_domain",
        "import tests.integration.test_verification",
        "import tests.conftest as shared",
        "def helper():\n    from .test_takeover import take_over\n    return take_over",
    ]
    for source in offending:
        assert len(forbidden_imports(source)) == 1, source
    allowed = [
        "from tests.support.factories import add_patron, build_app",
        "from tests.support import storm_support as ss",
        "from .support.browser import Live",
        "import pytest",
        "from kiosk.registry import domain",
        "from hypothesis import strategies as st",
        "import test_utils_of_someone_else",  # not ours: not under tests
    ]
    for source in allowed:
        assert forbidden_imports(source) == [], source
