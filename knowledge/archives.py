"""Zip bomb checks for archive-based uploads (docx today; xlsx, pptx, epub alike), before parsing.

An Office file or an EPUB is a zip whose members a parser unpacks in memory, so a few kilobytes
can name gigabytes. ``archive_check`` unpacks every member as a stream, in small blocks that are
counted and dropped, and refuses the file at the first limit it passes: the number of members,
the total unpacked size, a member that unpacks to far more than its packed size (after a grace
size, as Apache POI does), or one that holds more than its header declares. Declared sizes are
checked first, as the cheap refusal, but never trusted: only the bytes the stream gives count.
"""

from __future__ import annotations

import copy
import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from knowledge.parsers.base import ParseError

MB = 1024 * 1024
_BLOCK = 64 * 1024
# Small members may compress extremely well (styles, an empty table's repeated cells); a bomb
# needs size, so the ratio is judged only once a member has unpacked past this.
RATIO_GRACE_BYTES = 1 * MB


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may hold; the defaults are the studio's (settings override them)."""

    max_members: int = 10_000
    max_unpacked_mb: int = 256
    # Apache POI refuses a member that inflates more than 100 times (its MIN_INFLATE_RATIO 0.01).
    max_ratio: float = 100.0


class ArchiveRefused(ParseError):
    """The upload is an archive that passes a limit; the message names the limit."""


def looks_like_zip(data: bytes) -> bool:
    """Whether a zip reader would open these bytes, wherever the archive starts in them.

    Readers find a zip by its end record, so a prefix of junk does not hide one: this asks the
    same question, not "does it start with PK".
    """
    return zipfile.is_zipfile(io.BytesIO(data))


def archive_check(data: bytes, limits: ArchiveLimits) -> None:
    """Raise ``ArchiveRefused`` when the zip in ``data`` passes one of ``limits``.

    Data that does not open as a zip is left to the parser, whose error then says what is wrong
    with the file. Memory stays at one block per member whatever the archive claims.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return
    with archive:
        members = archive.infolist()
        _check_declared(members, limits)
        budget = limits.max_unpacked_mb * MB
        for member in members:
            budget -= _unpack_counted(archive, member, budget, limits)


def _check_declared(members: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    if len(members) > limits.max_members:
        raise ArchiveRefused(
            f"The file holds {len(members):,} parts; the limit is {limits.max_members:,}. "
            "It was not read; check that it is the right file."
        )
    if sum(m.file_size for m in members) > limits.max_unpacked_mb * MB:
        raise _too_large(limits)


def _unpack_counted(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: int, limits: ArchiveLimits
) -> int:
    """Unpack one member in blocks, counting; return its true size. Refuse past a limit."""
    unpacked = 0
    for block in _blocks(archive, member, budget):
        unpacked += len(block)
        if unpacked > budget:
            raise _too_large(limits)
        if unpacked > member.file_size:
            raise ArchiveRefused(
                f"The part {member.filename} holds more than the {member.file_size:,} bytes the "
                "file declares for it: the file is damaged or crafted, and was not read."
            )
        if unpacked > RATIO_GRACE_BYTES and unpacked > limits.max_ratio * max(
            member.compress_size, 1
        ):
            raise ArchiveRefused(
                f"The part {member.filename} unpacks to more than {limits.max_ratio:g} times its "
                "packed size, which no ordinary document does (a zip bomb); the file was not read."
            )
    return unpacked


def _blocks(archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: int) -> Iterator[bytes]:
    # zipfile stops a member at its declared size; a copy that declares one byte past the budget
    # lets the stream show what it really holds, while still never unpacking past the budget.
    probe = copy.copy(member)
    probe.file_size = budget + 1
    try:
        with archive.open(probe) as stream:
            while block := stream.read(_BLOCK):
                yield block
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method.
        raise ArchiveRefused(
            f"The part {member.filename} of the file cannot be unpacked ({exc}); "
            "the file is damaged or protected, and was not read."
        ) from None


def _too_large(limits: ArchiveLimits) -> ArchiveRefused:
    return ArchiveRefused(
        f"The file expands to more than {limits.max_unpacked_mb:,} MB when unpacked; it was not "
        "read. Split the document into smaller files and upload them again."
    )
