"""Cutting parsed documents into chunks for embedding, with LlamaIndex's splitters.

Chunks are cut inside one section at a time, so each keeps the page and heading path it came
from. The output is a pure function of the sections and settings: re-ingesting an unchanged
document yields the same chunks and hashes, so only changed chunks are embedded again.

Token counts use tiktoken's ``cl100k_base`` encoding from the cache that ships inside
llama-index-core, so nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog.token_counts import encoding
from knowledge.parsers.base import Section
from knowledge.parsers.markdown import heading_title

if TYPE_CHECKING:
    from llama_index.core.node_parser import (
        MarkdownNodeParser,
        SentenceSplitter,
        TokenTextSplitter,
    )

# Not "/" (LlamaIndex's default): a heading such as "Input/Output" must stay one path element.
_PATH_SEPARATOR = "\x1f"


class ChunkSettings(BaseModel):
    """How a knowledge base cuts its documents; sizes are in tokens.

    ``splitter`` is ``"sentence"`` (keeps sentences whole where it can), ``"tokens"`` (fixed
    token windows) or ``"markdown"`` (one chunk per heading block, split further by sentence
    when a block is larger than ``chunk_size``).
    """

    model_config = ConfigDict(frozen=True)

    splitter: Literal["sentence", "markdown", "tokens"] = "sentence"
    chunk_size: int = Field(default=200, ge=32, le=2048)
    chunk_overlap: int = Field(default=20, ge=0, le=512)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("overlap must be smaller than the chunk size")
        return self


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk before it is stored: ``position`` orders chunks over the whole document (0-based);
    ``content_hash`` is the SHA-256 hex digest of ``text``, the key for reusing an embedding."""

    position: int
    text: str
    page: int | None
    section: str
    content_hash: str


def count_tokens(text: str) -> int:
    """The number of tokens in ``text`` as the splitters count them."""
    return len(encoding().encode_ordinary(text))


def chunk_sections(sections: list[Section], settings: ChunkSettings) -> list[ChunkDraft]:
    """Cut sections into chunks, in order, never across a section boundary.

    Each chunk inherits its section's page; its ``section`` is the section's path, extended by
    the headings inside the section for the markdown splitter. Whitespace-only chunks are
    dropped before positions are numbered, so positions run 0..n-1 without gaps.
    """
    pieces: list[tuple[str, int | None, str]] = []
    for section in sections:
        if settings.splitter == "markdown":
            pieces.extend(
                (text, section.page, path) for text, path in _markdown_pieces(section, settings)
            )
        else:
            splitter = _splitter(settings.splitter, settings.chunk_size, settings.chunk_overlap)
            pieces.extend(
                (text, section.page, section.section) for text in splitter.split_text(section.text)
            )
    return [
        ChunkDraft(
            position=position,
            text=text,
            page=page,
            section=path,
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
        )
        for position, (text, page, path) in enumerate(piece for piece in pieces if piece[0].strip())
    ]


def _markdown_pieces(section: Section, settings: ChunkSettings) -> list[tuple[str, str]]:
    """``(text, section path)`` for each heading block of the section, long blocks split."""
    sentence = _splitter("sentence", settings.chunk_size, settings.chunk_overlap)
    base = section.section
    # The markdown parser names a section after the heading that opens it; that heading must not
    # appear twice in the path.
    base_title = base.rpartition(" > ")[2]
    from llama_index.core.schema import TextNode  # imported where chunks are made: see _splitter

    pieces = []
    for node in _markdown_parser().get_nodes_from_node(TextNode(text=section.text)):
        inner = [part for part in node.metadata["header_path"].split(_PATH_SEPARATOR) if part]
        if own := heading_title(node.text.split("\n", 1)[0]):
            inner.append(own[1])
        inner = [_clean_title(part) for part in inner]
        if base and inner and inner[0] == base_title:
            inner = inner[1:]
        path = " > ".join(part for part in [base, *inner] if part)
        if count_tokens(node.text) <= settings.chunk_size:
            pieces.append((node.text, path))
        else:
            pieces.extend((text, path) for text in sentence.split_text(node.text))
    return pieces


def _clean_title(title: str) -> str:
    # LlamaIndex keeps a heading's closing "##" run; the markdown parser does not.
    heading = heading_title("# " + title)
    return heading[1] if heading else title.strip()


@functools.lru_cache(maxsize=32)
def _splitter(
    kind: str, chunk_size: int, chunk_overlap: int
) -> SentenceSplitter | TokenTextSplitter:
    """One splitter per setting, built once: construction loads tokenizer and sentence models.

    LlamaIndex is imported here, not at the top: the web process imports this module through its
    URL configuration and would pay seconds of import time on its first request for a library
    that only the ingestion worker calls."""
    from llama_index.core.node_parser import SentenceSplitter, TokenTextSplitter

    splitter_class = TokenTextSplitter if kind == "tokens" else SentenceSplitter
    return splitter_class(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        tokenizer=encoding().encode_ordinary,
    )


@functools.cache
def _markdown_parser() -> MarkdownNodeParser:
    from llama_index.core.node_parser import MarkdownNodeParser

    return MarkdownNodeParser(header_path_separator=_PATH_SEPARATOR)
