"""What staff lists show of a card number: enough to tell two people apart, not enough to log
in with. A plain rule (no SQL), shared by the desk's search results and the duplicates queue
(the other institution's account)."""

from __future__ import annotations


def mask_card_number(card: str) -> str:
    """For result lists: the institution's prefix and the last three digits, enough to tell
    two people apart aloud, not enough to log in with."""
    if len(card) != 13:
        return "•" * len(card)
    return f"{card[:4]} •••• ••{card[-3:]}"
