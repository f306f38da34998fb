"""kiosk's modules import each other at the top of the module, and without a cycle.

An import placed inside a function to dodge a cycle hides a dependency: the module seems to
load, until a code path runs that import while the other module is half-initialised. So the
rules are read from the source (`ast`, nothing is imported): (a) the graph of module-level
imports between kiosk's modules has no cycle; (b) no kiosk module is imported inside a
function, nor through importlib, whose imports the graph cannot see. Imports under
`if TYPE_CHECKING:` are for the type checker only and are left out.

The graph is the one Python walks. `from kiosk.x import y` runs the package kiosk/x/__init__.py
before kiosk.x.y (y a submodule) or needs kiosk.x itself (y a name defined there); the
importer's own packages are already running when it runs, so they count only when it takes a
name from one (`from . import Patron`), not when it reaches a sibling (`from . import forms`).
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import kiosk

PACKAGE = Path(kiosk.__file__).parent
ROOT = PACKAGE.name

# Kiosk imports still inside a function, as (file, module imported). Each waits for a change
# to a file another branch is rewriting now; remove the entry with the import.


@dataclass(frozen=True)
class Import:
    importer: str  # the module that imports
    where: str  # file:line
    targets: frozenset[str]  # the kiosk modules this import runs or needs
    in_function: bool


def module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _packages(module: str) -> set[str]:
    """kiosk.a.b → {kiosk, kiosk.a}: the packages Python runs before the module."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node with whether it runs inside a function; `if TYPE_CHECKING:` bodies left out."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.orelse:
                yield statement, in_function
                yield from _walk(statement, in_function)
            continue
        yield child, in_function
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                  ast.Lambda))
        yield from _walk(child, inner)


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool,
             modules: set[str]) -> set[str]:
    own = _packages(importer) | {importer}
    found: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == ROOT:
                found |= ({alias.name} | _packages(alias.name)) - own
        return found & modules
    if node.level:
        package = importer if is_package else importer.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != ROOT:
        return found
    names = [alias.name for alias in node.names]
    found |= {f"{source}.{name}" for name in names if f"{source}.{name}" in modules}
    found |= ({source} | _packages(source)) - own  # importing it runs it and its packages
    if any(f"{source}.{name}" not in modules for name in names):
        found.add(source)  # a name defined in `source`: its body must have run that far
    return (found - {importer}) & modules


def read_imports(sources: Mapping[str, str]) -> list[Import]:
    """The kiosk imports in `sources` ({"kiosk/terminal/__init__.py": source text, …})."""
    modules = {module_name(path) for path in sources}
    found = []
    for path, source in sorted(sources.items()):
        importer = module_name(path)
        for node, in_function in _walk(ast.parse(source, path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = _targets(node, importer, path.endswith("__init__.py"), modules)
                if targets:
                    found.append(Import(importer, f"{path}:{node.lineno}",
                                        frozenset(targets), in_function))
    return found


def import_graph(imports: list[Import]) -> dict[str, dict[str, str]]:
    """module → {module it imports at module level: where}."""
    graph: dict[str, dict[str, str]] = {}
    for found in imports:
        if not found.in_function:
            for target in found.targets:
                graph.setdefault(found.importer, {}).setdefault(target, found.where)
    return graph


def cycles(graph: dict[str, dict[str, str]]) -> list[str]:
    """One cycle of each group of modules that import each other, spelled out with where
    each import is; empty when there is none (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # recursion is fine: kiosk has under a hundred modules
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_spell_out(min(group), group, graph) for group in groups]


def _spell_out(start: str, group: set[str], graph: dict[str, dict[str, str]]) -> str:
    """The shortest way from `start` back to itself inside its group."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph.get(node, {})):
            if nxt == start:
                path = [*paths[node], start]
                hops = [f"{a} ({graph[a][b]})" for a, b in zip(path, path[1:], strict=False)]
                return " -> ".join([*hops, start])
            if nxt in group and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")


def imports_in_functions(sources: Mapping[str, str],
                         kept: Collection[tuple[str, str]] = ()) -> list[str]:
    """Each kiosk import inside a function (file:line and module), and each importlib or
    __import__ call, whose imports no graph can see; (file, module) pairs in `kept` pass."""
    found = [f"{imp.where} imports {target}"
             for imp in read_imports(sources) if imp.in_function
             for target in sorted(imp.targets)
             if (imp.where.rpartition(":")[0], target) not in kept]
    for path, source in sorted(sources.items()):
        for node, _ in _walk(ast.parse(source, path)):
            if isinstance(node, ast.Call):
                called = node.func
                name = called.attr if isinstance(called, ast.Attribute) else getattr(
                    called, "id", "")
                if name in ("import_module", "__import__"):
                    found.append(f"{path}:{node.lineno} imports through {name}()")
    return found


def kiosk_sources() -> dict[str, str]:
    return {path.relative_to(PACKAGE.parent).as_posix(): path.read_text(encoding="utf-8")
            for path in sorted(PACKAGE.rglob("*.py"))}


# --- kiosk itself -----------------------------------------------------------------------------


def test_kiosk_modules_import_each_other_without_a_cycle() -> None:
    """A cycle works only as long as each module happens to be imported in the right order."""
    assert cycles(import_graph(read_imports(kiosk_sources()))) == []


def test_no_kiosk_module_is_imported_inside_a_function() -> None:
    """An import inside a function hides a dependency from the graph, and usually a cycle."""
    assert imports_in_functions(kiosk_sources(), set()) == []


def test_the_checks_read_the_real_package() -> None:
    """The rules above pass on nothing if nothing is read: the package's files are found, and
    the graph has the app factory's wiring down to the pages."""
    sources = kiosk_sources()
    assert {"kiosk/__init__.py", "kiosk/app.py", "kiosk/terminal/__init__.py"} <= set(sources)
    graph = import_graph(read_imports(sources))
    assert {"kiosk.terminal", "kiosk.staff", "kiosk.registry_setup"} <= set(graph["kiosk.app"])
    assert "kiosk.terminal.account" in graph["kiosk.terminal"]  # `from . import account`
    assert "kiosk.staff.base" in graph["kiosk.staff.desk"]


# --- Negative controls: the checks on small made-up packages ----------------------------------


def test_the_cycle_check_catches_two_modules_importing_each_other() -> None:
    """a imports b, b imports a: the cycle is named, with where each import is."""
    found = cycles(import_graph(read_imports({
        "kiosk/__init__.py": "",
        "kiosk/a.py": "from . import b\n",
        "kiosk/b.py": "import os\n\nfrom .a import thing\n",
    })))
    assert found == ["kiosk.a (kiosk/a.py:1) -> kiosk.b (kiosk/b.py:3) -> kiosk.a"]


def test_the_cycle_check_follows_what_importing_a_package_runs() -> None:
    """Importing kiosk.registry.api runs kiosk/__init__.py first, and importing a page's form
    from another package runs that package's __init__.py, which imports its own pages."""
    through_root = cycles(import_graph(read_imports({
        "kiosk/__init__.py": "from .app import create_app\n",
        "kiosk/app.py": "from .registry.api import bp\n",
        "kiosk/registry/__init__.py": "",
        "kiosk/registry/api.py": "from .. import __version__\n",
    })))
    assert through_root == ["kiosk (kiosk/__init__.py:1) -> kiosk.app (kiosk/app.py:1) -> "
                            "kiosk.registry.api (kiosk/registry/api.py:1) -> kiosk"]
    through_packages = cycles(import_graph(read_imports({
        "kiosk/__init__.py": "",
        "kiosk/terminal/__init__.py": "from . import assist\n",
        "kiosk/terminal/assist.py": "from ..staff.forms import LoginForm\n",
        "kiosk/terminal/messages.py": "",
        "kiosk/staff/__init__.py": "from ..terminal.messages import message\n",
        "kiosk/staff/forms.py": "",
    })))
    assert through_packages == [
        "kiosk.staff (kiosk/staff/__init__.py:1) -> kiosk.terminal (kiosk/terminal/__init__.py:1)"
        " -> kiosk.terminal.assist (kiosk/terminal/assist.py:1) -> kiosk.staff"]


def test_the_cycle_check_leaves_out_type_checking_and_siblings() -> None:
    """A type checker's import and a module reaching a sibling through its own package make
    no cycle; taking a name from the package that imports it does."""
    assert cycles(import_graph(read_imports({
        "kiosk/__init__.py": "",
        "kiosk/a.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                      "    from .b import B\n",
        "kiosk/b.py": "from .a import A\n",
        "kiosk/terminal/__init__.py": "from . import account\n",
        "kiosk/terminal/account.py": "from . import forms\n",
        "kiosk/terminal/forms.py": "",
    }))) == []
    assert cycles(import_graph(read_imports({
        "kiosk/__init__.py": "",
        "kiosk/terminal/__init__.py": "from . import account\n\nPatron = object\n",
        "kiosk/terminal/account.py": "from . import Patron\n",
    }))) == ["kiosk.terminal (kiosk/terminal/__init__.py:1) -> "
             "kiosk.terminal.account (kiosk/terminal/account.py:1) -> kiosk.terminal"]


def test_the_function_check_catches_an_import_inside_a_def() -> None:
    """Relative or absolute, in a function, a method or through importlib: each is named by
    file and line; another library's import in a function is not kiosk's business here."""
    sources = {
        "kiosk/__init__.py": "",
        "kiosk/b.py": "",
        "kiosk/a.py": (
            "import importlib\n"
            "def f():\n"
            "    from .b import x\n"
            "class C:\n"
            "    def m(self):\n"
            "        import kiosk.b\n"
            "def g():\n"
            "    from waitress import serve\n"
            "    return importlib.import_module('kiosk.b')\n"
        ),
    }
    assert imports_in_functions(sources) == [
        "kiosk/a.py:3 imports kiosk.b",
        "kiosk/a.py:6 imports kiosk.b",
        "kiosk/a.py:9 imports through import_module()",
    ]
    assert imports_in_functions(sources, {("kiosk/a.py", "kiosk.b")}) == [
        "kiosk/a.py:9 imports through import_module()"]
    assert cycles(import_graph(read_imports(sources))) == []
