"""The zip bomb check every archive-based upload passes before a parser unpacks it: member count,
unpacked size and packing ratio at their limits, sizes a header lies about, and zips that arrive
under another name or behind a prefix."""

from __future__ import annotations

import io
import zipfile

import pytest

from knowledge.archives import (
    MB,
    RATIO_GRACE_BYTES,
    ArchiveLimits,
    ArchiveRefused,
    archive_check,
)
from knowledge.parsers import ParseError, parse_document
from tests.knowledge.zip_bombs import docx_bytes, lying_docx, many_parts_docx, padded_docx


def _zip(parts: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method, compresslevel=9) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def _refusal(data: bytes, limits: ArchiveLimits) -> str:
    with pytest.raises(ArchiveRefused) as caught:
        archive_check(data, limits)
    return str(caught.value)


def test_member_count_is_allowed_up_to_the_limit_and_refused_past_it():
    limits = ArchiveLimits(max_members=50)
    archive_check(_zip({f"part{i}.xml": b"<a/>" for i in range(50)}), limits)
    refusal = _refusal(_zip({f"part{i}.xml": b"<a/>" for i in range(51)}), limits)
    assert "holds 51 parts; the limit is 50" in refusal


def test_unpacked_size_is_allowed_up_to_the_limit_and_refused_one_byte_past_it():
    limits = ArchiveLimits(max_unpacked_mb=2, max_ratio=1e9)
    exactly = {"a.xml": b"a" * MB, "b.xml": b"b" * MB}
    archive_check(_zip(exactly), limits)
    refusal = _refusal(_zip({**exactly, "c.xml": b"c"}), limits)
    assert "expands to more than 2 MB when unpacked" in refusal


def test_packing_ratio_is_judged_past_the_grace_size_only():
    limits = ArchiveLimits(max_ratio=100)
    # Zeros pack about a thousand to one: harmless while small, a bomb's signature when large.
    archive_check(_zip({"small.xml": bytes(RATIO_GRACE_BYTES)}), limits)
    refusal = _refusal(_zip({"big.xml": bytes(RATIO_GRACE_BYTES + 1)}), limits)
    assert "big.xml unpacks to more than 100 times its packed size" in refusal


def test_packing_ratio_is_allowed_up_to_the_limit_and_refused_past_it():
    data = _zip({"big.xml": bytes(4 * MB)})
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("big.xml")
    ratio = info.file_size / info.compress_size
    archive_check(data, ArchiveLimits(max_ratio=ratio + 0.01))
    assert "times its packed size" in _refusal(data, ArchiveLimits(max_ratio=ratio * 0.99))


def test_a_stored_archive_of_the_size_limit_passes_whatever_the_ratio_limit():
    # Stored (uncompressed) parts unpack to exactly their packed size: a ratio of 1.
    archive_check(_zip({"a.bin": bytes(3 * MB)}, zipfile.ZIP_STORED), ArchiveLimits(max_ratio=1))


def test_a_part_that_holds_more_than_its_header_declares_is_refused():
    # The declared sizes pass every limit; only unpacking shows the 20 MB.
    data = lying_docx(20, declared=2000)
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo("word/document.xml").file_size == 2000
    refusal = _refusal(data, ArchiveLimits(max_ratio=1e9))
    assert "word/document.xml holds more than the 2,000 bytes the file declares" in refusal


def test_declared_sizes_past_the_limit_are_refused_before_unpacking():
    data = bytearray(_zip({"a.xml": b"tiny"}))
    # A central directory that claims 4 GB for a four-byte part.
    entry = data.rindex(b"PK\x01\x02")
    data[entry + 24 : entry + 28] = (0xFFFFFFFF - 1).to_bytes(4, "little")
    assert "expands to more than 256 MB" in _refusal(bytes(data), ArchiveLimits())


def test_the_docx_bomb_the_review_found_is_refused_by_the_parser():
    # 40 MB of XML in about 150 KB: the review's 10 KB → 6 MB upload, scaled up.
    bomb = padded_docx(40)
    assert len(bomb) < 200_000
    with pytest.raises(ArchiveRefused, match="zip bomb"):
        parse_document("report.docx", "", bomb)


def test_a_docx_with_too_many_parts_is_refused_by_the_parser():
    with pytest.raises(ArchiveRefused, match="the limit is 10,000"):
        parse_document("report.docx", "", many_parts_docx(10_000))


def test_a_zip_under_another_name_or_behind_a_prefix_is_checked_too():
    # Zip readers find an archive by its end record, so junk in front does not hide one, and a
    # future xlsx/epub parser (or a text parser fed a zip) gets the same check by construction.
    bomb = padded_docx(40)
    with pytest.raises(ArchiveRefused, match="zip bomb"):
        parse_document("notes.txt", "", bomb)
    with pytest.raises(ArchiveRefused, match="zip bomb"):
        parse_document("report.docx", "", b"junk before the archive" + bomb)


def test_ordinary_documents_pass_and_broken_ones_keep_the_parsers_message():
    sections = parse_document("plain.docx", "", docx_bytes("Hello there.", "General Kenobi."))
    assert [s.text for s in sections] == ["Hello there.\nGeneral Kenobi."]
    with pytest.raises(ParseError, match="Could not read the Word document"):
        parse_document("broken.docx", "", b"PK\x03\x04 not a real archive")
