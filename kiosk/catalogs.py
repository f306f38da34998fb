"""Compile and check the gettext catalogues (translations/<lang>/LC_MESSAGES/messages.po).

Only Babel and the standard library: setup.py loads this file by path at build time, before
Flask is installed, so it must not import anything from the kiosk package or from Flask.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from babel.core import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

DOMAIN = "messages"

# Named python-format placeholders: %(name)s, %(count)d, %(price).2f, %(x)-5s ...
_NAMED_PLACEHOLDER = re.compile(
    r"%\((\w+)\)[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa]"
)


def _po_files(directory: Path) -> list[tuple[str, Path]]:
    """(lang, path) of every <lang>/LC_MESSAGES/messages.po under directory, sorted by lang."""
    directory = Path(directory)
    found = []
    for po in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        found.append((po.parent.parent.name, po))
    return found


def _read(po: Path, lang: str, abort_invalid: bool = False) -> Catalog:
    try:
        Locale.parse(lang)
        locale: str | None = lang
    except (ValueError, UnknownLocaleError):  # a folder name Babel does not know
        locale = None
    with po.open("rb") as fh:
        return read_po(fh, locale=locale, domain=DOMAIN, abort_invalid=abort_invalid)


def _compiled(catalog: Catalog) -> dict[object, object]:
    """What a .mo made from `catalog` holds: its translated, non-fuzzy messages (a plural's
    forms as a tuple, whether read from a .po or a .mo)."""
    def plain(value: object) -> object:
        return tuple(value) if isinstance(value, list | tuple) else value

    return {plain(m.id): plain(m.string) for m in catalog if m.id and m.string
            and not m.fuzzy and (not isinstance(m.string, list | tuple) or all(m.string))}


def is_compiled(po: Path, lang: str) -> bool:
    """Whether messages.mo beside `po` holds exactly what `po` says. The file times decide
    when they can (a .mo not older than its .po); when they cannot, the contents do: an
    install may write a .mo a moment before its .po (pip does), and a read-only install
    cannot compile again."""
    mo = po.with_suffix(".mo")
    if not mo.exists():
        return False
    if mo.stat().st_mtime >= po.stat().st_mtime:
        return True
    with mo.open("rb") as fh:
        held = _compiled(read_mo(fh))
    return held == _compiled(_read(po, lang))


def compile_catalogues(directory: Path, force: bool = False) -> list[Path]:
    """Compile every <lang>/LC_MESSAGES/messages.po under directory to messages.mo.

    A catalogue is compiled when its .mo is missing or does not hold what the .po says
    (`is_compiled`; always with force=True). Fuzzy entries are left out, as with ``pybabel
    compile``; unlike pybabel, a catalogue whose header is marked fuzzy is still compiled (its
    non-fuzzy entries), so that it never silently falls back to English. The .mo is written
    atomically.

    Returns the .mo files written (empty when everything was up to date).
    """
    written: list[Path] = []
    for lang, po in _po_files(directory):
        mo = po.with_suffix(".mo")
        if not force and is_compiled(po, lang):
            continue
        catalog = _read(po, lang, abort_invalid=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".messages-", suffix=".mo.tmp", dir=po.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                write_mo(fh, catalog, use_fuzzy=False)
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, mo)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        written.append(mo)
    return written


def _placeholders(text: str) -> set[str]:
    return set(_NAMED_PLACEHOLDER.findall(text or ""))


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ("",)
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _describe(names: Iterable[str]) -> str:
    return ", ".join(f"%({name})s" for name in sorted(names))


def _placeholder_problems(message: Message, num_plurals: int) -> list[str]:
    """Mismatches between the named placeholders of msgid(s) and msgstr(s).

    Singular message: msgstr must use exactly the msgid's names.
    Plural message: no msgstr form may use a name that neither msgid has (KeyError at
    runtime); form 0 must use the names of the singular msgid (of the plural msgid when the
    language has only one form); forms 1.. must use the names of the plural msgid.
    Untranslated forms are reported as untranslated, not here.
    """
    ids = _as_tuple(message.id)
    strings = _as_tuple(message.string)
    problems = []
    if not message.pluralizable:
        expected = _placeholders(ids[0])
        got = _placeholders(strings[0])
        if strings[0] and got != expected:
            problems.append(_mismatch(expected, got))
        return problems
    singular, plural = _placeholders(ids[0]), _placeholders(ids[-1])
    for index, string in enumerate(strings):
        if not string:
            continue
        got = _placeholders(string)
        expected = singular if index == 0 and num_plurals > 1 else plural
        unknown = got - (singular | plural)
        missing = expected - got
        if unknown or missing:
            problems.append(f"msgstr[{index}]: " + _mismatch(expected, got, unknown))
    return problems


def _mismatch(expected: set[str], got: set[str], unknown: set[str] | None = None) -> str:
    extra = got - expected if unknown is None else unknown
    parts = []
    if expected - got:
        parts.append(f"missing {_describe(expected - got)}")
    if extra:
        parts.append(f"unknown {_describe(extra)}")
    return "placeholders " + "; ".join(parts)


def catalogue_problems(directory: Path) -> list[str]:
    """Human-readable problems of every catalogue under directory, e.g.

    "fr: untranslated: 'Log in'", "nl: fuzzy: 'Seats'", "en: obsolete: 'Old text'",
    "fr: python-format: 'Hello %(name)s': placeholders missing %(name)s".

    An empty list means every catalogue is complete, current and consistent. A catalogue
    whose header is marked fuzzy (as ``pybabel init`` leaves it) is reported too, since
    ``pybabel compile`` would skip it.
    """
    problems: list[str] = []
    for lang, po in _po_files(directory):
        try:
            catalog = _read(po, lang)
        except Exception as exc:  # a broken file is a problem to report, not a crash
            problems.append(f"{lang}: cannot read {po}: {exc}")
            continue
        if catalog.fuzzy:
            problems.append(f"{lang}: header marked fuzzy (pybabel compile would skip it)")
        for message in catalog:
            if not message.id:  # the header
                continue
            label = repr(_as_tuple(message.id)[0])
            strings = _as_tuple(message.string)
            if message.pluralizable:
                want = catalog.num_plurals
                if len(strings) < want:
                    strings = strings + ("",) * (want - len(strings))
            if not all(strings):
                problems.append(f"{lang}: untranslated: {label}")
            if message.fuzzy:
                problems.append(f"{lang}: fuzzy: {label}")
            for problem in _placeholder_problems(message, catalog.num_plurals):
                problems.append(f"{lang}: python-format: {label}: {problem}")
        for message in catalog.obsolete.values():
            problems.append(f"{lang}: obsolete: {_as_tuple(message.id)[0]!r}")
    return problems
