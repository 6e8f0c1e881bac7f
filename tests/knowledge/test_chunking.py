"""Chunking: chunks respect the size and overlap settings, keep the page and heading path of the
section they were cut from, are numbered over the whole document, and come out identical (text
and hash) every time, which re-embedding only changed chunks depends on."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from knowledge.chunking import ChunkSettings, chunk_sections, count_tokens
from knowledge.parsers import parse_document
from knowledge.parsers.base import Section

# Separators the splitters put back between pieces may add a token or two over the size.
TOLERANCE = 4

SENTENCES = " ".join(
    f"Sentence number {n} explains how the studio indexes document {n} for search."
    for n in range(1, 120)
)


@pytest.mark.parametrize("splitter", ["sentence", "tokens", "markdown"])
def test_chunks_stay_within_the_chunk_size(splitter):
    settings = ChunkSettings(splitter=splitter, chunk_size=64, chunk_overlap=8)

    chunks = chunk_sections([Section(text=SENTENCES)], settings)

    assert len(chunks) > 10
    assert all(count_tokens(chunk.text) <= 64 + TOLERANCE for chunk in chunks)


def test_sentence_chunks_overlap_their_neighbours():
    settings = ChunkSettings(splitter="sentence", chunk_size=64, chunk_overlap=20)

    chunks = chunk_sections([Section(text=SENTENCES)], settings)

    for previous, current in zip(chunks, chunks[1:], strict=False):
        # The overlap is whole sentences: the last one of a chunk opens the next.
        last_sentence = previous.text.rsplit("Sentence number", 1)[1]
        assert current.text.startswith("Sentence number" + last_sentence)


def test_token_chunks_overlap_their_neighbours():
    settings = ChunkSettings(splitter="tokens", chunk_size=64, chunk_overlap=16)

    chunks = chunk_sections([Section(text=SENTENCES)], settings)

    for previous, current in zip(chunks, chunks[1:], strict=False):
        tail = " ".join(previous.text.split()[-3:])
        assert tail in current.text


def test_without_overlap_the_chunks_partition_the_text():
    settings = ChunkSettings(splitter="tokens", chunk_size=64, chunk_overlap=0)

    chunks = chunk_sections([Section(text=SENTENCES)], settings)

    assert " ".join(chunk.text for chunk in chunks).split() == SENTENCES.split()


def test_chunks_keep_their_page_and_section_and_never_span_two():
    sections = [
        Section(text="First page about apples. " * 40, page=1, section="Fruit"),
        Section(text="Second page about carrots. " * 40, page=2, section="Vegetables"),
    ]

    chunks = chunk_sections(sections, ChunkSettings(chunk_size=64, chunk_overlap=8))

    assert {(chunk.page, chunk.section) for chunk in chunks} == {(1, "Fruit"), (2, "Vegetables")}
    for chunk in chunks:
        assert ("apples" in chunk.text) != ("carrots" in chunk.text)
        assert ("apples" in chunk.text) == (chunk.page == 1)


def test_positions_run_over_the_whole_document_without_gaps():
    sections = [Section(text=SENTENCES, page=1), Section(text="   \n  ", page=2)]
    sections.append(Section(text=SENTENCES, page=3))

    chunks = chunk_sections(sections, ChunkSettings(chunk_size=64, chunk_overlap=8))

    assert [chunk.position for chunk in chunks] == list(range(len(chunks)))
    assert 2 not in {chunk.page for chunk in chunks}
    assert all(chunk.text.strip() for chunk in chunks)


def test_markdown_splitter_files_chunks_under_their_heading_path():
    text = (
        "# Install\nDownload it.\n"
        "## Linux\nUse apt.\n"
        "```sh\n# not a heading\napt install studio\n```\n"
        "## Input/Output\nFiles go in, answers come out.\n"
        "# Usage\n" + "Open the studio and ask. " * 60
    )
    sections = parse_document("guide.md", "text/markdown", text.encode())

    chunks = chunk_sections(sections, ChunkSettings(splitter="markdown", chunk_size=64))

    assert [chunk.section for chunk in chunks[:3]] == [
        "Install",
        "Install > Linux",
        "Install > Input/Output",
    ]
    assert chunks[0].text == "# Install\nDownload it."
    assert "# not a heading" in chunks[1].text
    # The long section is cut by sentence, every piece still under its heading.
    usage = chunks[3:]
    assert len(usage) > 1
    assert {chunk.section for chunk in usage} == {"Usage"}
    assert all(count_tokens(chunk.text) <= 64 + TOLERANCE for chunk in usage)


def test_markdown_splitter_reads_headings_inside_a_section_of_another_format():
    section = Section(text="# Summary\nShort.\n## Details\nLonger.", page=4, section="Report")

    chunks = chunk_sections([section], ChunkSettings(splitter="markdown"))

    assert [(chunk.section, chunk.text, chunk.page) for chunk in chunks] == [
        ("Report > Summary", "# Summary\nShort.", 4),
        ("Report > Summary > Details", "## Details\nLonger.", 4),
    ]


@pytest.mark.parametrize("splitter", ["sentence", "tokens", "markdown"])
def test_chunking_is_deterministic(splitter):
    sections = [Section(text=SENTENCES, page=1, section="A"), Section(text=SENTENCES, page=2)]
    settings = ChunkSettings(splitter=splitter, chunk_size=64, chunk_overlap=8)

    first = chunk_sections(sections, settings)
    second = chunk_sections(list(sections), ChunkSettings(**settings.model_dump()))

    assert first == second
    assert [chunk.content_hash for chunk in first] == [chunk.content_hash for chunk in second]


def test_content_hash_is_the_sha256_of_the_chunk_text():
    chunks = chunk_sections([Section(text="A short note.")], ChunkSettings())

    assert chunks[0].content_hash == hashlib.sha256(b"A short note.").hexdigest()


def test_unchanged_sections_keep_their_hashes_when_another_changes():
    before = [Section(text=SENTENCES, section="A"), Section(text="Old ending.", section="B")]
    after = [Section(text=SENTENCES, section="A"), Section(text="New ending.", section="B")]
    settings = ChunkSettings(chunk_size=64, chunk_overlap=8)

    old = [chunk.content_hash for chunk in chunk_sections(before, settings)]
    new = [chunk.content_hash for chunk in chunk_sections(after, settings)]

    assert old[:-1] == new[:-1]
    assert old[-1] != new[-1]


def test_default_settings():
    settings = ChunkSettings()

    assert (settings.splitter, settings.chunk_size, settings.chunk_overlap) == ("sentence", 200, 20)


def test_overlap_must_be_smaller_than_the_chunk_size():
    with pytest.raises(ValidationError, match="overlap must be smaller than the chunk size"):
        ChunkSettings(chunk_size=64, chunk_overlap=64)


@pytest.mark.parametrize(
    "values",
    [
        {"chunk_size": 31},
        {"chunk_size": 2049},
        {"chunk_overlap": -1},
        {"chunk_size": 2048, "chunk_overlap": 513},
        {"splitter": "paragraph"},
    ],
)
def test_settings_out_of_range_are_rejected(values):
    with pytest.raises(ValidationError):
        ChunkSettings(**values)


def test_count_tokens_counts_with_the_splitters_tokenizer():
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2


def test_the_web_process_loads_its_urls_without_llamaindex():
    """LlamaIndex costs seconds to import: only the code that chunks may import it, never the
    URL configuration a web process loads on its first request."""
    code = (
        "import sys, django; django.setup(); import studio.urls; "
        "print(sorted(m for m in sys.modules if m.startswith('llama_index')))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "studio.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
