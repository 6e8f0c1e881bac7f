"""Reranking: a cross-encoder reorders the candidates that search found, best first.

Search over-fetches when a base reranks (``candidates_wanted``), since the reranker often lifts a
chunk that search ranked low; the reranker's engine is resident on the retrieval worker
(``engine_for``), like the embedding model's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async

from knowledge.models import KnowledgeBase

# Reranking reorders this many candidates per result wanted (at least RERANK_MIN).
RERANK_FACTOR = 4
RERANK_MIN = 20


def candidates_wanted(top_k: int) -> int:
    """How many candidates search should find for the reranker to pick ``top_k`` from."""
    return max(top_k * RERANK_FACTOR, RERANK_MIN)


async def arerank(
    *,
    knowledge_base: KnowledgeBase,
    query: str,
    candidates: list[tuple[int, str]],
    engine_for: Callable[[Any], Awaitable[Any]],
) -> list[tuple[int, float]]:
    """``candidates`` (chunk id, text) as (chunk id, reranker score), best first. The base must
    have a reranker (``aretrieve`` refuses to rerank without one)."""
    # The reranker is a foreign key: from the select_related cache, or one query off the loop.
    engine = await engine_for(await sync_to_async(getattr)(knowledge_base, "reranker"))
    scores = await engine.rerank(query, [text for _, text in candidates])
    ids = [chunk_id for chunk_id, _ in candidates]
    return sorted(zip(ids, scores, strict=True), key=lambda pair: -pair[1])
