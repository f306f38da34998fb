"""French "de" before a name (kiosk/french.py)."""

from __future__ import annotations

from kiosk.french import de, elide_de


def test_de_is_elided_before_a_vowel_accented_or_not() -> None:
    assert de("An Peeters") == "d’An Peeters"
    assert de("Émile Dubois") == "d’Émile Dubois"
    assert de("Œdipe Roi") == "d’Œdipe Roi"
    assert de("ines") == "d’ines"


def test_de_stays_before_a_consonant_an_h_or_a_y() -> None:
    assert de("Bart Claes") == "de Bart Claes"
    assert de("Hugo Maes") == "de Hugo Maes"
    assert de("Yves Dupont") == "de Yves Dupont"


def test_only_the_names_own_de_changes_in_a_sentence() -> None:
    sentence = "Avec l’aide de An Peeters (Bibliothèque de Anvers)"
    assert elide_de(sentence, "An Peeters") == (
        "Avec l’aide d’An Peeters (Bibliothèque de Anvers)")
    assert elide_de("Avec l’aide de Bart Claes", "Bart Claes") == "Avec l’aide de Bart Claes"
    assert elide_de("Assisted by An Peeters", "An Peeters") == "Assisted by An Peeters"
    assert elide_de("de ", "") == "de "
