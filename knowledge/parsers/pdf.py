"""PDF files, one section per page, through pypdf."""

from __future__ import annotations

import io
from collections.abc import Iterator

from pypdf import PasswordType, PdfReader
from pypdf.errors import FileNotDecryptedError

from knowledge.parsers import register
from knowledge.parsers.base import MAX_PAGES, ParseError, Parser, Section

ENCRYPTED = "The PDF is encrypted; remove the password and upload it again."


@register
class PdfParser(Parser):
    """Text of each page, in page order, with its 1-based page number.

    Pages without a text layer (scans) give empty sections; OCR is out of scope.
    """

    kind = "pdf"
    label = "PDF"
    extensions = (".pdf",)
    content_types = ("application/pdf", "application/x-pdf")
    empty_hint = "it may be a scanned image."

    def extract(self, data: bytes) -> Iterator[Section]:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only to set permissions, with an empty user password;
            # those open without asking anyone for anything.
            if reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                raise ParseError(ENCRYPTED)
        try:
            count = len(reader.pages)
        except FileNotDecryptedError:
            raise ParseError(ENCRYPTED) from None
        if count > MAX_PAGES:
            raise ParseError(
                f"The PDF has {count:,} pages; the limit is {MAX_PAGES:,}. "
                "Split it into smaller files and upload them again."
            )
        for number, page in enumerate(reader.pages, start=1):
            yield Section(text=page.extract_text() or "", page=number)
