"""Parsing in a bounded child process: the same sections as in process, and a parse that passes
its memory or time limit fails with that limit while the caller carries on."""

from __future__ import annotations

import io
import time
import zipfile
import zlib

import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject, StreamObject

from knowledge.archives import ArchiveLimits, ArchiveRefused
from knowledge.parse_process import ParseLimitExceeded, ParseLimits, parse_bounded
from knowledge.parsers import ParseError, parse_document
from tests.knowledge.helpers import PARAGRAPHS
from tests.knowledge.zip_bombs import DOCUMENT, docx_bytes, padded_docx, repacked

# The archive check would refuse these documents first; these tests are about what is left
# when a file passes it (a new format, a parser bug, a bomb below the ratio limit).
NO_RATIO_LIMIT = ArchiveLimits(max_ratio=1e9)


def _pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("guide.docx", docx_bytes(*PARAGRAPHS)),
        ("report.pdf", _pdf(PARAGRAPHS[:3])),
        ("notes.md", ("# Facts\n\n" + "\n\n".join(PARAGRAPHS)).encode()),
        ("people.csv", b"name,city\nAda,London\nGrace,Arlington\n"),
    ],
)
def test_a_bounded_parse_gives_the_sections_the_parser_gives(name, data):
    assert parse_bounded(name, "", data, ParseLimits()) == parse_document(name, "", data)


def test_a_parse_past_the_memory_limit_fails_with_the_limit():
    # 40 MB of paragraphs parse to a tree of about a gigabyte.
    limits = ParseLimits(memory_mb=256, archive=NO_RATIO_LIMIT)
    with pytest.raises(ParseLimitExceeded) as caught:
        parse_bounded("big.docx", "", padded_docx(40), limits)
    assert str(caught.value).startswith("Parsing used more than 256 MB of memory")


def test_a_parse_past_the_time_limit_fails_with_the_limit():
    limits = ParseLimits(memory_mb=8192, timeout_s=0.5, archive=NO_RATIO_LIMIT)
    started = time.monotonic()
    with pytest.raises(ParseLimitExceeded) as caught:
        parse_bounded("big.docx", "", padded_docx(40), limits)
    assert str(caught.value).startswith("Parsing took longer than 0.5 s")
    assert time.monotonic() - started < 5  # killed at its deadline, not left to finish


def test_entity_expansion_in_a_docx_is_refused_by_the_xml_parser():
    # The billion laughs: ten levels of ten references each.
    base = docx_bytes("Laughs follow.")
    xml = zipfile.ZipFile(io.BytesIO(base)).read(DOCUMENT).decode()
    declaration, _, body = xml.partition("?>")
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    body = body.replace("Laughs follow.", "Laughs follow. &lol9;")
    laughs = f"{declaration}?><!DOCTYPE w:document [{entities}]>{body}"
    with pytest.raises(ParseError) as caught:
        parse_bounded("laughs.docx", "", repacked(base, {DOCUMENT: laughs.encode()}), ParseLimits())
    assert "amplification" in str(caught.value)


def test_a_pdf_stream_that_inflates_past_pypdfs_cap_is_refused():
    # One page whose content stream packs 300 MB of drawing commands into under a megabyte.
    packer = zlib.compressobj(9)
    commands = b"BT /F1 12 Tf 72 712 Td (bomb) Tj ET\n" * 30_000
    packed = [packer.compress(commands) for _ in range(300 * 1024 * 1024 // len(commands))]
    stream = StreamObject()
    stream._data = b"".join(packed) + packer.flush()
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf(["Tiny"]))))
    writer.pages[0][NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    assert len(out.getvalue()) < 1_000_000
    with pytest.raises(ParseError, match="Could not read the PDF: Limit reached"):
        parse_bounded("bomb.pdf", "", out.getvalue(), ParseLimits(memory_mb=512))


def test_a_zip_bomb_is_refused_in_the_child_before_its_parser_runs():
    started = time.monotonic()
    with pytest.raises(ArchiveRefused, match="zip bomb"):
        parse_bounded("bomb.docx", "", padded_docx(40), ParseLimits())
    assert time.monotonic() - started < 5


def test_an_unsupported_file_is_refused_before_any_process_starts():
    with pytest.raises(ParseError, match="not supported"):
        parse_bounded("tool.exe", "", b"MZ", ParseLimits())
