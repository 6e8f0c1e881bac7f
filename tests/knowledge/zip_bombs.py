"""Hostile Word documents for the archive and parse-limit tests, built as an attacker would: valid
docx packages (python-docx writes the base) whose parts say or hold far more than they should."""

from __future__ import annotations

import io
import struct
import zipfile

import docx

# An empty paragraph: as much XML as a paragraph can be with no text, so a document of millions
# of them parses to a huge tree and, without limits, to almost nothing to embed.
EMPTY_PARAGRAPH = '<w:p><w:pPr><w:jc w:val="left"/></w:pPr></w:p>'
DOCUMENT = "word/document.xml"


def docx_bytes(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def padded_docx(unpacked_mb: float, text: str = "The bomb has one real sentence.") -> bytes:
    """A valid docx whose document.xml is ``unpacked_mb`` of empty paragraphs and one sentence.

    It packs about 1000 to 1, so a few tens of kilobytes name tens of megabytes of XML.
    """
    base = docx_bytes(text)
    xml = zipfile.ZipFile(io.BytesIO(base)).read(DOCUMENT).decode()
    padding = EMPTY_PARAGRAPH * int(unpacked_mb * 1024 * 1024 / len(EMPTY_PARAGRAPH))
    return repacked(base, {DOCUMENT: xml.replace("<w:body>", "<w:body>" + padding, 1).encode()})


def many_parts_docx(extra_parts: int) -> bytes:
    """A valid docx carrying ``extra_parts`` more (empty) parts than it needs."""
    parts = {f"customXml/item{i}.xml": b"" for i in range(extra_parts)}
    return repacked(docx_bytes("A document with too many parts."), parts)


def lying_docx(unpacked_mb: float, declared: int = 2000) -> bytes:
    """A docx whose document.xml holds ``unpacked_mb`` but whose headers (the local one and the
    central directory's) declare ``declared`` bytes, as a bomb would to pass a size check."""
    data = bytearray(padded_docx(unpacked_mb))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(DOCUMENT)
    # Local file header: the uncompressed size is at offset 22.
    struct.pack_into("<I", data, info.header_offset + 22, declared)
    # Central directory entry: signature, then the uncompressed size at offset 24.
    struct.pack_into("<I", data, _central_entry(data, DOCUMENT) + 24, declared)
    return bytes(data)


def repacked(base: bytes, parts: dict[str, bytes]) -> bytes:
    """``base``'s package with ``parts`` replaced or added, every part deflated."""
    source = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for info in source.infolist():
            if info.filename not in parts:
                archive.writestr(info.filename, source.read(info.filename))
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def _central_entry(data: bytearray, name: str) -> int:
    encoded = name.encode()
    start = 0
    while (entry := data.find(b"PK\x01\x02", start)) >= 0:
        # The name follows the 46-byte fixed part; its length is at offset 28.
        (length,) = struct.unpack_from("<H", data, entry + 28)
        if data[entry + 46 : entry + 46 + length] == encoded:
            return entry
        start = entry + 4
    raise ValueError(f"{name} is not in the central directory")
