"""French "de" before a name: "Avec l’aide d’An Peeters", "Avec l’aide de Bart Claes".

Plain Python (no Flask): the rule is tested alone; kiosk.i18n applies it to French pages.
"""

from __future__ import annotations

import unicodedata

# Vowel sounds that always elide "de". A name starting with h or y is left as "de": whether
# it elides depends on the name (h aspiré, a y said as a consonant), and "de" is never wrong.
_VOWELS = frozenset("aeiouœæ")


def de(name: str) -> str:
    """"de" and the name, elided to "d’" (typographic apostrophe) before a vowel, accented
    or not: "d’An Peeters", "d’Émile Dubois", "de Bart Claes"."""
    first = unicodedata.normalize("NFD", name.strip()[:1]).lower()[:1]
    return f"d’{name}" if first in _VOWELS else f"de {name}"


def elide_de(text: str, name: str) -> str:
    """A French sentence with "de <name>" in it, that "de" elided where French wants it.
    Only the name's own "de" changes; a text without it is answered as it is."""
    if not name:
        return text
    return text.replace(f"de {name}", de(name))
