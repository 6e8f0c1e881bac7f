"""Document parsers: each format gives sections of readable text with the page or heading path a
citation needs; unreadable, protected, oversized or unsupported files give a message a person
can act on, never a library's exception."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from knowledge.parsers import parse_document, parser_for, supported_extensions
from knowledge.parsers.base import MAX_CHARS, MAX_PAGES, MAX_ROWS, ParseError, Section
from knowledge.parsers.text import decode_text


def _saved(tmp_path: Path, name: str, data: bytes) -> bytes:
    """Write the file as an upload would arrive, and read back what the parser gets."""
    path = tmp_path / name
    path.write_bytes(data)
    return path.read_bytes()


def _pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def _encrypted(data: bytes, *, user_password: str, owner_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _parse_error(filename: str, data: bytes, content_type: str = "") -> str:
    with pytest.raises(ParseError) as caught:
        parse_document(filename, content_type, data)
    return str(caught.value)


# PDF


def test_pdf_gives_one_section_per_page_with_its_page_number(tmp_path):
    data = _saved(
        tmp_path,
        "report.pdf",
        _pdf(["Apples grow on trees.", "Bananas are yellow.", "Cherries are red."]),
    )

    sections = parse_document("report.pdf", "application/pdf", data)

    assert [section.page for section in sections] == [1, 2, 3]
    assert "Apples grow on trees." in sections[0].text
    assert "Bananas are yellow." in sections[1].text
    assert "Cherries are red." in sections[2].text


def test_pdf_blank_pages_are_dropped_but_keep_page_numbers_of_the_rest(tmp_path):
    data = _saved(tmp_path, "report.pdf", _pdf(["", "Only the second page has text."]))

    sections = parse_document("report.pdf", "", data)

    assert [(section.page, section.text) for section in sections] == [
        (2, "Only the second page has text.")
    ]


def test_password_protected_pdf_asks_for_the_password_to_be_removed(tmp_path):
    data = _encrypted(_pdf(["Secret plans."]), user_password="s3cret", owner_password="owner")

    message = _parse_error("plans.pdf", _saved(tmp_path, "plans.pdf", data))

    assert message == "The PDF is encrypted; remove the password and upload it again."


def test_pdf_encrypted_only_for_permissions_opens_with_the_empty_password(tmp_path):
    data = _encrypted(_pdf(["Public notice."]), user_password="", owner_password="owner")

    sections = parse_document("notice.pdf", "", _saved(tmp_path, "notice.pdf", data))

    assert sections[0].text == "Public notice."


def test_corrupt_pdf_says_it_could_not_be_read(tmp_path):
    data = _saved(tmp_path, "broken.pdf", b"%PDF-1.7\nthis is not really a PDF\n")

    message = _parse_error("broken.pdf", data)

    assert message.startswith("Could not read the PDF: ")


def test_pdf_without_text_may_be_a_scan(tmp_path):
    data = _saved(tmp_path, "scan.pdf", _pdf(["", ""]))

    message = _parse_error("scan.pdf", data)

    assert message == "No text found in scan.pdf: it may be a scanned image."


def test_pdf_over_the_page_limit_is_refused_with_the_limit(tmp_path):
    writer = PdfWriter()
    for _ in range(MAX_PAGES + 1):
        writer.add_blank_page(width=72, height=72)
    out = io.BytesIO()
    writer.write(out)

    message = _parse_error("huge.pdf", _saved(tmp_path, "huge.pdf", out.getvalue()))

    assert message == (
        f"The PDF has {MAX_PAGES + 1:,} pages; the limit is {MAX_PAGES:,}. "
        "Split it into smaller files and upload them again."
    )


# Word


def _docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("About this guide.")
    document.add_heading("Install", level=1)
    document.add_paragraph("Download the installer.")
    document.add_heading("Linux", level=2)
    document.add_paragraph("Use the package manager.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Distribution"
    table.cell(0, 1).text = "Command"
    table.cell(1, 0).text = "Debian"
    table.cell(1, 1).text = "apt install studio"
    document.add_paragraph("Then restart.")
    document.add_heading("Usage", level=1)
    document.add_paragraph("Open the studio.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_groups_paragraphs_under_their_heading_path(tmp_path):
    data = _saved(tmp_path, "guide.docx", _docx())

    sections = parse_document("guide.docx", "", data)

    assert [(section.section, section.text) for section in sections] == [
        ("", "About this guide."),
        ("Install", "Install\nDownload the installer."),
        (
            "Install > Linux",
            "Linux\nUse the package manager.\n"
            "Distribution | Command\nDebian | apt install studio\nThen restart.",
        ),
        ("Usage", "Usage\nOpen the studio."),
    ]


def test_legacy_or_protected_word_file_asks_for_a_plain_docx(tmp_path):
    compound_file = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)

    message = _parse_error("old.docx", _saved(tmp_path, "old.docx", compound_file))

    assert message == (
        "The Word document is password-protected or in the old .doc format; "
        "save it as .docx without a password and upload it again."
    )


def test_corrupt_docx_says_it_could_not_be_read(tmp_path):
    message = _parse_error("broken.docx", _saved(tmp_path, "broken.docx", b"not a zip"))

    assert message.startswith("Could not read the Word document: ")


# HTML


def test_html_keeps_visible_text_by_heading_and_drops_code_and_navigation(tmp_path):
    page = b"""<!doctype html>
    <html><head><title>Studio  Help</title>
    <style>body { color: red }</style><script>stealCookies()</script></head>
    <body>
      <nav>Home | Pricing</nav>
      <p>Welcome to the   help pages.</p>
      <h1>Install</h1>
      <p>Run the installer.<br>Then log in.</p>
      <script>trackVisit()</script>
      <h2>Linux</h2>
      <table><tr><th>Distro</th><th>Command</th></tr><tr><td>Debian</td><td>apt</td></tr></table>
      <noscript>Enable JavaScript</noscript>
      <footer>Copyright</footer>
    </body></html>"""

    sections = parse_document("help.html", "text/html", _saved(tmp_path, "help.html", page))

    assert [(section.section, section.text) for section in sections] == [
        ("Studio Help", "Welcome to the help pages."),
        ("Install", "Install\nRun the installer.\nThen log in."),
        ("Install > Linux", "Linux\nDistro | Command\nDebian | apt"),
    ]
    everything = " ".join(section.text for section in sections)
    for hidden in ("color: red", "stealCookies", "trackVisit", "Home", "JavaScript", "Copyright"):
        assert hidden not in everything


def test_html_without_headings_is_filed_under_its_title(tmp_path):
    page = b"<html><head><title>Release notes</title></head><body><p>Faster search.</p></body>"

    sections = parse_document("notes.htm", "", _saved(tmp_path, "notes.htm", page))

    assert sections == [Section(text="Faster search.", section="Release notes")]


# Markdown


def test_markdown_splits_by_heading_but_not_inside_code_blocks(tmp_path):
    text = (
        "Intro line.\n"
        "# Install\n"
        "Run this:\n"
        "```sh\n"
        "# not a heading\n"
        "make install\n"
        "```\n"
        "## Linux ##\n"
        "Use apt.\n"
        "# Usage\n"
        "Open it.\n"
    )

    sections = parse_document("README.md", "", _saved(tmp_path, "README.md", text.encode()))

    assert [section.section for section in sections] == ["", "Install", "Install > Linux", "Usage"]
    assert sections[1].text == "# Install\nRun this:\n```sh\n# not a heading\nmake install\n```"
    assert sections[2].text == "## Linux ##\nUse apt."


# Plain text


def test_latin1_text_is_decoded(tmp_path):
    text = "Café crème brûlée, déjà vu. La façade était naïve; où est le garçon?"
    data = _saved(tmp_path, "menu.txt", text.encode("latin-1"))

    assert parse_document("menu.txt", "text/plain", data) == [Section(text=text)]


def test_utf8_byte_order_mark_is_not_part_of_the_text():
    assert decode_text("Hello".encode("utf-8-sig")) == "Hello"


def test_binary_data_is_not_taken_for_text(tmp_path):
    data = _saved(tmp_path, "photo.txt", bytes(range(256)) * 8)

    message = _parse_error("photo.txt", data)

    assert message == (
        "The file does not look like text; check that it is the right file and upload it again."
    )


def test_nul_characters_and_carriage_returns_are_removed(tmp_path):
    data = _saved(tmp_path, "log.log", b"line one\r\nline\x00 two\r\n")

    assert parse_document("log.log", "", data) == [Section(text="line one\nline two\n")]


def test_empty_file_says_no_text_was_found(tmp_path):
    message = _parse_error("notes.txt", _saved(tmp_path, "notes.txt", b""))

    assert message == "No text found in notes.txt."


def test_text_over_the_character_limit_is_refused_with_the_limit(tmp_path):
    data = _saved(tmp_path, "big.txt", b"a" * (MAX_CHARS + 1))

    message = _parse_error("big.txt", data)

    assert message == (
        f"The document has more than {MAX_CHARS:,} characters of text; "
        "split it into smaller files and upload them again."
    )


# CSV


def test_csv_rows_read_as_column_value_pairs_in_sections_of_fifty(tmp_path):
    lines = ["name,city,notes"] + [f"Person {n},City {n}," for n in range(1, 121)]
    data = _saved(tmp_path, "people.csv", "\n".join(lines).encode())

    sections = parse_document("people.csv", "text/csv", data)

    assert [section.section for section in sections] == ["rows 1-50", "rows 51-100", "rows 101-120"]
    assert sections[0].text.split("\n")[0] == "name: Person 1; city: City 1"
    assert sections[2].text.split("\n")[-1] == "name: Person 120; city: City 120"


def test_csv_dialect_is_sniffed(tmp_path):
    data = _saved(tmp_path, "prices.csv", b'product;price\n"Tea; green";3,50\nCoffee;4,20\n')

    sections = parse_document("prices.csv", "", data)

    assert sections[0].text == "product: Tea; green; price: 3,50\nproduct: Coffee; price: 4,20"


def test_csv_over_the_row_limit_is_refused_with_the_limit(tmp_path):
    data = _saved(tmp_path, "big.csv", b"n\n" + b"1\n" * (MAX_ROWS + 1))

    message = _parse_error("big.csv", data)

    assert message == (
        f"The CSV file has more than {MAX_ROWS:,} rows; "
        "split it into smaller files and upload them again."
    )


# Choosing a parser


def test_unsupported_extension_lists_the_supported_ones(tmp_path):
    message = _parse_error("photo.png", _saved(tmp_path, "photo.png", b"\x89PNG"), "image/png")

    assert message == (
        f"Files of type .png are not supported; supported: {', '.join(supported_extensions())}."
    )
    assert ".csv, .docx, .htm, .html" in message


def test_extension_wins_over_content_type_and_content_type_serves_files_without_one():
    assert parser_for("Report.PDF", "application/octet-stream").kind == "pdf"
    assert parser_for("export", "text/csv; charset=utf-8").kind == "csv"


def test_supported_extensions_cover_every_format_sorted():
    extensions = supported_extensions()

    assert extensions == sorted(extensions)
    assert {".csv", ".docx", ".html", ".md", ".pdf", ".txt"} <= set(extensions)
