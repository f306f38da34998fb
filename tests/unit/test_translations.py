"""Every message is translated in nl, fr and en, none fuzzy, none stale."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import polib
import pytest

from kiosk.catalogs import catalogue_problems
from kiosk.paths import resource_dir

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = resource_dir("translations")


@pytest.mark.parametrize("lang", ["nl", "fr", "en"])
def test_catalogue_is_complete_and_not_fuzzy(lang: str) -> None:
    po = polib.pofile(str(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"))
    assert [e.msgid for e in po.untranslated_entries()] == []
    assert [e.msgid for e in po.fuzzy_entries()] == []
    assert [e.msgid for e in po.obsolete_entries()] == []
    assert not po.metadata_is_fuzzy
    assert len(po) > 100


def test_placeholders_match_in_every_translation() -> None:
    assert catalogue_problems(TRANSLATIONS) == []


def test_catalogues_are_not_stale(tmp_path: Path) -> None:
    """What the code and templates say today is exactly what the catalogues translate."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "-q", "extract", "-F",
         str(ROOT / "babel.cfg"), "-k", "_l", "-o", str(pot), str(ROOT)],
        check=True, cwd=ROOT,
    )
    wanted = {(e.msgid, e.msgid_plural) for e in polib.pofile(str(pot))}
    for lang in ("nl", "fr", "en"):
        po = polib.pofile(str(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"))
        have = {(e.msgid, e.msgid_plural) for e in po if not e.obsolete}
        assert sorted(wanted - have) == [], f"{lang}: run `kiosk translations update`"
        assert sorted(have - wanted) == [], f"{lang}: run `kiosk translations update`"


def test_dutch_and_french_are_not_english_copies() -> None:
    for lang in ("nl", "fr"):
        po = polib.pofile(str(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"))
        # A format of placeholders and punctuation only ("%(label)s: %(message)s") has no
        # English to copy: Dutch keeps it as it is, French adds its space.
        same = [e.msgid for e in po if e.msgstr == e.msgid and len(e.msgid) > 12
                and re.search("[a-z]", re.sub(r"%\(\w+\)[sd]", "", e.msgid))]
        assert same == [], f"{lang}: copied from English: {same}"
