"""Shared helpers of the knowledge tests: a base, waiting for ingestion, an in-process embedder."""

from __future__ import annotations

import time

from knowledge.models import Document, DocumentStatus

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


def in_process_embed():
    """``embed(model, texts)`` on this process's resident engines (for tests that ingest
    without the worker)."""
    from workers.tasks import _embed

    return _embed


def engine_for():
    from workers import resident

    return resident.runtime().engine_for
