"""Word documents (.docx) through python-docx: paragraphs grouped under their headings."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from knowledge.parsers import register
from knowledge.parsers.base import ParseError, Parser, Section

# Compound-file magic: the legacy .doc format, and also any password-protected .docx (Word wraps
# encrypted OOXML in a compound file), neither of which is a zip python-docx could open.
_COMPOUND_FILE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HEADING_STYLE = re.compile(r"^Heading ([1-9])$")


@register
class DocxParser(Parser):
    """Body paragraphs and tables in document order, one section per heading.

    A section's path is the chain of enclosing headings ("Install > Linux"), taken from the
    built-in "Heading 1" … "Heading 9" styles; the heading's own text opens its section. Table
    rows become ``cell | cell`` lines. Headers, footers, comments and text boxes are not read.
    """

    kind = "docx"
    label = "Word document"
    extensions = (".docx",)
    content_types = ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",)
    archive = True

    def extract(self, data: bytes) -> Iterator[Section]:
        if data.startswith(_COMPOUND_FILE):
            raise ParseError(
                "The Word document is password-protected or in the old .doc format; "
                "save it as .docx without a password and upload it again."
            )
        document = docx.Document(io.BytesIO(data))
        headings: list[tuple[int, str]] = []
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(_table_lines(block))
                continue
            level = _heading_level(block)
            if level is None:
                lines.append(block.text)
                continue
            yield Section(text="\n".join(lines), section=_path(headings))
            # A heading closes every open heading of its level or deeper (H1 → H3 is allowed).
            while headings and headings[-1][0] >= level:
                headings.pop()
            title = block.text.strip()
            headings.append((level, title))
            lines = [title]
        yield Section(text="\n".join(lines), section=_path(headings))


def _heading_level(paragraph: Paragraph) -> int | None:
    style = paragraph.style
    match = _HEADING_STYLE.match(style.name or "") if style is not None else None
    return int(match.group(1)) if match else None


def _path(headings: list[tuple[int, str]]) -> str:
    return " > ".join(title for _, title in headings if title)


def _table_lines(table: Table) -> Iterator[str]:
    for row in table.rows:
        cells = []
        seen = set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; show it once.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            yield " | ".join(cells)
