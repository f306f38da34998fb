"""CSV files for the staff pages (the dashboard's exports, the waiting list's), as Excel in
Belgium opens them by double-click.

UTF-8 with a byte order mark (without it Excel reads UTF-8 as Windows-1252 and "é" comes out
garbled) and `;` between cells — Belgian Excel (nl-BE, fr-BE) writes decimals with a comma,
so its list separator, the one it expects when it opens a .csv by double-click, is the
semicolon. Dates as yyyy-mm-dd, which Excel reads as a date in every language. No "sep=;"
line: with one, Excel ignores the byte order mark. A cell a spreadsheet would run as a
formula is written with a leading apostrophe (`csv_cell`).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from flask import Response

from ..i18n import belgian_time
from ..registry.days import BELGIUM

SEPARATOR = ";"
BOM = "\ufeff"
# A cell starting with one of these is a formula to Excel or LibreOffice (CSV injection);
# spreadsheets skip leading spaces and read full-width ＝＋－＠ (and the small forms) as
# their ASCII selves, so those count too (compared after NFKC, see `csv_cell`).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CHUNK = 500  # lines per piece of a streamed file


def csv_cell(value: object) -> str:
    """One cell as text; text that a spreadsheet would run as a formula gets a leading
    apostrophe, so it is shown as typed."""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = "" if value is None else str(value)
    if isinstance(value, str) and (text.startswith(_FORMULA_START) or unicodedata.normalize(
            "NFKC", text.lstrip()[:1]).startswith(_FORMULA_START)):
        return "'" + text
    return text


def csv_lines(rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """Each row as one CSV line (`;`, quoted where needed, CRLF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=SEPARATOR, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_document(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    return BOM + "".join(csv_lines([header, *rows]))


def csv_stream(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """The file in pieces of a few hundred lines, so a long list never sits in memory."""
    yield BOM
    yield from csv_lines([header])
    chunk: list[str] = []
    for line in csv_lines(rows):
        chunk.append(line)
        if len(chunk) == _CHUNK:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def csv_time(moment: datetime) -> str:
    """A naive-UTC moment in Belgian time, for a CSV cell: 2025-03-03 14:05."""
    return belgian_time(moment).strftime("%Y-%m-%d %H:%M")


def file_name(words: str) -> str:
    """Words as a file name any system takes: "Inscriptions par formation" is
    "inscriptions-par-formation" (no accents, spaces or quotes)."""
    plain = unicodedata.normalize("NFKD", words).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-") or "export"


def attachment(body: Iterable[str] | str, name: str, *, private: bool = False) -> Response:
    """A CSV download, named in the page's language and dated (Belgian day)."""
    today = datetime.now(BELGIUM).date().isoformat()
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{file_name(name)}-{today}.csv"')
    response.headers["X-Content-Type-Options"] = "nosniff"
    if private:  # personal data: in no cache, not even the browser's
        response.headers["Cache-Control"] = "no-store, max-age=0"
        response.headers["Pragma"] = "no-cache"
    else:
        response.headers["Cache-Control"] = "private, no-cache"
    return response
