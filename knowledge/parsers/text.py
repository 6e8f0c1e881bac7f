"""Plain text files, and ``decode_text``, which every text-based format decodes with."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

from knowledge.parsers import register
from knowledge.parsers.base import ParseError, Parser, Section

_CHAOS_MARGIN = 0.1


def decode_text(data: bytes) -> str:
    """Decode the bytes of a text file.

    UTF-8 (with or without a byte-order mark) is tried first because it is by far the most
    common and a successful strict decode is almost never wrong; otherwise charset-normalizer's
    best guess (UTF-16 with a BOM, Windows-1251, …). Raises ``ParseError`` when the bytes do not
    look like text in any encoding.
    """
    if not data:
        return ""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise ParseError(
            "The file does not look like text; check that it is the right file and upload it again."
        )
    # On short Western European text the detector often ranks a Baltic or Mac code page first
    # ("crčme" for "crème"); Windows-1252 (a superset of Latin-1 for text) is far more common in
    # uploads, so it wins whenever it reads the bytes about as cleanly as the top guess.
    for match in matches:
        if "cp1252" in match.could_be_from_charset and match.chaos <= best.chaos + _CHAOS_MARGIN:
            try:
                return data.decode("cp1252")
            except UnicodeDecodeError:
                break
    return str(best)


@register
class TextParser(Parser):
    """The whole file as one section; chunking splits it."""

    kind = "text"
    label = "text file"
    extensions = (".txt", ".text", ".log")
    content_types = ("text/plain",)

    def extract(self, data: bytes) -> Iterator[Section]:
        yield Section(text=decode_text(data))
