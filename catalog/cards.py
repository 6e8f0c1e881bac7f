"""Model cards: markdown written by whoever edits a model, rendered for everyone who views it.

The card is untrusted text shown on other people's pages, so rendering must be inert:
- raw HTML is off (markdown-it's ``js-default`` preset: ``html=False``), so ``<script>`` or
  ``<img onerror=…>`` in a card comes out as escaped text;
- a link or image may point only to http, https or mailto, or be scheme-less (a relative path or
  a ``#fragment``, which cannot run code); ``javascript:``, ``data:``, ``vbscript:``, ``file:``
  and any other scheme are refused, and the markdown stays as text;
- links get ``rel="nofollow noopener noreferrer"``.

Only markdown-it's own output is marked safe; it escapes every text and attribute it writes.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})

# How a browser reads a URL's scheme (WHATWG URL): after dropping ASCII tab and newline anywhere
# and control characters and spaces at either end, a letter, then letters, digits, + - . up to ":".
_IGNORED = re.compile(r"[\x00-\x20\x7f]")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")


def link_allowed(url: str) -> bool:
    """Whether a card may link to ``url`` (already normalised by markdown-it, entities decoded)."""
    # Dropping every control character and space (not only those a browser drops) can only make
    # a scheme easier to see, never hide one; so can reading the percent-decoded form too (a
    # browser does not decode a scheme, but a refused odd link costs nothing).
    for form in (url, unquote(url)):
        match = _SCHEME.match(_IGNORED.sub("", form).lower())
        if match is not None and match.group(1) not in ALLOWED_SCHEMES:
            return False
    return True


class _CardMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:  # noqa: N802 - markdown-it's name
        return link_allowed(url)


def _link_open(renderer, tokens, idx, options, env) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)


def _markdown() -> MarkdownIt:
    md = _CardMarkdown("js-default")  # CommonMark + tables + strikethrough, html=False
    if md.options["html"]:  # a preset change upstream must not turn raw HTML on unnoticed
        raise RuntimeError("model cards must render with raw HTML disabled")
    md.add_render_rule("link_open", _link_open)
    return md


_MD = _markdown()


def render_card(text: str) -> SafeString:
    """The card's markdown as HTML that is safe to put in a page as it is."""
    return mark_safe(_MD.render(text or ""))  # noqa: S308 - markdown-it escapes; see above
