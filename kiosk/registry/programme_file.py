"""The programme file: what the coordinator fills in before the first start of a real
registry (`kiosk registry init`) — the cap, the institutions with their card prefix and
verification rule, their libraries, the course categories and, if they are known already,
the courses. A template ships in kiosk/data/programme_template.json.

Read and checked here, before anything is written: every problem is told at once, each with
the line of the file it is on, in plain words. The answer has the shape `seed.seed` loads.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from .catalogue_admin import CourseDraft, validate_course
from .domain import DEFAULT_PENDING_DAYS, LANGUAGES, RegistryError
from .libraries_admin import (
    NAME_MAX,
    card_prefix_problem,
    institution_code_problem,
    library_code_problem,
)

CATEGORY_CODE = re.compile(r"[a-z][a-z0-9-]{0,19}")  # categories.code: String(20)
CAP_MAX = 1_000_000
VERIFICATION = ("open", "verify")

# The words of validate_course's codes, for the file's messages.
COURSE_PROBLEMS = {
    "required": "is missing", "too_long": "is too long",
    "invalid_characters": "has characters that cannot be shown",
    "slug_invalid": "must be lower-case letters, digits and hyphens (e.g. word-basics)",
    "slug_taken": "is used by another course above", "slug_cannot_generate": "is missing",
    "category_unknown": "is not one of the categories above",
    "hours_invalid": "must be a whole number of hours", "course_position_invalid": "is wrong",
}


class ProgrammeFileError(Exception):
    """The file cannot be loaded; `problems` are the lines to show, e.g. "line 12: …"."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class _LocatingDecoder(json.JSONDecoder):
    """json's decoder, remembering where each object starts (for the line numbers)."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[int, int] = {}
        # The attributes json's pure-Python scanner reads (the C one would not call ours);
        # typeshed does not declare them, hence getattr and setattr.
        parse: Callable[..., tuple[Any, int]] = getattr(self, "parse_object")  # noqa: B009

        def parse_object(s_and_end: tuple[str, int], *args: Any) -> tuple[Any, int]:
            found, end = parse(s_and_end, *args)
            self.starts[id(found)] = s_and_end[1]
            return found, end

        setattr(self, "parse_object", parse_object)  # noqa: B010
        setattr(self, "scan_once", getattr(json.scanner, "py_make_scanner")(self))  # noqa: B009,B010


def template_text() -> str:
    return resources.files("kiosk.data").joinpath("programme_template.json").read_text(
        encoding="utf-8")


def read_programme(path: Path) -> dict[str, Any]:
    """The programme in `path`, checked; raises ProgrammeFileError with every problem."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's editor may add a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgrammeFileError([f"cannot read {path}: {exc}"]) from None
    return parse_programme(text)


def parse_programme(text: str) -> dict[str, Any]:
    decoder = _LocatingDecoder()
    try:
        data = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise ProgrammeFileError([f"line {exc.lineno}: this is not valid JSON here "
                                  f"({exc.msg}, column {exc.colno})"]) from None
    checker = _Checker(text, decoder.starts)
    clean = checker.programme(data)
    if checker.problems:
        raise ProgrammeFileError(checker.problems)
    return clean


class _Checker:
    def __init__(self, text: str, starts: dict[int, int]):
        self.text, self.starts = text, starts
        self.problems: list[str] = []

    def line(self, where: object, key: str = "") -> int:
        """The line of the object `where`, or of its `key` when it has one."""
        start = self.starts.get(id(where), 0)
        if key:
            found = self.text.find(f'"{key}"', start)
            start = found if found >= 0 else start
        return self.text.count("\n", 0, start) + 1

    def problem(self, where: object, message: str, key: str = "") -> None:
        self.problems.append(f"line {self.line(where, key)}: {message}")

    def names(self, where: dict[str, Any], key: str, what: str) -> dict[str, str]:
        """A name in each language: {"nl": …, "fr": …, "en": …}."""
        value = where.get(key)
        if not isinstance(value, dict):
            self.problem(where, f"{what}: \"{key}\" must give the name in nl, fr and en")
            return {}
        out = {}
        for lang in LANGUAGES:
            text = value.get(lang)
            if not isinstance(text, str) or not text.strip():
                self.problem(value, f"{what}: the name in \"{lang}\" is missing")
            elif len(text.strip()) > NAME_MAX:
                self.problem(value, f"{what}: the name in \"{lang}\" is longer than "
                                    f"{NAME_MAX} characters")
            else:
                out[lang] = text.strip()
        return out

    def items(self, where: dict[str, Any], key: str, what: str, *,
              required: bool = True) -> list[dict[str, Any]]:
        value = where.get(key, None if required else [])
        if not isinstance(value, list) or (required and not value):
            self.problem(where, f"\"{key}\" must be a list of {what}, with at least one")
            return []
        good = [item for item in value if isinstance(item, dict)]
        if len(good) != len(value):
            self.problem(where, f"each of \"{key}\" must be written {{ … }}")
        return good

    def programme(self, data: object) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.problems.append("line 1: the file must hold one { … } with \"programme\", "
                                 "\"institutions\" and \"categories\"")
            return {}
        settings = data.get("programme")
        programme: dict[str, Any] = {}
        if not isinstance(settings, dict):
            self.problem(data, "\"programme\" is missing (the cap and the academy's address)")
        else:
            programme = self.settings(settings)
        institutions = [self.institution(i) for i in self.items(data, "institutions",
                                                                 "institutions")]
        self.unique(institutions, "code", "institution code")
        self.unique(institutions, "card_prefix", "card prefix")
        self.unique([lib for i in institutions for lib in i.get("libraries", [])], "code",
                    "library code")
        categories = [self.category(c) for c in self.items(data, "categories", "categories")]
        self.unique(categories, "code", "category code")
        courses = self.courses(data, {c["code"] for c in categories if "code" in c})
        module = data.get("module_of_the_month")
        if module is not None and module not in {c["slug"] for c in courses}:
            self.problem(data, key="module_of_the_month", message=(
                f"\"module_of_the_month\": {module!r} is not one of the "
                "courses in this file"))
        return {"programme": programme, "institutions": institutions,
                "categories": categories, "courses": courses, "module_of_the_month": module}

    def unique(self, rows: list[dict[str, Any]], key: str, what: str) -> None:
        seen: set[str] = set()
        for row in rows:
            value = row.get(key)
            if value in seen:
                self.problem(row, key=key, message=(
                    f"the {what} {value!r} is given twice"))
            elif value:
                seen.add(value)

    def settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        cap = settings.get("cap")
        if not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= CAP_MAX:
            self.problem(settings, key="cap", message=(
                "\"cap\": the number of seats must be a whole number "
                f"from 1 to {CAP_MAX:,}"))
        else:
            out["cap"] = cap
        url = settings.get("academy_url")
        if not isinstance(url, str) or not re.fullmatch(r"https://[^\s/]+(/\S*)?", url):
            self.problem(settings, key="academy_url", message=(
                "\"academy_url\": the academy's address for patrons must "
                "start with https://"))
        else:
            out["academy_url"] = url
        ends_on = settings.get("ends_on")
        if ends_on is not None:
            try:
                out["ends_on"] = date.fromisoformat(str(ends_on))
            except ValueError:
                self.problem(settings, key="ends_on", message=(
                    "\"ends_on\": the programme's last day must be written "
                    "YYYY-MM-DD, e.g. 2027-06-30"))
        return out

    def institution(self, inst: dict[str, Any]) -> dict[str, Any]:
        code = inst.get("code")
        what = f"institution {code!r}" if isinstance(code, str) else "an institution"
        out: dict[str, Any] = {"name": self.names(inst, "name", what)}
        if not isinstance(code, str) or institution_code_problem(code):
            self.problem(inst, f"{what}: \"code\" must be 2 to 12 capital letters or digits, "
                               "e.g. ANT")
        else:
            out["code"] = code
        prefix = inst.get("card_prefix")
        if not isinstance(prefix, str) or card_prefix_problem(prefix):
            self.problem(inst, key="card_prefix", message=(
                f"{what}: \"card_prefix\" must be 4 digits in quotes, e.g. "
                "\"2101\" (the start of its card numbers)"))
        else:
            out["card_prefix"] = prefix
        verification = inst.get("verification", "open")
        if verification not in VERIFICATION:
            self.problem(inst, key="verification", message=(
                f"{what}: \"verification\" must be \"open\" (accounts work at "
                "once) or \"verify\" (a librarian sees an identity document)"))
        else:
            out["verification"] = verification
        days = inst.get("pending_days", DEFAULT_PENDING_DAYS)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
            self.problem(inst, key="pending_days", message=(
                f"{what}: \"pending_days\" must be a number of days from 1 to "
                "365"))
        else:
            out["pending_days"] = days
        libraries = []
        for lib in self.items(inst, "libraries", "libraries"):
            lib_code, name = lib.get("code"), lib.get("name")
            if not isinstance(lib_code, str) or library_code_problem(lib_code):
                self.problem(lib, f"{what}: a library's \"code\" must be capital letters, "
                                  "digits and hyphens, e.g. ANT-PERMEKE")
                continue
            if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
                self.problem(lib, key="name", message=(
                    f"library {lib_code}: \"name\" is missing or longer than "
                    f"{NAME_MAX} characters"))
                continue
            libraries.append(self.located(lib, {"code": lib_code, "name": name.strip()}))
        out["libraries"] = libraries
        return self.located(inst, out)

    def category(self, cat: dict[str, Any]) -> dict[str, Any]:
        code = cat.get("code")
        what = f"category {code!r}" if isinstance(code, str) else "a category"
        out: dict[str, Any] = {"name": self.names(cat, "name", what)}
        if not isinstance(code, str) or not CATEGORY_CODE.fullmatch(code):
            self.problem(cat, f"{what}: \"code\" must be up to 20 lower-case letters, digits "
                              "or hyphens, e.g. languages")
        else:
            out["code"] = code
        return self.located(cat, out)

    def courses(self, data: dict[str, Any], categories: set[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for course in self.items(data, "courses", "courses", required=False):
            titles, summaries = course.get("title"), course.get("summary")
            draft = CourseDraft(
                slug=str(course.get("slug") or ""), category=str(course.get("category") or ""),
                hours=str(course.get("hours") or ""),
                titles=titles if isinstance(titles, dict) else {},
                summaries=summaries if isinstance(summaries, dict) else {})
            try:
                clean = validate_course(draft, categories=categories,
                                        taken_slugs={c["slug"] for c in out})
            except RegistryError as error:
                what = f"course {course.get('slug')!r}" if course.get("slug") else "a course"
                for field, code in error.fields.items():
                    self.problem(course, key=field.partition("_")[0], message=(
                        f"{what}: {_course_field(field)} {COURSE_PROBLEMS.get(code, code)}"))
                continue
            out.append({"slug": clean.slug, "category": clean.category, "hours": clean.hours,
                        "title": clean.titles, "summary": clean.summaries})
        return out

    def located(self, source: object, clean: dict[str, Any]) -> dict[str, Any]:
        """`clean` answers to the same line as `source` (for the checks across rows)."""
        self.starts[id(clean)] = self.starts.get(id(source), 0)
        return clean


def _course_field(field: str) -> str:
    """title_fr -> "title" in fr."""
    name, _, lang = field.partition("_")
    return f"the {name} in \"{lang}\"" if lang in LANGUAGES else f"\"{field}\""
