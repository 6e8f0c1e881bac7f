"""The knowledge retrieval node: a query in, the matching chunks of a knowledge base out.

``context`` is the chunks as one block for a prompt, inside delimiters that mark them as
untrusted data (``knowledge/citations.py``); ``citations`` lists them (document, page or section,
chunk id, score) for the answer's sources. Runs on the retrieval queue, where the embedding model
and the reranker stay resident.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from pydantic import Field

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeContext, NodeOutput, NodeType, PortType
from knowledge.citations import context_text
from knowledge.models import SearchMode
from knowledge.retrieval import RetrievalOptions, aretrieve
from knowledge.search import Scalar
from knowledge.selectors import knowledge_base_by_slug, retrieval_queue, user_may_use
from studio import access


class KnowledgeRetrievalConfig(NodeConfig):
    knowledge_base: str = Field(max_length=100, description="knowledge base slug")
    # None: the knowledge base's own setting.
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: SearchMode | None = None
    rerank: bool | None = None
    score_threshold: float | None = Field(default=None, ge=-1.0, le=1000.0)
    filters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, max_length=20)

    def options(self) -> RetrievalOptions:
        return RetrievalOptions(
            top_k=self.top_k,
            mode=self.mode,
            rerank=self.rerank,
            score_threshold=self.score_threshold,
            filters=self.filters,
        )


@register
class KnowledgeRetrievalNode(NodeType):
    type = "knowledge_retrieval"
    label = "Knowledge retrieval"
    group = "Knowledge"
    description = "Finds the chunks of a knowledge base that match a query, with citations."
    Config = KnowledgeRetrievalConfig

    def input_ports(self, config: KnowledgeRetrievalConfig) -> dict[str, PortType]:
        return {"query": "text"}

    def output_ports(self, config: KnowledgeRetrievalConfig) -> dict[str, PortType]:
        return {"context": "text", "citations": "json"}

    def check(self, config: KnowledgeRetrievalConfig, workspace: Any, user: Any = None):
        base = knowledge_base_by_slug(workspace.id, config.knowledge_base)
        # One answer for a missing base and one the user may not use: no probing for slugs.
        if base is None or (user is not None and not access.has_perm(user, base, "use")):
            return [f"knowledge base {config.knowledge_base!r} is not in this workspace"]
        rerank = base.rerank if config.rerank is None else config.rerank
        if rerank and base.reranker_id is None:
            return [f"knowledge base {config.knowledge_base!r} has no reranker to rerank with"]
        return []

    def queue(self, config: KnowledgeRetrievalConfig, workspace_id: int) -> str | None:
        base = knowledge_base_by_slug(workspace_id, config.knowledge_base)
        return retrieval_queue(base, config.rerank) if base else "retrieval"

    async def arun(
        self, ctx: NodeContext, config: KnowledgeRetrievalConfig, inputs: dict[str, Any]
    ) -> NodeOutput:
        base = await sync_to_async(knowledge_base_by_slug)(ctx.workspace_id, config.knowledge_base)
        if base is None:
            raise LookupError(f"knowledge base {config.knowledge_base!r} is not in this workspace")
        if ctx.user_id is not None and not await sync_to_async(user_may_use)(ctx.user_id, base):
            raise PermissionError(
                f"whoever started the run may not use the knowledge base {base.slug!r}"
            )
        query = inputs.get("query")
        result = await aretrieve(
            knowledge_base=base,
            query=query if isinstance(query, str) else str(query or ""),
            options=config.options(),
            engine_for=ctx.engine_for,
        )
        return NodeOutput(
            outputs={
                "context": context_text(result.citations),
                "citations": [c.shown() for c in result.citations],
            },
            details={"retrieval": result.trace(), "knowledge_base": base.slug},
        )
