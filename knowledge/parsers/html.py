"""HTML pages through BeautifulSoup's pure-Python parser: visible text, one section per heading.

The page is only parsed, never rendered: no script runs and nothing it links to is fetched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bs4 import BeautifulSoup, NavigableString
from bs4.element import PreformattedString

from knowledge.parsers import register
from knowledge.parsers.base import Parser, Section
from knowledge.parsers.text import decode_text

# Not content a reader of the page would call its text: code, navigation, boilerplate, and
# fallbacks for embedded things.
_DROPPED = (
    "script",
    "style",
    "noscript",
    "nav",
    "footer",
    "template",
    "head",
    "svg",
    "iframe",
    "object",
)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Elements that start a new line when a browser lays them out.
_BLOCKS = (
    "address",
    "article",
    "aside",
    "blockquote",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "form",
    "header",
    "hr",
    "li",
    "main",
    "ol",
    "p",
    "section",
    "summary",
    "table",
    "tr",
    "ul",
)
_SPACE = re.compile(r"\s+")


class _Break(NavigableString):
    """A line break a browser would show (a block boundary or ``<br>``)."""


class _Heading(NavigableString):
    """A heading's text, standing in for the heading element; ``level`` is 1-6."""

    level: int


class _Pre(NavigableString):
    """The text of a ``<pre>`` element, whose line breaks and spacing are content."""


@register
class HtmlParser(Parser):
    """Visible text in document order, one section per heading.

    A section's path is the chain of enclosing headings; text before the first heading (or the
    whole page when it has none) is filed under the page's ``<title>``.
    """

    kind = "html"
    label = "web page"
    extensions = (".html", ".htm", ".xhtml")
    content_types = ("text/html", "application/xhtml+xml")

    def extract(self, data: bytes) -> Iterator[Section]:
        soup = BeautifulSoup(decode_text(data), "html.parser")
        title = _title(soup)
        # A <title> outside <head> (a fragment, or one in an SVG image) is not visible text either.
        for tag in soup.find_all((*_DROPPED, "title")):
            tag.decompose()
        _mark_structure(soup)

        headings: list[tuple[int, str]] = []
        lines: list[str] = []
        line: list[str] = []

        def end_line() -> None:
            text = _SPACE.sub(" ", "".join(line)).strip()
            if text:
                lines.append(text)
            line.clear()

        def path() -> str:
            return " > ".join(text for _, text in headings if text) or title

        for node in list(soup.descendants):
            if isinstance(node, _Heading):
                end_line()
                yield Section(text="\n".join(lines), section=path())
                while headings and headings[-1][0] >= node.level:
                    headings.pop()
                headings.append((node.level, str(node)))
                lines = [str(node)]
            elif isinstance(node, _Pre):
                end_line()
                lines.append(str(node).strip("\n"))
            elif isinstance(node, _Break):
                end_line()
            elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):
                # PreformattedString covers comments, CDATA, doctypes and processing instructions.
                line.append(str(node))
        end_line()
        yield Section(text="\n".join(lines), section=path())


def _title(soup: BeautifulSoup) -> str:
    for tag in soup.find_all("title"):
        if tag.find_parent("svg") is None:
            return " ".join(tag.get_text().split())
    return ""


def _mark_structure(soup: BeautifulSoup) -> None:
    """Replace headings, ``<pre>`` and ``<br>`` by marker strings; fence blocks with breaks and
    separate table cells with ``|``.

    This lets one pass over the strings in document order see where lines and sections end,
    without recursion (deeply nested pages must not exhaust the stack).
    """
    # <pre> first: a heading or <br> inside one is part of its verbatim text.
    for tag in soup.find_all("pre"):
        tag.replace_with(_Pre(tag.get_text()))
    for tag in soup.find_all(_HEADINGS):
        heading = _Heading(" ".join(tag.get_text(" ").split()))
        heading.level = int(tag.name[1])
        tag.replace_with(heading)
    for tag in soup.find_all("br"):
        tag.replace_with(_Break("\n"))
    for row in soup.find_all("tr"):
        for cell in row.find_all(("td", "th"), recursive=False)[1:]:
            cell.insert_before(NavigableString(" | "))
    for tag in soup.find_all(_BLOCKS):
        # Blocks inside a replaced heading are detached; their text is already in the heading.
        if tag.parent is not None:
            tag.insert_before(_Break("\n"))
            tag.insert_after(_Break("\n"))
