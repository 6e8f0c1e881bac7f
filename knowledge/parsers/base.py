"""The one interface of every document parser: ``parse(data) -> [Section, …]``.

A parser turns the bytes of one uploaded file into sections of plain text, each carrying where it
came from (a page, a heading path, a row range) so that chunks cut from it can be cited. Parsers
never execute, fetch or follow anything the document points to.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

# Limits that keep one upload from holding a worker for hours or filling the database.
MAX_PAGES = 2000
MAX_CHARS = 20_000_000
MAX_ROWS = 100_000


@dataclass(frozen=True)
class Section:
    """A run of text from one place in a document.

    ``page`` is 1-based and set only for paged formats (PDF). ``section`` is a human-readable
    location: a heading path such as ``"Install > Linux"``, or ``"rows 1-50"`` for tables.
    """

    text: str
    page: int | None = None
    section: str = ""


class ParseError(Exception):
    """A document could not be turned into text.

    The message is shown to the person who uploaded the file, so it says what is wrong and, where
    there is one, what to do about it, without programmer vocabulary.
    """


class Parser(abc.ABC):
    """Reads one file format.

    Subclasses set the class variables and implement ``extract``; ``parse`` adds the text-size
    limit and turns any library exception into a ``ParseError``.
    """

    kind: ClassVar[str]
    # The name of the format in messages: "Could not read the {label}: …".
    label: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    content_types: ClassVar[tuple[str, ...]]
    # Appended to "No text found in <file>" when the format has a typical reason for it.
    empty_hint: ClassVar[str] = ""
    # The format is a zip of parts (docx, xlsx, pptx, epub): its unpacked size is checked before
    # ``extract`` sees it. Any upload that opens as a zip is checked too, whatever its parser.
    archive: ClassVar[bool] = False

    def parse(self, data: bytes) -> list[Section]:
        """Return the document's sections in reading order.

        Raises ``ParseError`` for unreadable, protected or too large documents; no other
        exception type escapes except ``MemoryError``, which the bounded parse process reports
        as the memory limit it is. Sections may be empty; ``parse_document`` drops those.
        """
        sections: list[Section] = []
        total = 0
        try:
            # Consumed lazily so that an oversized document stops at the limit, not at its end.
            for section in self.extract(data):
                total += len(section.text)
                if total > MAX_CHARS:
                    raise ParseError(
                        f"The document has more than {MAX_CHARS:,} characters of text; "
                        "split it into smaller files and upload them again."
                    )
                sections.append(section)
        except (ParseError, MemoryError):
            raise
        except Exception as exc:
            raise ParseError(f"Could not read the {self.label}: {_describe(exc)}") from exc
        return sections

    @abc.abstractmethod
    def extract(self, data: bytes) -> Iterator[Section]:
        """Yield the document's sections in reading order; may raise anything."""


def _describe(exc: Exception) -> str:
    # Some library exceptions carry no message; their type name is then the best clue left.
    return str(exc).strip() or type(exc).__name__
