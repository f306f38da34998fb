"""One vocabulary per language: translations/glossary.toml names the word for each concept
and the variants to avoid; no catalogue may use one where the glossary applies."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = tomllib.loads((ROOT / "translations" / "glossary.toml").read_text(encoding="utf-8"))
LANGS = ("nl", "fr")


def catalogue(lang: str) -> Catalog:
    with (ROOT / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def translations(catalog: Catalog) -> Iterator[tuple[str, str]]:
    """(English, translation) of every translated message, each plural form on its own."""
    for message in catalog:
        if not message.id:
            continue
        english = message.id if isinstance(message.id, str) else message.id[0]
        strings = message.string if isinstance(message.string, list | tuple) \
            else [message.string]
        for text in strings:
            if text:
                yield english, text


def misuses(rules: list[dict], lang: str, messages: list[tuple[str, str]]) -> list[str]:
    found = []
    for rule in rules:
        where = re.compile(rule.get("where", ""))
        allowed = set(rule.get("except", []))
        for pattern in rule.get(f"avoid_{lang}", []):
            avoid = re.compile(pattern, re.IGNORECASE)
            for english, text in messages:
                if english in allowed or not where.search(english):
                    continue
                if avoid.search(text):
                    name = rule.get("concept") or rule.get("rule")
                    found.append(f"{lang} [{name}] {pattern!r}: {text!r}")
    return found


def test_the_english_texts_keep_to_the_glossary() -> None:
    """The English is written in the code: each message checked as it stands."""
    messages = sorted({(english, english) for english, _ in translations(catalogue("nl"))})
    problems = misuses(GLOSSARY["term"] + GLOSSARY["style"], "en", messages)
    assert not problems, f"{len(problems)} message(s) off the glossary:\n" + "\n".join(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_the_catalogue_keeps_to_the_glossary(lang: str) -> None:
    messages = list(translations(catalogue(lang)))
    problems = misuses(GLOSSARY["term"] + GLOSSARY["style"], lang, messages)
    assert not problems, f"{len(problems)} message(s) off the glossary:\n" + "\n".join(problems)


def test_the_check_finds_an_avoided_word_and_respects_where_and_except() -> None:
    rule = {"concept": "kiosk", "avoid_nl": [r"\bcomputer\b"], "where": "(?i)kiosk|computer",
            "except": ["On your own computer at home."]}
    messages = [("This computer is not ready.", "Deze computer is niet klaar."),
                ("On your own computer at home.", "Op je eigen computer thuis."),
                ("Settings", "De computer-instellingen")]
    assert misuses([rule], "nl", messages) == [
        "nl [kiosk] '\\\\bcomputer\\\\b': 'Deze computer is niet klaar.'"]


def test_every_term_names_its_word_in_each_language() -> None:
    for term in GLOSSARY["term"]:
        assert {"concept", "en", "nl", "fr"} <= set(term), term
