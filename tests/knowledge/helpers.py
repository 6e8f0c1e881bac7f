"""Shared helpers of the knowledge tests: a base, waiting for ingestion, an in-process embedder."""

from __future__ import annotations

import time

from django.db import connection

from knowledge.fusion import RRF_K
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


# The statement hybrid search fused with before it fused in Python (``knowledge/fusion.py``),
# over given rankings: the reference that the Python fusion must equal.
SQL_FUSION = (
    "WITH d AS (SELECT * FROM unnest(%s::bigint[], %s::float8[]) WITH ORDINALITY "
    "      AS d(id, distance, rank)), "
    "k AS (SELECT * FROM unnest(%s::bigint[], %s::float8[]) WITH ORDINALITY "
    "      AS k(id, score, rank)) "
    "SELECT coalesce(d.id, k.id), "
    "  coalesce(1.0 / (%s + d.rank), 0) + coalesce(1.0 / (%s + k.rank), 0) AS fused, "
    "  d.rank, 1 - d.distance, k.rank, k.score "
    "FROM d FULL OUTER JOIN k ON d.id = k.id ORDER BY fused DESC, 1 LIMIT %s"
)


def fused_in_sql(
    nearest: list[tuple[int, float]], found: list[tuple[int, float]], limit: int
) -> list[tuple]:
    """(chunk id, fused score, dense rank, similarity, keyword rank, BM25 score) of ``nearest``
    (chunk id, distance) and ``found`` (chunk id, BM25 score) fused by ``SQL_FUSION``."""
    with connection.cursor() as cursor:
        cursor.execute(
            SQL_FUSION,
            [
                [i for i, _ in nearest],
                [d for _, d in nearest],
                [i for i, _ in found],
                [s for _, s in found],
                RRF_K,
                RRF_K,
                limit,
            ],
        )
        return cursor.fetchall()
