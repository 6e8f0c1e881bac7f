"""Dense, keyword and hybrid search: each one SQL query over ``knowledge_chunk``.

Every query is filtered in SQL by knowledge base, by the chunk being searchable and enabled, and
by metadata filters, so a filter never starves the result:
- dense: cosine distance on the HNSW index of the base's embedding dimension, with pgvector's
  iterative index scans (``hnsw.iterative_scan``), so that the index keeps scanning until enough
  rows pass the filters;
- keyword: BM25 (``knowledge/keywords.py``) as the inner product of the chunk's ``sparsevec`` of
  term weights and a query vector of idfs built in the same query from ``knowledge_term``; the GIN
  index on the chunk's term ids finds the candidates;
- hybrid: both as materialised CTEs, fused by reciprocal rank fusion.

Callers pass ids and plain values; this module never sees a user, so callers must have checked
access to the knowledge base (``studio.access``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from pgvector import Vector
from pydantic import BaseModel, ConfigDict, Field, field_validator

from knowledge.keywords import DIMENSIONS, query_terms

# Reciprocal rank fusion's constant (Cormack et al.): rank r contributes 1 / (RRF_K + r).
RRF_K = 60
EF_SEARCH = 100
# How many rows an iterative scan may visit before it gives up (pgvector's default: 20,000).
MAX_SCAN_TUPLES = 20_000

Scalar = str | int | float | bool


class MetadataFilters(BaseModel):
    """``{"key": value}`` or ``{"key": [value, …]}``: every key must match (and), a list matches
    any of its values (or). Values are compared as JSON, so ``2024`` and ``"2024"`` differ."""

    model_config = ConfigDict(extra="forbid")
    filters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, max_length=20)

    @field_validator("filters")
    @classmethod
    def _sizes(cls, value: dict) -> dict:
        for key, wanted in value.items():
            if not key or len(key) > 100:
                raise ValueError("filter keys are 1 to 100 characters")
            if isinstance(wanted, list) and not 1 <= len(wanted) <= 100:
                raise ValueError(f"filter {key!r}: a list holds 1 to 100 values")
        return value


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float
    rank: int


@dataclass(frozen=True)
class FusedHit(Hit):
    dense_rank: int | None = None
    dense_score: float | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None


def _filters_sql(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for key, wanted in filters.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        ors = " OR ".join("c.metadata @> %s::jsonb" for _ in values)
        clauses.append(f" AND ({ors})")
        params.extend(json.dumps({key: value}) for value in values)
    return "".join(clauses), params


_BASE = "c.knowledge_base_id = %s AND c.searchable AND c.enabled"


def _dense_sql(dimensions: int, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    # The expression and the dimensions predicate match the partial index exactly
    # (knowledge/vector_index.py), or PostgreSQL would not use it.
    dims = int(dimensions)
    distance = f"c.embedding::vector({dims}) <=> %s::vector({dims})"
    where, params = _filters_sql(filters)
    sql = (
        f"SELECT c.id, {distance} AS distance FROM knowledge_chunk c "
        f"WHERE {_BASE} AND c.dimensions = {dims}{where} ORDER BY distance LIMIT %s"
    )
    return sql, params


def _keyword_sql(filters: dict[str, Any]) -> str:
    where, _ = _filters_sql(filters)
    return (
        "WITH q AS ("
        "  SELECT t.term, ln(1 + (b.chunk_total - t.df + 0.5) / (t.df + 0.5)) * qt.qtf AS w"
        "  FROM unnest(%s::int[], %s::int[]) AS qt(term, qtf)"
        "  JOIN knowledge_term t ON t.knowledge_base_id = %s AND t.term = qt.term AND t.df > 0"
        "  JOIN knowledge_knowledgebase b ON b.id = t.knowledge_base_id"
        "), qv AS ("
        "  SELECT format('{%%s}/%%s', string_agg((term::bigint + 1)::text || ':' || w::text, ','"
        f"   ORDER BY term), {DIMENSIONS})::sparsevec AS v FROM q HAVING count(*) > 0"
        ") "
        "SELECT c.id, -(c.bm25 <#> qv.v) AS score FROM knowledge_chunk c, qv "
        f"WHERE {_BASE} AND c.terms && %s::int[]{where} "
        "ORDER BY c.bm25 <#> qv.v LIMIT %s"
    )


def _keyword_params(knowledge_base_id: int, query: str, filters: dict, limit: int) -> list:
    terms, counts = query_terms(query)
    _, filter_params = _filters_sql(filters)
    return [terms, counts, knowledge_base_id, knowledge_base_id, terms, *filter_params, limit]


def _scan_settings(cursor) -> None:
    # relaxed_order: the index keeps scanning past filtered-out rows; the outer ORDER BY puts
    # the few out-of-order rows back in place.
    cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    cursor.execute(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}")
    cursor.execute(f"SET LOCAL hnsw.max_scan_tuples = {MAX_SCAN_TUPLES}")


def dense(
    *, knowledge_base_id: int, dimensions: int, vector: list[float], limit: int, filters=None
) -> list[Hit]:
    """The ``limit`` chunks nearest to ``vector``; score is cosine similarity (1 − distance)."""
    filters = filters or {}
    inner, filter_params = _dense_sql(dimensions, filters)
    sql = f"WITH r AS MATERIALIZED ({inner}) SELECT id, distance FROM r ORDER BY distance"
    params = [Vector(vector).to_text(), knowledge_base_id, *filter_params, limit]
    with transaction.atomic(), connection.cursor() as cursor:
        _scan_settings(cursor)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [Hit(chunk_id=i, score=1.0 - d, rank=n) for n, (i, d) in enumerate(rows, 1)]


def keyword(*, knowledge_base_id: int, query: str, limit: int, filters=None) -> list[Hit]:
    """The ``limit`` chunks with the highest BM25 score for ``query`` (none without a known
    term)."""
    filters = filters or {}
    params = _keyword_params(knowledge_base_id, query, filters, limit)
    with connection.cursor() as cursor:
        cursor.execute(_keyword_sql(filters), params)
        rows = cursor.fetchall()
    return [Hit(chunk_id=i, score=s, rank=n) for n, (i, s) in enumerate(rows, 1)]


def hybrid(
    *,
    knowledge_base_id: int,
    dimensions: int,
    vector: list[float],
    query: str,
    limit: int,
    candidates: int = 100,
    filters=None,
) -> list[FusedHit]:
    """Dense and keyword results (``candidates`` each) fused by reciprocal rank fusion."""
    filters = filters or {}
    dense_sql, dense_filter_params = _dense_sql(dimensions, filters)
    sql = (
        f"WITH d0 AS MATERIALIZED ({dense_sql}), "
        "d AS (SELECT id, 1 - distance AS score, "
        "      row_number() OVER (ORDER BY distance) AS rank FROM d0), "
        f"k0 AS MATERIALIZED ({_keyword_sql(filters)}), "
        "k AS (SELECT id, score, row_number() OVER (ORDER BY score DESC) AS rank FROM k0) "
        "SELECT coalesce(d.id, k.id), "
        "  coalesce(1.0 / (%s + d.rank), 0) + coalesce(1.0 / (%s + k.rank), 0) AS fused, "
        "  d.rank, d.score, k.rank, k.score "
        "FROM d FULL OUTER JOIN k ON d.id = k.id ORDER BY fused DESC, 1 LIMIT %s"
    )
    params = [
        Vector(vector).to_text(),
        knowledge_base_id,
        *dense_filter_params,
        candidates,
        *_keyword_params(knowledge_base_id, query, filters, candidates),
        RRF_K,
        RRF_K,
        limit,
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        _scan_settings(cursor)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        FusedHit(
            chunk_id=i,
            score=float(fused),
            rank=n,
            dense_rank=dr,
            dense_score=ds,
            keyword_rank=kr,
            keyword_score=ks,
        )
        for n, (i, fused, dr, ds, kr, ks) in enumerate(rows, 1)
    ]
