"""Days as Belgians count and type them: the Belgian calendar day of a naive-UTC moment, and
a day as a form sends it.

Plain rules (no SQL), below every use case: the catalogue's module of the month, the
closed days of institutions (which the seat ledger reads) and the kiosk catalogue use them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from .domain import ascii_digits

BELGIUM = ZoneInfo("Europe/Brussels")


def belgian_date(moment: datetime) -> date:
    """The day it is in Belgium at a naive-UTC moment: a module of the month runs on Belgian
    days, so it starts at midnight in Brussels, not at 01:00 or 02:00."""
    return moment.replace(tzinfo=UTC).astimezone(BELGIUM).date()


def parse_day(text: str) -> date | None:
    """A day as a browser's date field sends it (2026-03-31) or as a Belgian types it
    (31/03/2026, 31-3-2026, 31.3.2026); None when it is not a real calendar day."""
    text = ascii_digits(text or "").strip()
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    belgian = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})", text)
    try:
        if iso:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        if belgian:
            return date(int(belgian[3]), int(belgian[2]), int(belgian[1]))
    except ValueError:
        return None
    return None
