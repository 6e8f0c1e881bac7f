"""Reciprocal rank fusion of hybrid search's dense and keyword rankings, in PostgreSQL's numerics.

Hybrid search fused in SQL until it began scoring keywords while the server runs the dense query
(``knowledge/search.py``): ``coalesce(1.0 / (k + dense_rank), 0) + coalesce(1.0 / (k +
keyword_rank), 0)``, best first, then by chunk id. It fuses here now, with the same sums and so
the same ties: each reciprocal rounded as PostgreSQL's numeric division rounds ``1.0 / n``, sums
exact. Floats would not do: 1/61 and 1/122 + 1/122 are one float but two numerics.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from functools import lru_cache

# Reciprocal rank fusion's constant (Cormack et al.): rank r contributes 1 / (RRF_K + r).
RRF_K = 60
_NONE = Decimal(0)
# Sums of two reciprocals, exact (each holds about 20 digits), whatever the thread's context.
_EXACT = Context(prec=100)


@dataclass(frozen=True)
class Fused:
    """One chunk of the fused ranking, with its place in each ranking that found it."""

    chunk_id: int
    score: Decimal
    dense_rank: int | None
    dense_score: float | None  # cosine similarity
    keyword_rank: int | None
    keyword_score: float | None  # BM25


@lru_cache(maxsize=4096)
def reciprocal_rank(rank: int) -> Decimal:
    """``1.0 / (RRF_K + rank)`` as a PostgreSQL numeric. Numeric division (``select_div_scale``)
    gives ``1.0 / n`` 16 significant digits past the quotient's first base-10,000 digit: 20
    decimal places while ``n`` is below 10,000, 4 more per further base-10,000 digit of ``n``;
    rounded half away from zero."""
    n = RRF_K + rank
    scale = 16 + 4 * ((len(str(n)) + 3) // 4)
    quotient, remainder = divmod(10**scale, n)
    quotient += 2 * remainder >= n
    return Decimal(f"{quotient}E-{scale}")  # exact: a string is never rounded to a context


def fuse(
    nearest: Sequence[tuple[int, float]], found: Sequence[tuple[int, float]], limit: int
) -> list[Fused]:
    """The ``limit`` best of the chunks in ``nearest`` (chunk id, cosine distance; nearest
    first) or ``found`` (chunk id, BM25 score; best first): fused score descending, then chunk
    id."""
    dense = {i: rank for rank, (i, _) in enumerate(nearest, 1)}
    keyword = {i: rank for rank, (i, _) in enumerate(found, 1)}
    scores = {i: reciprocal_rank(rank) for i, rank in dense.items()}
    for i, rank in keyword.items():
        scores[i] = _EXACT.add(scores.get(i, _NONE), reciprocal_rank(rank))
    # Highest score, then lowest chunk id (no Decimal negation: it would round to a context).
    best = heapq.nlargest(limit, scores, key=lambda i: (scores[i], -i))
    fused = []
    for i in best:
        dense_rank, keyword_rank = dense.get(i), keyword.get(i)
        fused.append(
            Fused(
                chunk_id=i,
                score=scores[i],
                dense_rank=dense_rank,
                dense_score=1 - nearest[dense_rank - 1][1] if dense_rank else None,
                keyword_rank=keyword_rank,
                keyword_score=found[keyword_rank - 1][1] if keyword_rank else None,
            )
        )
    return fused
