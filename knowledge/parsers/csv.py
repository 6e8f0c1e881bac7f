"""CSV and TSV files: each row rendered as ``column: value`` pairs, 50 rows to a section."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from knowledge.parsers import register
from knowledge.parsers.base import MAX_ROWS, ParseError, Parser, Section
from knowledge.parsers.text import decode_text

ROWS_PER_SECTION = 50
# Enough lines for the sniffer to see the pattern; it is slow on large samples.
_SNIFF_CHARS = 20_000
_DELIMITERS = ",;\t|"


@register
class CsvParser(Parser):
    """Rows under their header, so each chunk says what its values mean.

    The first row is the header. A row becomes ``col: value; col: value`` with empty values
    left out (a column without a name is called ``column N``); sections are named by the data
    rows they hold, counted from 1 after the header (``"rows 1-50"``).
    """

    kind = "csv"
    label = "CSV file"
    extensions = (".csv", ".tsv")
    content_types = ("text/csv", "application/csv", "text/tab-separated-values")

    def extract(self, data: bytes) -> Iterator[Section]:
        text = decode_text(data)
        rows = csv.reader(io.StringIO(text, newline=""), _dialect(text))
        header = [" ".join(name.split()) for name in next(rows, [])]
        lines: list[str] = []
        first = 1
        count = 0
        for row in rows:
            if not any(value.strip() for value in row):
                continue
            count += 1
            if count > MAX_ROWS:
                raise ParseError(
                    f"The CSV file has more than {MAX_ROWS:,} rows; "
                    "split it into smaller files and upload them again."
                )
            lines.append(_render(header, row))
            if len(lines) == ROWS_PER_SECTION:
                yield Section(text="\n".join(lines), section=f"rows {first}-{count}")
                lines = []
                first = count + 1
        if lines:
            yield Section(text="\n".join(lines), section=f"rows {first}-{count}")


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS:
        # A cut-off last line would look like a row with too few fields.
        sample = sample[: sample.rfind("\n") + 1] or sample
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel


def _render(header: list[str], row: list[str]) -> str:
    pairs = []
    for index, value in enumerate(row):
        value = " ".join(value.split())
        if not value:
            continue
        name = header[index] if index < len(header) and header[index] else f"column {index + 1}"
        pairs.append(f"{name}: {value}")
    return "; ".join(pairs)
