"""The seat ledger is the only code that writes places and the programme row (and the only
code that holds them as ORM objects, which could be written by assigning an attribute).
Read by parsing every module of the package: a new write anywhere else fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kiosk

PACKAGE = Path(kiosk.__file__).parent
# ledger.py writes them; store.py declares them; migrations create and change the tables.
ALLOWED = {PACKAGE / "registry" / "ledger.py", PACKAGE / "registry" / "store.py"}
SEAT_MODELS = {"Place", "Programme"}
RAW_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(places|programme)\b", re.I)


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else ""


def seat_writes(source: str) -> list[str]:
    """Each place in `source` that writes a place or the programme row, or loads one as an
    ORM object: `insert/update/delete(Place)`, `Place(...)`, `s.get(Place, …)`,
    `select(Place)` (the whole entity, not its columns), raw SQL that writes the tables."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            called = _name(func) or (func.attr if isinstance(func, ast.Attribute) else "")
            first = _name(node.args[0]) if node.args else ""
            if called in SEAT_MODELS:
                found.append(f"line {node.lineno}: {called}(…)")
            elif called in ("insert", "update", "delete", "get", "select") \
                    and first in SEAT_MODELS:
                found.append(f"line {node.lineno}: {called}({first})")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and RAW_WRITE.search(node.value):
            found.append(f"line {node.lineno}: SQL {RAW_WRITE.search(node.value)[0]!r}")
    return found


def test_only_the_ledger_writes_places_and_the_programme_row() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in ALLOWED or "migrations" in path.parts:
            continue
        found = seat_writes(path.read_text(encoding="utf-8"))
        if found:
            offenders[str(path.relative_to(PACKAGE))] = found
    assert offenders == {}, "only kiosk/registry/ledger.py may write seats: " + repr(offenders)


def test_the_rule_catches_each_kind_of_write() -> None:
    """Negative control: each way of writing seats that the rule names is caught."""
    writes = {
        "s.execute(insert(Place).values(patron_id=1))": "insert(Place)",
        "s.execute(update(Programme).values(cap=3))": "update(Programme)",
        "s.execute(delete(Place).where(Place.patron_id == 1))": "delete(Place)",
        "s.add(Programme(id=1, cap=1))": "Programme(…)",
        "prog = s.get(Programme, 1)\nprog.cap = 5": "get(Programme)",
        "place = s.scalar(select(Place))": "select(Place)",
        "conn.exec_driver_sql('UPDATE programme SET cap = 1')": "UPDATE programme",
        "conn.execute(text('delete from places'))": "delete from places",
    }
    for source, what in writes.items():
        found = seat_writes(source)
        assert len(found) == 1 and what in found[0], (source, found)
    # Reads of columns are not writes: reports and pages show seats.
    assert seat_writes("s.execute(select(Place.status, func.count()))") == []
    assert seat_writes("s.scalar(select(Programme.cap).where(THE_PROGRAMME))") == []
