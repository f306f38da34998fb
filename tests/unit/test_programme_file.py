"""The programme file a coordinator fills in: read and checked before anything is written,
every problem told at once with its line, in plain words."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from kiosk.registry.programme_file import (
    ProgrammeFileError,
    parse_programme,
    read_programme,
    template_text,
)


def problems(text: str) -> list[str]:
    with pytest.raises(ProgrammeFileError) as caught:
        parse_programme(text)
    return caught.value.problems


def test_the_shipped_template_is_a_valid_programme() -> None:
    programme = parse_programme(template_text())
    assert programme["programme"] == {"cap": 1000, "ends_on": date(2028, 6, 30),
                                      "academy_url": "https://academy.example.be/library-courses"}
    assert [i["code"] for i in programme["institutions"]] == ["ANT", "MUN"]
    assert programme["institutions"][1]["verification"] == "verify"
    assert programme["courses"][0]["slug"] == "word-basics"


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_each_problem_is_told_at_once_with_the_line_it_is_on() -> None:
    text = (template_text().replace('"cap": 1000', '"cap": "many"')
            .replace('"card_prefix": "2109"', '"card_prefix": 2109')
            .replace('"category": "office"', '"category": "kantoor"'))
    assert problems(text) == [
        f'line {line_of(text, "many")}: "cap": the number of seats must be a whole number '
        "from 1 to 1,000,000",
        f"line {line_of(text, '2109')}: institution 'MUN': \"card_prefix\" must be 4 digits "
        'in quotes, e.g. "2101" (the start of its card numbers)',
        f"line {line_of(text, 'kantoor')}: course 'word-basics': \"category\" is not one of "
        "the categories above",
    ]


def test_a_code_given_twice_is_named_where_it_comes_again() -> None:
    text = template_text().replace('"MUN-BRUSSEL"', '"ANT-HOBOKEN"')
    line = line_of(text, '"ANT-HOBOKEN", "name": "Muntpunt')
    assert problems(text) == [f"line {line}: the library code 'ANT-HOBOKEN' is given twice"]


def test_missing_names_and_lists_are_told_in_plain_words() -> None:
    data = json.loads(template_text())
    del data["institutions"][0]["name"]["fr"]
    data["institutions"][1]["libraries"] = []
    data["categories"] = []
    data["module_of_the_month"] = "no-such-course"
    found = " | ".join(problems(json.dumps(data, indent=2)))
    assert "institution 'ANT': the name in \"fr\" is missing" in found
    assert '"libraries" must be a list of libraries, with at least one' in found
    assert '"categories" must be a list of categories, with at least one' in found
    assert "'no-such-course' is not one of the courses" in found


def test_a_file_that_is_not_json_is_told_with_its_line() -> None:
    assert problems('{\n  "programme": {"cap": 10,}\n}') == [
        "line 2: this is not valid JSON here (Expecting property name enclosed in double "
        "quotes, column 27)"]
    assert problems("[]") == ['line 1: the file must hold one { … } with "programme", '
                              '"institutions" and "categories"']


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "programme.json"
    path.write_text("\ufeff" + template_text(), encoding="utf-8")
    assert read_programme(path)["programme"]["cap"] == 1000
    with pytest.raises(ProgrammeFileError, match="cannot read"):
        read_programme(tmp_path / "missing.json")
