"""The programme's institutions and libraries, as the coordinator keeps them in the console:
add, rename, retire and bring back, each audited. The rules for a code, a card prefix and a
name live here, for the console and for the programme file (`programme_file`) alike.

Retiring takes nothing away from anybody: the kiosks stop offering the library (or every
library of the institution) for sign-up and as a home library, its patrons keep their
accounts, places and courses, and the audit log keeps its name. A library is never deleted:
patrons, terminals and the audit log refer to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .context import RegistryContext
from .domain import (
    LANGUAGES,
    RegistryError,
    clean_name,
    has_control_chars,
    has_visible_chars,
)
from .staff import record
from .store import Institution, Library, Patron

INSTITUTION_CODE = re.compile(r"[A-Z][A-Z0-9]{1,11}")  # institutions.code: String(12)
LIBRARY_CODE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*")
LIBRARY_CODE_MAX = 40  # libraries.code
CARD_PREFIX = re.compile(r"[0-9]{4}")  # institutions.card_prefix: the start of card numbers
NAME_MAX = 120


def name_problem(value: str) -> str | None:
    """A field code when `value` cannot be a name, else None."""
    if has_control_chars(value or ""):
        return "invalid_characters"
    text = clean_name(value)
    if not has_visible_chars(text):
        return "required"
    if len(text) > NAME_MAX:
        return "too_long"
    return None


def institution_code_problem(code: str) -> str | None:
    return None if INSTITUTION_CODE.fullmatch(code or "") else "institution_code_invalid"


def library_code_problem(code: str) -> str | None:
    ok = LIBRARY_CODE.fullmatch(code or "") and len(code) <= LIBRARY_CODE_MAX
    return None if ok else "library_code_invalid"


def card_prefix_problem(prefix: str) -> str | None:
    return None if CARD_PREFIX.fullmatch(prefix or "") else "card_prefix_invalid"


@dataclass(frozen=True)
class LibraryRow:
    code: str
    name: str
    retired: bool
    patrons: int  # whose home library it is


@dataclass(frozen=True)
class InstitutionRow:
    code: str
    names: dict[str, str]
    card_prefix: str
    retired: bool
    libraries: list[LibraryRow]


class LibrariesAdmin:
    def __init__(self, ctx: RegistryContext):
        self.ctx = ctx

    def institutions(self) -> list[InstitutionRow]:
        """Every institution and library, retired ones too, with how many patrons each
        library has."""
        with self.ctx.store.read() as s:
            patrons = dict(s.execute(select(Patron.library_id, func.count())
                                     .group_by(Patron.library_id)).all())
            return [
                InstitutionRow(
                    code=i.code, names=dict(i.names), card_prefix=i.card_prefix,
                    retired=i.retired,
                    libraries=[LibraryRow(code=lib.code, name=lib.name, retired=lib.retired,
                                          patrons=patrons.get(lib.id, 0))
                               for lib in i.libraries])
                for i in s.scalars(select(Institution).order_by(Institution.code))
            ]

    # --- Institutions ---------------------------------------------------------------------

    def add_institution(self, code: str, card_prefix: str, names: Mapping[str, str], *,
                        actor: str, where: str = "") -> None:
        code, card_prefix = (code or "").strip().upper(), (card_prefix or "").strip()
        errors = _name_errors(names)
        if (problem := institution_code_problem(code)) is not None:
            errors["code"] = problem
        if (problem := card_prefix_problem(card_prefix)) is not None:
            errors["card_prefix"] = problem
        if errors:
            raise RegistryError("invalid", errors)
        with self._write() as s:
            if s.scalar(select(Institution.id).where(Institution.code == code)) is not None:
                errors["code"] = "institution_code_taken"
            if s.scalar(select(Institution.id)
                        .where(Institution.card_prefix == card_prefix)) is not None:
                errors["card_prefix"] = "card_prefix_taken"
            if errors:
                raise RegistryError("invalid", errors)
            s.add(Institution(code=code, card_prefix=card_prefix, names=_names(names)))
            record(s, self.ctx.clock(), actor, "institution_added", where=where,
                   institution=code)

    def rename_institution(self, code: str, names: Mapping[str, str], *, actor: str,
                           where: str = "") -> None:
        errors = _name_errors(names)
        if errors:
            raise RegistryError("invalid", errors)
        with self._write() as s:
            institution = institution_row(s, code)
            new = _names(names)
            changed = sorted(lang for lang in LANGUAGES
                             if institution.names.get(lang) != new[lang])
            if changed:
                institution.names = new
                record(s, self.ctx.clock(), actor, "institution_renamed", where=where,
                       institution=code, changed=changed)

    def set_institution_retired(self, code: str, retired: bool, *, actor: str,
                                where: str = "") -> None:
        with self._write() as s:
            institution = institution_row(s, code)
            if institution.retired == retired:
                return
            institution.retired = retired
            if retired:  # (each action written out: the audit page's check reads them)
                record(s, self.ctx.clock(), actor, "institution_retired", where=where,
                       institution=code)
            else:
                record(s, self.ctx.clock(), actor, "institution_restored", where=where,
                       institution=code)

    # --- Libraries ------------------------------------------------------------------------

    def add_library(self, institution_code: str, code: str, name: str, *, actor: str,
                    where: str = "") -> None:
        code = (code or "").strip().upper()
        errors: dict[str, str] = {}
        if (problem := library_code_problem(code)) is not None:
            errors["library_code"] = problem
        if (problem := name_problem(name)) is not None:
            errors["library_name"] = problem
        if errors:
            raise RegistryError("invalid", errors)
        with self._write() as s:
            institution = institution_row(s, institution_code)
            if s.scalar(select(Library.id).where(Library.code == code)) is not None:
                raise RegistryError("invalid", {"library_code": "library_code_taken"})
            s.add(Library(code=code, name=clean_name(name), institution_id=institution.id))
            record(s, self.ctx.clock(), actor, "library_added", where=where,
                   institution=institution.code, library=code)

    def rename_library(self, code: str, name: str, *, actor: str, where: str = "") -> None:
        if (problem := name_problem(name)) is not None:
            raise RegistryError("invalid", {"library_name": problem})
        with self._write() as s:
            library = _library(s, code)
            name = clean_name(name)
            if library.name != name:
                library.name = name
                record(s, self.ctx.clock(), actor, "library_renamed", where=where,
                       library=code)

    def set_library_retired(self, code: str, retired: bool, *, actor: str,
                            where: str = "") -> None:
        with self._write() as s:
            library = _library(s, code)
            if library.retired == retired:
                return
            library.retired = retired
            if retired:
                record(s, self.ctx.clock(), actor, "library_retired", where=where,
                       library=code)
            else:
                record(s, self.ctx.clock(), actor, "library_restored", where=where,
                       library=code)

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """Changes here are rare: they queue behind the programme row's lock (as the
        catalogue's do), so two coordinators cannot both take one code or card prefix."""
        with self.ctx.store.write() as s:
            self.ctx.seats(s)
            yield s


def _names(names: Mapping[str, str]) -> dict[str, str]:
    return {lang: clean_name(names.get(lang, "")) for lang in LANGUAGES}


def _name_errors(names: Mapping[str, str]) -> dict[str, str]:
    return {f"name_{lang}": problem for lang in LANGUAGES
            if (problem := name_problem(names.get(lang, ""))) is not None}


def institution_row(s: Session, code: str) -> Institution:
    """The institution of this code, for a change in the caller's transaction; a code that
    is no code, or of no institution: "not_found"."""
    row = s.scalar(select(Institution).where(Institution.code == code)) \
        if institution_code_problem(code) is None else None
    if row is None:
        raise RegistryError("not_found")
    return row


def _library(s: Session, code: str) -> Library:
    row = s.scalar(select(Library).where(Library.code == code)) \
        if library_code_problem(code) is None else None
    if row is None:
        raise RegistryError("not_found")
    return row
