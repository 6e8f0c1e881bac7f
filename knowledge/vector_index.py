"""One partial HNSW index per embedding dimension on ``knowledge_chunk``.

A ``vector`` column without a fixed dimension cannot be indexed as such, so each dimension gets
an expression index on ``embedding::vector(<d>)`` limited to ``dimensions = <d>`` (pgvector's
advice for mixed dimensions); dense search writes the same expression and predicate
(``knowledge/search.py``). The migration creates the index for 384 (the bundled model).
"""

from __future__ import annotations

from django.db import connection

# pgvector's HNSW index takes vectors of up to 2,000 dimensions; beyond, search scans exactly.
MAX_INDEXED = 2000
M = 16
EF_CONSTRUCTION = 64


def index_name(dimensions: int) -> str:
    return f"chunk_embedding_{int(dimensions)}"


def ensure(dimensions: int) -> bool:
    """Create the index for ``dimensions`` if it is missing; False when it cannot have one.

    Call it outside a transaction that has written chunks (PostgreSQL refuses CREATE INDEX on a
    table with pending trigger events).
    """
    dims = int(dimensions)
    if not 1 <= dims <= MAX_INDEXED:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [index_name(dims)])
        if cursor.fetchone():
            return True
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {index_name(dims)} ON knowledge_chunk USING hnsw "
            f"((embedding::vector({dims})) vector_cosine_ops) "
            f"WITH (m = {M}, ef_construction = {EF_CONSTRUCTION}) WHERE dimensions = {dims}"
        )
    return True
