"""Knowledge search: the agent asks a knowledge base and reads the matching chunks, as untrusted
data inside delimiters, with numbered citations."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from pydantic import Field

from agents.tools import register
from agents.tools.base import Tool, ToolConfig, ToolContext, ToolParams, ToolResult
from knowledge.citations import context_text
from knowledge.retrieval import RetrievalOptions, aretrieve
from knowledge.search import Scalar
from knowledge.selectors import knowledge_base_by_slug, user_may_use
from studio import access


class KnowledgeSearchParams(ToolParams):
    query: str = Field(min_length=1, max_length=2000, description="what to look up")


class KnowledgeSearchConfig(ToolConfig):
    knowledge_base: str = Field(max_length=100)
    top_k: int | None = Field(default=None, ge=1, le=50)
    filters: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, max_length=20)


@register
class KnowledgeSearch(Tool):
    name = "knowledge_search"
    description = (
        "Search a knowledge base of documents. Returns numbered passages with their sources; "
        "cite them as [n]."
    )
    Params = KnowledgeSearchParams
    Config = KnowledgeSearchConfig

    def check(self, config: KnowledgeSearchConfig, workspace: Any, user: Any = None):
        base = knowledge_base_by_slug(workspace.id, config.knowledge_base)
        # One answer for a missing base and one the user may not use: no probing for slugs.
        if base is None or (user is not None and not access.has_perm(user, base, "use")):
            return [f"knowledge base {config.knowledge_base!r} is not in this workspace"]
        return []

    async def arun(
        self, ctx: ToolContext, config: KnowledgeSearchConfig, params: KnowledgeSearchParams
    ) -> ToolResult:
        base = await sync_to_async(knowledge_base_by_slug)(ctx.workspace_id, config.knowledge_base)
        if base is None:
            return ToolResult(content=f"The knowledge base {config.knowledge_base!r} is gone.")
        if ctx.user_id is not None and not await sync_to_async(user_may_use)(ctx.user_id, base):
            return ToolResult(content="You may not search this knowledge base.")
        result = await aretrieve(
            knowledge_base=base,
            query=params.query,
            options=RetrievalOptions(top_k=config.top_k, filters=config.filters),
            engine_for=ctx.engine_for,
        )
        return ToolResult(
            content=context_text(result.citations),
            details={
                "citations": [c.shown() for c in result.citations],
                "retrieval": result.trace(),
            },
        )
