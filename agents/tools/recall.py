"""Recall: the agent looks up what it remembers about the end user, most relevant first, as
untrusted data (the facts came from conversations, so from the end user)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from pydantic import Field

from agents.memory import UNAVAILABLE, aembedded, amemory_agent, fact_recall
from agents.tools import register
from agents.tools.base import Tool, ToolConfig, ToolContext, ToolParams, ToolResult, untrusted


class RecallParams(ToolParams):
    query: str = Field(
        min_length=1, max_length=2000, description="what you want to know about the user"
    )


class RecallConfig(ToolConfig):
    top_k: int = Field(default=5, ge=1, le=20)


@register
class Recall(Tool):
    name = "recall"
    description = (
        "Look up facts you saved earlier about the user you are talking with, most relevant "
        "to the query first."
    )
    Params = RecallParams
    Config = RecallConfig

    async def arun(
        self, ctx: ToolContext, config: RecallConfig, params: RecallParams
    ) -> ToolResult:
        agent = await amemory_agent(
            workspace_id=ctx.workspace_id, agent_id=ctx.agent_id, subject=ctx.subject
        )
        if agent is None:
            return ToolResult(content=UNAVAILABLE)
        vector, model_key = await aembedded(ctx.engine_for, params.query)
        recalled = await sync_to_async(fact_recall)(
            agent=agent, subject=ctx.subject, vector=vector, model_key=model_key, k=config.top_k
        )
        if not recalled:
            return ToolResult(content="You have no saved facts about this user.")
        lines = "\n".join(f"- {r.fact.text}" for r in recalled)
        return ToolResult(
            content=untrusted(lines, source="memory"),
            details={
                "facts": [{"id": r.fact.id, "similarity": round(r.similarity, 4)} for r in recalled]
            },
        )
