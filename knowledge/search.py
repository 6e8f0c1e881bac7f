"""Dense, keyword and hybrid search: each one SQL query over ``knowledge_chunk``.

Every query is filtered in SQL by knowledge base, by the chunk being searchable and enabled, and
by metadata filters, so a filter never starves the result:
- dense: cosine distance on the HNSW index of the base's embedding dimension, with pgvector's
  iterative index scans (``hnsw.iterative_scan``), so that the index keeps scanning until enough
  rows pass the filters;
- keyword: BM25 (``knowledge/keywords.py``) as the inner product of the chunk's ``sparsevec`` of
  term weights and a query vector of idfs built in the same query from ``knowledge_term``; the GIN
  index on the chunk's term ids finds the candidates. Common terms hold most chunks, and reading
  each candidate's row is the cost, so candidates come from the rarer query terms only
  (MaxScore): a chunk holding none of them scores at most the sum of the other terms' bounds,
  and once that sum is below the ``limit``-th score found, it cannot enter the result. The scores
  and the ranking are those of scoring every chunk that holds a query term;
- hybrid: the dense query as a materialised CTE and the keyword ranking found as above, fused
  by reciprocal rank fusion.

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

from knowledge.keywords import DIMENSIONS, query_terms, score_bound

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
        "ORDER BY c.bm25 <#> qv.v, c.id LIMIT %s"
    )


def _query_bounds(
    cursor, knowledge_base_id: int, terms: list[int], counts: list[int]
) -> list[tuple[int, int, float]]:
    """Each query term the base holds, rarest first: (term, df, the most it adds to a score)."""
    cursor.execute(
        "SELECT t.term, t.df, b.chunk_total FROM knowledge_term t "
        "JOIN knowledge_knowledgebase b ON b.id = t.knowledge_base_id "
        "WHERE t.knowledge_base_id = %s AND t.term = ANY(%s::int[]) AND t.df > 0",
        [knowledge_base_id, terms],
    )
    count_of = dict(zip(terms, counts, strict=True))
    rows = sorted(cursor.fetchall(), key=lambda row: (row[1], row[0]))
    return [(term, df, score_bound(total, df, count_of[term])) for term, df, total in rows]


def _keyword_rows(
    cursor, knowledge_base_id: int, query: str, filters: dict, limit: int
) -> list[tuple[int, float]]:
    """(chunk id, BM25 score) of the ``limit`` best chunks, best first: MaxScore over the GIN
    index (see the module's docstring).

    Candidates are the chunks holding one of the ``scanned`` rarest terms. ``rest[i]`` bounds
    the score of a chunk holding none of the ``i`` rarest terms. The ``limit``-th score found
    only grows as terms are added, so each round scans the fewest terms whose ``rest`` is below
    it; while fewer than ``limit`` chunks are found, the next round doubles the postings read.
    The last possible round scans every term: the exhaustive query, taken at once when a round
    would read half the postings or more. Bounds are widened (``keywords.BOUND_MARGIN``) against
    float rounding and small concurrent changes of the statistics between the statements.
    """
    terms, counts = query_terms(query)
    if not terms:
        return []
    known = _query_bounds(cursor, knowledge_base_id, terms, counts)
    if not known:
        return []
    rest = [sum(bound for _, _, bound in known[i:]) for i in range(len(known))] + [0.0]
    held = [0]  # held[i]: postings of the i rarest terms
    for _, df, _ in known:
        held.append(held[-1] + df)
    sql, (_, filter_params) = _keyword_sql(filters), _filters_sql(filters)
    last = len(known)
    scanned = next((i for i in range(1, last) if held[i] >= limit), last)
    while True:
        if 2 * held[scanned] >= held[last]:
            scanned = last  # reading most postings anyway: the exhaustive plan is cheaper
        scan = [term for term, _, _ in known[:scanned]]
        cursor.execute(
            sql, [terms, counts, knowledge_base_id, knowledge_base_id, scan, *filter_params, limit]
        )
        rows = cursor.fetchall()
        if scanned == last:
            return rows
        following = range(scanned + 1, last)
        if len(rows) < limit:
            wanted = 2 * held[scanned]
            scanned = next((i for i in following if held[i] >= wanted), last)
            continue
        floor = rows[-1][1]
        if rest[scanned] < floor:
            return rows
        scanned = next((i for i in following if rest[i] < floor), last)


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
    with transaction.atomic(), connection.cursor() as cursor:
        rows = _keyword_rows(cursor, knowledge_base_id, query, filters or {}, limit)
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
    # The keyword ranking is found first (MaxScore takes several statements), then joined in.
    sql = (
        f"WITH d0 AS MATERIALIZED ({dense_sql}), "
        "d AS (SELECT id, 1 - distance AS score, "
        "      row_number() OVER (ORDER BY distance) AS rank FROM d0), "
        "k AS (SELECT * FROM unnest(%s::bigint[], %s::float8[]) WITH ORDINALITY "
        "      AS k(id, score, rank)) "
        "SELECT coalesce(d.id, k.id), "
        "  coalesce(1.0 / (%s + d.rank), 0) + coalesce(1.0 / (%s + k.rank), 0) AS fused, "
        "  d.rank, d.score, k.rank, k.score "
        "FROM d FULL OUTER JOIN k ON d.id = k.id ORDER BY fused DESC, 1 LIMIT %s"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        found = _keyword_rows(cursor, knowledge_base_id, query, filters, candidates)
        params = [
            Vector(vector).to_text(),
            knowledge_base_id,
            *dense_filter_params,
            candidates,
            [i for i, _ in found],
            [score for _, score in found],
            RRF_K,
            RRF_K,
            limit,
        ]
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
