"""Markdown files: the text stays markdown, cut into one section per ATX heading."""

from __future__ import annotations

import re
from collections.abc import Iterator

from knowledge.parsers import register
from knowledge.parsers.base import Parser, Section
from knowledge.parsers.text import decode_text

# CommonMark ATX heading: up to three spaces of indent, 1-6 '#', then a space or the line's end;
# an optional closing run of '#' after a space is not part of the title.
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def heading_title(line: str) -> tuple[int, str] | None:
    """``(level, title)`` when the line is an ATX heading, else ``None``."""
    match = _HEADING.match(line)
    if not match:
        return None
    return len(match.group(1)), (match.group(2) or "").strip()


@register
class MarkdownParser(Parser):
    """One section per heading, each opening with its heading line.

    A section's path is the chain of enclosing headings ("Install > Linux"). Lines inside fenced
    code blocks (```` ``` ```` or ``~~~``) are never headings: a shell comment is not a title.
    Setext (underlined) headings are left as text.
    """

    kind = "markdown"
    label = "Markdown file"
    extensions = (".md", ".markdown")
    content_types = ("text/markdown", "text/x-markdown")

    def extract(self, data: bytes) -> Iterator[Section]:
        headings: list[tuple[int, str]] = []
        lines: list[str] = []
        fence = ""
        for line in decode_text(data).splitlines():
            if fence:
                # A fence closes with the same character, at least as many times, and nothing else.
                if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                    fence = ""
            elif match := _FENCE.match(line):
                fence = match.group(1)
            elif heading := heading_title(line):
                yield Section(text="\n".join(lines), section=_path(headings))
                level, title = heading
                while headings and headings[-1][0] >= level:
                    headings.pop()
                headings.append((level, title))
                lines = []
            lines.append(line)
        yield Section(text="\n".join(lines), section=_path(headings))


def _path(headings: list[tuple[int, str]]) -> str:
    return " > ".join(title for _, title in headings if title)
