"""Shared helpers of the knowledge tests: a base, waiting for ingestion, an in-process embedder."""

from __future__ import annotations

import time

from knowledge.models import Document, DocumentStatus
from workers.resident import Resident

PARAGRAPHS = [
    "The studio stores every chunk of every knowledge base in PostgreSQL with pgvector.",
    "Photosynthesis converts light energy into chemical energy in the chloroplasts of plants.",
    "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
    "Mitochondria are the powerhouse of the cell and produce ATP through respiration.",
    "Rust is a systems programming language focused on safety and performance.",
    "The Great Barrier Reef is the largest coral reef system on Earth, off Australia.",
]


def wait_for(
    document: Document, statuses=(DocumentStatus.READY, DocumentStatus.FAILED), timeout=90
):
    """The document once its status is one of ``statuses`` (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.status in statuses:
            return document
        time.sleep(0.2)
    raise AssertionError(f"{document.name} stayed {document.status}: {document.error}")


# The test process's own engines, apart from the worker runtime of this process (which a test
# checks stays empty: the web side never runs a model).
_engines = Resident()


def in_process_embed():
    """``embed(model, texts)`` for tests that ingest in their own process, without the worker."""
    return _engines.embed


def engine_for():
    return _engines.engine_for
