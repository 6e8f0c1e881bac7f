"""The document parser registry: one module per format in this package, each registering its class.

Modules are discovered, not listed, so supporting a format means adding a file. A file is matched
to a parser by its extension first (browsers often send a vague content type) and by its content
type only when the extension is unknown or missing. Every archive is checked for zip bombs before
its parser sees it (``knowledge/archives.py``): by the parser's ``archive`` flag, and by sniffing
the bytes, so a new zip-based format is covered without asking.
"""

from __future__ import annotations

from pathlib import PurePath

# The module, not its names: knowledge.archives imports ParseError from this package.
from knowledge import archives
from knowledge.parsers.base import ParseError, Parser, Section
from studio.registry import Registry

__all__ = [
    "ParseError",
    "Parser",
    "Section",
    "parse_document",
    "parse_with",
    "parser_for",
    "register",
    "supported_extensions",
]

_registry: Registry[type[Parser]] = Registry(__name__, noun="parser", key=lambda cls: cls.kind)
PARSERS = _registry.members
register = _registry.register


def _parsers() -> list[type[Parser]]:
    return [PARSERS[kind] for kind in _registry.names()]


def supported_extensions() -> list[str]:
    """Every extension some parser reads, lower case with the dot, sorted."""
    return sorted({ext for cls in _parsers() for ext in cls.extensions})


def parser_for(filename: str, content_type: str = "") -> Parser:
    """The parser for a file, chosen by extension, then by content type.

    Raises ``ParseError`` naming the supported extensions when no parser reads the file.
    """
    extension = PurePath(filename).suffix.lower()
    # "text/csv; charset=utf-8" names the same type as "text/csv".
    mime = content_type.split(";", 1)[0].strip().lower()
    parsers = _parsers()
    for cls in parsers:
        if extension and extension in cls.extensions:
            return cls()
    for cls in parsers:
        if mime and mime in cls.content_types:
            return cls()
    shown = extension or mime or "unknown"
    raise ParseError(
        f"Files of type {shown} are not supported; supported: {', '.join(supported_extensions())}."
    )


def parse_document(
    filename: str,
    content_type: str,
    data: bytes,
    archive_limits: archives.ArchiveLimits | None = None,
) -> list[Section]:
    """Parse an uploaded file into non-empty sections in reading order.

    Text is normalised for storage: NUL characters (which PostgreSQL text cannot hold) are
    removed and line endings become ``\\n``. Raises ``ParseError`` when the type is not supported,
    the file cannot be read, a limit is exceeded (``ArchiveRefused`` for an archive's), or no
    readable text is left. This runs in the caller's process, unbounded: ingestion calls it
    through ``knowledge.parse_process``, which adds the memory and time limits.
    """
    limits = archive_limits or archives.ArchiveLimits()
    return parse_with(parser_for(filename, content_type), filename, data, limits)


def parse_with(
    parser: Parser, filename: str, data: bytes, archive_limits: archives.ArchiveLimits
) -> list[Section]:
    """``parse_document`` with the parser already chosen."""
    if parser.archive or archives.looks_like_zip(data):
        archives.archive_check(data, archive_limits)
    sections = []
    for section in parser.parse(data):
        text = _normalise(section.text)
        if text.strip():
            sections.append(Section(text=text, page=section.page, section=section.section))
    if not sections:
        name = PurePath(filename).name or "the file"
        hint = f": {parser.empty_hint}" if parser.empty_hint else "."
        raise ParseError(f"No text found in {name}{hint}")
    return sections


def _normalise(text: str) -> str:
    return text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
