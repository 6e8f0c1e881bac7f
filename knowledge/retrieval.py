"""Retrieval from one knowledge base, as flows, agents, the test page and the API use it.

Runs on a worker (the ``retrieval`` queue, or a GPU queue), where the embedding model and the
reranker (``knowledge/rerank.py``) are resident: ``engine_for(model)`` returns their engines.
Each stage is timed; with ``explain`` the dense and keyword stages also run alone, so the test
page can show every stage's ranking beside the fused one.

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
from knowledge.rerank import arerank, candidates_wanted
from studio import tracing

EngineFor = Callable[[Any], Awaitable[Any]]
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


@dataclass(frozen=True)
class _Plan:
    """One retrieval's settings: the caller's options over the base's own."""

    query: str
    top_k: int
    mode: str
    rerank: bool
    threshold: float
    filters: dict[str, Any]

    @property
    def wanted(self) -> int:
        """How many hits search should find: more than ``top_k`` when a reranker picks."""
        return candidates_wanted(self.top_k) if self.rerank else self.top_k


@dataclass(frozen=True)
class _Found:
    """What search found: the hits of the base's mode, and with ``explain`` each stage's own."""

    hits: list[search.Hit]
    dense: list[search.Hit] | None
    keyword: list[search.Hit] | None


async def aretrieve(
    *,
    knowledge_base: KnowledgeBase,
    query: str,
    options: RetrievalOptions | None = None,
    engine_for: EngineFor,
    explain: bool = False,
) -> Retrieval:
    """The chunks of ``knowledge_base`` that best match ``query``, as citations, best first.
    LookupError when asked to rerank a base that has no reranker."""
    slug = knowledge_base.slug
    attributes = {"gen_ai.operation.name": "retrieval", "studio.knowledge_base": slug}
    with tracing.span(f"retrieval {knowledge_base.slug}", **attributes) as span:
        result = await _retrieve(knowledge_base, query, options, engine_for, explain)
        if span is not None:
            span.set_attribute("studio.retrieval.hits", len(result.citations))
        return result


async def _retrieve(
    knowledge_base: KnowledgeBase,
    query: str,
    options: RetrievalOptions | None,
    engine_for: EngineFor,
    explain: bool,
) -> Retrieval:
    plan = _plan(knowledge_base, query, options or RetrievalOptions())
    clock = _Clock()
    result = Retrieval(citations=[], mode=plan.mode, reranked=plan.rerank, timings_ms=clock.timings)
    if not plan.query:
        return result
    vector = await _embed(knowledge_base, plan, engine_for, clock)
    found = await _search(knowledge_base, plan, vector, clock, explain=explain)
    if explain:
        result.stages = _stages(found, plan)
    scores = {h.chunk_id: h.score for h in found.hits}
    order = [h.chunk_id for h in found.hits]
    chunks = await _chunks(order)
    stage_info = {h.chunk_id: _stage_info(h) for h in found.hits}
    if plan.rerank and order:
        started = clock.start()
        ranked = await arerank(
            knowledge_base=knowledge_base,
            query=plan.query,
            candidates=[(i, chunks[i].text) for i in order if i in chunks],
            engine_for=engine_for,
        )
        clock.stop("rerank", started)
        for position, (chunk_id, score) in enumerate(ranked, 1):
            stage_info[chunk_id]["reranked"] = {"rank": position, "score": score}
        scores = dict(ranked)
        order = [chunk_id for chunk_id, _ in ranked]
        if explain:
            result.stages["reranked"] = ranked
    order = _kept(order, scores, chunks, plan)
    result.citations = _citations(knowledge_base, order, chunks, scores, stage_info)
    return result


def _plan(knowledge_base: KnowledgeBase, query: str, options: RetrievalOptions) -> _Plan:
    """The settings to retrieve with; LookupError when asked to rerank without a reranker."""
    filters = search.MetadataFilters(filters=options.filters).filters
    rerank = knowledge_base.rerank if options.rerank is None else options.rerank
    threshold = (
        knowledge_base.score_threshold
        if options.score_threshold is None
        else options.score_threshold
    )
    if rerank and knowledge_base.reranker_id is None:
        raise LookupError(f"{knowledge_base.name} has no reranker; choose one in its settings")
    return _Plan(
        query=query.strip()[:MAX_QUERY_CHARS],
        top_k=options.top_k or knowledge_base.top_k,
        mode=options.mode or knowledge_base.search_mode,
        rerank=rerank,
        threshold=threshold,
        filters=filters,
    )


async def _embed(
    knowledge_base: KnowledgeBase, plan: _Plan, engine_for: EngineFor, clock: _Clock
) -> list[float] | None:
    """The query's vector; None for keyword search, or while the base has no vector yet."""
    if plan.mode == SearchMode.KEYWORD or not knowledge_base.dimensions:
        return None
    started = clock.start()
    engine = await engine_for(await _related(knowledge_base, "embedding_model"))
    vector = (await engine.embed([plan.query]))[0]
    clock.stop("embed", started)
    return vector


async def _search(
    knowledge_base: KnowledgeBase,
    plan: _Plan,
    vector: list[float] | None,
    clock: _Clock,
    *,
    explain: bool,
) -> _Found:
    """Each stage the mode needs (and with ``explain`` the dense and keyword ones too), timed."""
    base_id, dims, mode, wanted = (
        knowledge_base.id,
        knowledge_base.dimensions,
        plan.mode,
        plan.wanted,
    )

    async def timed(name: str, fn: Callable[..., list[search.Hit]], **kwargs: Any):
        started = clock.start()
        hits = await sync_to_async(fn)(knowledge_base_id=base_id, filters=plan.filters, **kwargs)
        clock.stop(name, started)
        return hits

    exact = search.exact_scan(knowledge_base.chunk_total)
    dense_hits = keyword_hits = None
    if vector is not None and (mode == SearchMode.DENSE or explain):
        dense_hits = await timed(
            "dense", search.dense, dimensions=dims, vector=vector, limit=wanted, exact=exact
        )
    if mode == SearchMode.KEYWORD or explain:
        keyword_hits = await timed("keyword", search.keyword, query=plan.query, limit=wanted)
    if mode == SearchMode.HYBRID and vector is not None:
        hits = await timed(
            "hybrid",
            search.hybrid,
            dimensions=dims,
            vector=vector,
            query=plan.query,
            limit=wanted,
            candidates=max(wanted, 100),
            exact=exact,
        )
    elif mode == SearchMode.DENSE:
        hits = dense_hits or []
    else:  # keyword, or hybrid before the base has any vector
        hits = keyword_hits if keyword_hits is not None else []
    return _Found(hits=hits, dense=dense_hits, keyword=keyword_hits)


def _stages(found: _Found, plan: _Plan) -> dict[str, list[tuple[int, float]]]:
    """Each search stage's ranking, for the test page to show beside the final one."""
    stages = {
        name: [(h.chunk_id, h.score) for h in hits]
        for name, hits in (("dense", found.dense), ("keyword", found.keyword))
        if hits is not None
    }
    if plan.mode == SearchMode.HYBRID:
        stages["fused"] = [(h.chunk_id, h.score) for h in found.hits]
    return stages


def _kept(
    order: list[int], scores: dict[int, float], chunks: dict[int, Chunk], plan: _Plan
) -> list[int]:
    """The ids to cite: above the threshold where scores mean something, still stored, top k."""
    if plan.rerank or plan.mode == SearchMode.DENSE:
        # Cosine similarity and reranker scores have a meaning of their own; BM25 and fused
        # ranks do not, so the threshold applies to those two only.
        order = [i for i in order if scores[i] >= plan.threshold]
    return [i for i in order if i in chunks][: plan.top_k]


def _citations(
    knowledge_base: KnowledgeBase,
    order: list[int],
    chunks: dict[int, Chunk],
    scores: dict[int, float],
    stage_info: dict[int, dict[str, Any]],
) -> list[Citation]:
    return [
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
