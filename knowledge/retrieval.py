"""Retrieval from one knowledge base, as flows, agents, the test page and the API use it.

Runs on a worker (the ``retrieval`` queue, or a GPU queue), where the embedding model and the
reranker are resident: ``engine_for(model)`` returns their engines. Each stage is timed; with
``explain`` the dense and keyword stages also run alone, so the test page can show every stage's
ranking beside the fused one.

Callers must have checked that whoever asks may ``use`` the knowledge base.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from pydantic import BaseModel, ConfigDict, Field

from knowledge import search
from knowledge.citations import Citation
from knowledge.models import Chunk, KnowledgeBase, SearchMode

EngineFor = Callable[[Any], Awaitable[Any]]
# Reranking reorders this many candidates per result wanted (at least RERANK_MIN).
RERANK_FACTOR = 4
RERANK_MIN = 20
MAX_QUERY_CHARS = 4000


class RetrievalOptions(BaseModel):
    """What a caller may override of the base's retrieval settings (None: the base's)."""

    model_config = ConfigDict(extra="forbid")
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: SearchMode | None = None
    rerank: bool | None = None
    score_threshold: float | None = Field(default=None, ge=-1.0, le=1000.0)
    filters: dict[str, search.Scalar | list[search.Scalar]] = Field(default_factory=dict)


@dataclass
class Retrieval:
    citations: list[Citation]
    mode: str
    reranked: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    # With ``explain``: each stage's ranking, as (chunk id, score) pairs.
    stages: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def trace(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "reranked": self.reranked,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
            "chunks": [c.chunk_id for c in self.citations],
        }


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def start(self) -> float:
        return time.perf_counter()

    def stop(self, name: str, started: float) -> None:
        self.timings[name] = (time.perf_counter() - started) * 1000


async def aretrieve(
    *,
    knowledge_base: KnowledgeBase,
    query: str,
    options: RetrievalOptions | None = None,
    engine_for: EngineFor,
    explain: bool = False,
) -> Retrieval:
    options = options or RetrievalOptions()
    filters = search.MetadataFilters(filters=options.filters).filters
    query = query.strip()[:MAX_QUERY_CHARS]
    top_k = options.top_k or knowledge_base.top_k
    mode = options.mode or knowledge_base.search_mode
    rerank = knowledge_base.rerank if options.rerank is None else options.rerank
    threshold = (
        knowledge_base.score_threshold
        if options.score_threshold is None
        else options.score_threshold
    )
    if rerank and knowledge_base.reranker_id is None:
        raise LookupError(f"{knowledge_base.name} has no reranker; choose one in its settings")
    clock = _Clock()
    result = Retrieval(citations=[], mode=mode, reranked=rerank, timings_ms=clock.timings)
    if not query:
        return result
    wanted = max(top_k * RERANK_FACTOR, RERANK_MIN) if rerank else top_k
    vector = None
    dims = knowledge_base.dimensions
    if mode != SearchMode.KEYWORD and dims:
        started = clock.start()
        engine = await engine_for(await _related(knowledge_base, "embedding_model"))
        vector = (await engine.embed([query]))[0]
        clock.stop("embed", started)
    base_id = knowledge_base.id

    async def timed(name: str, fn, **kwargs):
        started = clock.start()
        hits = await sync_to_async(fn)(knowledge_base_id=base_id, filters=filters, **kwargs)
        clock.stop(name, started)
        return hits

    dense_hits = keyword_hits = None
    if vector is not None and (mode == SearchMode.DENSE or explain):
        dense_hits = await timed(
            "dense", search.dense, dimensions=dims, vector=vector, limit=wanted
        )
    if mode == SearchMode.KEYWORD or explain:
        keyword_hits = await timed("keyword", search.keyword, query=query, limit=wanted)
    if mode == SearchMode.HYBRID and vector is not None:
        hits = await timed(
            "hybrid",
            search.hybrid,
            dimensions=dims,
            vector=vector,
            query=query,
            limit=wanted,
            candidates=max(wanted, 100),
        )
    elif mode == SearchMode.DENSE:
        hits = dense_hits or []
    else:  # keyword, or hybrid before the base has any vector
        hits = keyword_hits if keyword_hits is not None else []
    if explain:
        result.stages = {
            name: [(h.chunk_id, h.score) for h in found]
            for name, found in (("dense", dense_hits), ("keyword", keyword_hits))
            if found is not None
        }
        if mode == SearchMode.HYBRID:
            result.stages["fused"] = [(h.chunk_id, h.score) for h in hits]
    scores = {h.chunk_id: h.score for h in hits}
    order = [h.chunk_id for h in hits]
    chunks = await _chunks(order)
    stage_info = {h.chunk_id: _stage_info(h) for h in hits}
    if rerank and order:
        started = clock.start()
        engine = await engine_for(await _related(knowledge_base, "reranker"))
        texts = [chunks[i].text for i in order if i in chunks]
        ids = [i for i in order if i in chunks]
        reranked = await engine.rerank(query, texts)
        clock.stop("rerank", started)
        ranked = sorted(zip(ids, reranked, strict=True), key=lambda p: -p[1])
        for position, (chunk_id, score) in enumerate(ranked, 1):
            stage_info[chunk_id]["reranked"] = {"rank": position, "score": score}
        scores = dict(ranked)
        order = [chunk_id for chunk_id, _ in ranked]
        if explain:
            result.stages["reranked"] = ranked
    if rerank or mode == SearchMode.DENSE:
        # Cosine similarity and reranker scores have a meaning of their own; BM25 and fused
        # ranks do not, so the threshold applies to those two only.
        order = [i for i in order if scores[i] >= threshold]
    order = [i for i in order if i in chunks][:top_k]
    result.citations = [
        Citation(
            index=n,
            chunk_id=i,
            document_id=chunks[i].document_id,
            document=chunks[i].document.name,
            knowledge_base=knowledge_base.slug,
            text=chunks[i].text,
            score=float(scores[i]),
            page=chunks[i].page,
            section=chunks[i].section,
            metadata=chunks[i].metadata,
            stages=stage_info.get(i, {}),
        )
        for n, i in enumerate(order, 1)
    ]
    return result


async def _related(knowledge_base: KnowledgeBase, name: str) -> Any:
    """A foreign key of the base, from the select_related cache or one query off the loop."""
    return await sync_to_async(getattr)(knowledge_base, name)


def _stage_info(hit: search.Hit) -> dict[str, Any]:
    if isinstance(hit, search.FusedHit):
        info: dict[str, Any] = {"fused": {"rank": hit.rank, "score": hit.score}}
        if hit.dense_rank is not None:
            info["dense"] = {"rank": hit.dense_rank, "score": hit.dense_score}
        if hit.keyword_rank is not None:
            info["keyword"] = {"rank": hit.keyword_rank, "score": hit.keyword_score}
        return info
    return {}


async def _chunks(ids: list[int]) -> dict[int, Chunk]:
    found = {}
    async for chunk in (
        Chunk.objects.filter(id__in=ids)
        .select_related("document")
        .only("id", "text", "page", "section", "metadata", "document_id", "document__name")
    ):
        found[chunk.id] = chunk
    return found


def retrieve(**kwargs) -> Retrieval:
    """``aretrieve`` for synchronous callers that own no event loop (benchmarks, tests)."""
    from asgiref.sync import async_to_sync

    return async_to_sync(aretrieve)(**kwargs)
