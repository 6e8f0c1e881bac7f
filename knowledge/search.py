"""Dense, keyword and hybrid search over ``knowledge_chunk``.

Every query is filtered in SQL by knowledge base, by the chunk being searchable and enabled, and
by metadata filters, so a filter never starves the result:
- dense: cosine distance on the HNSW index of the base's embedding dimension, with pgvector's
  iterative index scans (``hnsw.iterative_scan``), so that the index keeps scanning until enough
  rows pass the filters. A small base (``exact_scan``) is scanned exactly instead: the index
  is shared by every base, so for a base that holds a sliver of it the approximate walk can give
  up (``MAX_SCAN_TUPLES``) or miss a row among other bases' near neighbours, and reading a few
  thousand rows through the base's B-tree costs less than that walk;
- keyword: BM25 (``knowledge/keywords.py``) as the inner product of the chunk's ``sparsevec`` of
  term weights and the query's idfs. The retrieval worker scores it in memory from the base's
  postings (``knowledge/keyword_index.py``) when it holds them at the generation the search's
  snapshot sees, with the same scores to the bit; metadata filters then name the allowed chunks
  in SQL. Otherwise (a cold or too large base) it is scored in SQL: the query vector of idfs is
  built in the same query from ``knowledge_term``; the GIN index on the chunk's term ids finds
  the candidates. Common terms hold most chunks, and reading
  each candidate's row is the cost, so candidates come from the rarer query terms only
  (MaxScore): a chunk holding none of them scores at most the sum of the other terms' bounds,
  and once that sum is below the ``limit``-th score found, it cannot enter the result. The scores
  and the ranking are those of scoring every chunk that holds a query term;
- hybrid: the dense query and the keyword ranking found as above, fused by reciprocal rank
  fusion (``knowledge/fusion.py``). The dense query is sent first and, where the keyword index
  answers, the keywords are scored while the server runs it.

Keyword and hybrid search read one snapshot (REPEATABLE READ) for all their statements, so
that a concurrent ingestion is seen whole or not at all.

Callers pass ids and plain values; this module never sees a user, so callers must have checked
access to the knowledge base (``studio.access``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import connection, transaction
from pgvector import Vector
from pydantic import BaseModel, ConfigDict, Field, field_validator

from knowledge import keyword_index
from knowledge.fusion import fuse
from knowledge.keywords import DIMENSIONS, query_terms, score_bound

EF_SEARCH = 100
# Bases of up to this many chunks are scanned exactly: every row, no index walk to give up.
EXACT_MAX_CHUNKS = 5_000
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


def exact_scan(chunk_total: int) -> bool:
    """Whether a base of ``chunk_total`` chunks is searched exactly rather than by the index."""
    return chunk_total <= EXACT_MAX_CHUNKS


def _dense_sql(
    dimensions: int, filters: dict[str, Any], *, exact: bool = False
) -> tuple[str, list[Any]]:
    # The expression and the dimensions predicate match the partial index exactly
    # (knowledge/vector_index.py), or PostgreSQL would not use it; the exact scan writes the
    # distance without the cast so that it cannot, and reads the base's rows by its B-tree.
    dims = int(dimensions)
    if exact:
        distance = f"c.embedding <=> %s::vector({dims})"
    else:
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


def _keyword_ranking(
    cursor, knowledge_base_id: int, query: str, filters: dict
) -> Callable[[int], list[tuple[int, float]]]:
    """A function of ``limit`` that gives (chunk id, BM25 score) of the ``limit`` best chunks,
    best first (ties by chunk id): from the base's in-memory index when the process holds it at
    the generation this snapshot sees, else in SQL.

    The statements the in-memory index needs (its generation, the chunks the filters allow) run
    here, so that where the index answers, the returned function sends none: hybrid search
    scores while the server runs its dense query."""
    terms, counts = query_terms(query)
    if not terms:
        return lambda limit: []
    index = keyword_index.index_for(cursor, knowledge_base_id)
    if index is None:
        return partial(_keyword_rows_sql, cursor, knowledge_base_id, terms, counts, filters)
    allowed = None
    if filters:
        where, params = _filters_sql(filters)
        cursor.execute(
            f"SELECT c.id FROM knowledge_chunk c WHERE {_BASE}{where}", [knowledge_base_id, *params]
        )
        allowed = index.positions_of([row[0] for row in cursor.fetchall()])
    return partial(index.top, terms, counts, allowed=allowed)


def _keyword_rows_sql(
    cursor,
    knowledge_base_id: int,
    terms: list[int],
    counts: list[int],
    filters: dict,
    limit: int,
) -> list[tuple[int, float]]:
    """``_keyword_rows`` in SQL: MaxScore over the GIN index (see the module's docstring).

    Candidates are the chunks holding one of the ``scanned`` rarest terms. ``rest[i]`` bounds
    the score of a chunk holding none of the ``i`` rarest terms. The ``limit``-th score found
    only grows as terms are added, so each round scans the fewest terms whose ``rest`` is below
    it; while fewer than ``limit`` chunks are found, the next round doubles the postings read.
    The last possible round scans every term: the exhaustive query, taken at once when a round
    would read half the postings or more. Bounds are widened (``keywords.BOUND_MARGIN``) against
    float rounding and small concurrent changes of the statistics between the statements.
    """
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


@contextmanager
def _snapshot() -> Iterator[Any]:
    """A cursor in a transaction whose statements all read one snapshot (REPEATABLE READ), so
    that a search sees a base before or after a concurrent ingestion, never a mix. Inside a
    caller's transaction, that transaction's own isolation applies."""
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield cursor


@contextmanager
def _pipelined() -> Iterator[None]:
    """psycopg's pipeline mode: a statement is sent at once and its result read only when a
    cursor fetches it, so the server works while Python does. A fetch reads every result sent
    before it, in order, each into the cursor that sent it. Only where it buys that overlap:
    psycopg's pipeline costs more in Python than the round trips it saves."""
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield


def _scan_settings(cursor) -> None:
    # relaxed_order: the index keeps scanning past filtered-out rows; the outer ORDER BY puts
    # the few out-of-order rows back in place. set_config(…, true) is SET LOCAL; one statement.
    cursor.execute(
        "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
        "set_config('hnsw.ef_search', %s, true), set_config('hnsw.max_scan_tuples', %s, true)",
        [str(EF_SEARCH), str(MAX_SCAN_TUPLES)],
    )


def _execute_dense(
    cursor,
    knowledge_base_id: int,
    dimensions: int,
    vector: list[float],
    filters: dict[str, Any],
    limit: int,
    exact: bool,
) -> None:
    """Run the dense query on ``cursor`` (in a pipeline: send it); its rows are (chunk id,
    cosine distance), nearest first."""
    inner, filter_params = _dense_sql(dimensions, filters, exact=exact)
    if not exact:
        _scan_settings(cursor)
    cursor.execute(
        f"WITH r AS MATERIALIZED ({inner}) SELECT id, distance FROM r ORDER BY distance",
        [Vector(vector).to_text(), knowledge_base_id, *filter_params, limit],
    )


def dense(
    *,
    knowledge_base_id: int,
    dimensions: int,
    vector: list[float],
    limit: int,
    filters=None,
    exact: bool = False,
) -> list[Hit]:
    """The ``limit`` chunks nearest to ``vector``; score is cosine similarity (1 − distance).
    ``exact`` scans every row of the base instead of walking the index (``exact_scan``)."""
    with transaction.atomic(), connection.cursor() as cursor:
        _execute_dense(cursor, knowledge_base_id, dimensions, vector, filters or {}, limit, exact)
        rows = cursor.fetchall()
    return [Hit(chunk_id=i, score=1.0 - d, rank=n) for n, (i, d) in enumerate(rows, 1)]


def keyword(*, knowledge_base_id: int, query: str, limit: int, filters=None) -> list[Hit]:
    """The ``limit`` chunks with the highest BM25 score for ``query`` (none without a known
    term)."""
    with _snapshot() as cursor:
        rows = _keyword_ranking(cursor, knowledge_base_id, query, filters or {})(limit)
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
    exact: bool = False,
) -> list[FusedHit]:
    """Dense and keyword results (``candidates`` each) fused by reciprocal rank fusion
    (``knowledge/fusion.py``). The dense query is sent first; the keyword ranking is found
    while the server runs it (in memory, or in SQL after it)."""
    filters = filters or {}
    with _snapshot() as cursor:
        keyword_rows = _keyword_ranking(cursor, knowledge_base_id, query, filters)
        with _pipelined(), connection.cursor() as dense_cursor:
            _execute_dense(
                dense_cursor, knowledge_base_id, dimensions, vector, filters, candidates, exact
            )
            found = keyword_rows(candidates)
            nearest = dense_cursor.fetchall()
    return [
        FusedHit(
            chunk_id=f.chunk_id,
            score=float(f.score),
            rank=n,
            dense_rank=f.dense_rank,
            dense_score=f.dense_score,
            keyword_rank=f.keyword_rank,
            keyword_score=f.keyword_score,
        )
        for n, f in enumerate(fuse(nearest, found, limit), 1)
    ]
