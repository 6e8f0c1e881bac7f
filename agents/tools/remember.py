"""Remember: the agent keeps a fact about the end user it speaks with, for later conversations."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from pydantic import Field

from agents.memory import (
    MAX_FACT_CHARS,
    UNAVAILABLE,
    FactRefused,
    aembedded,
    amemory_agent,
    fact_remember,
)
from agents.tools import register
from agents.tools.base import Tool, ToolConfig, ToolContext, ToolParams, ToolResult


class RememberParams(ToolParams):
    fact: str = Field(
        min_length=1,
        max_length=MAX_FACT_CHARS,
        description="one short, self-contained fact about the user worth keeping "
        "(a preference, a detail they told you)",
    )


@register
class Remember(Tool):
    name = "remember"
    description = (
        "Save a fact about the user you are talking with, to recall it in later conversations. "
        "Use it for lasting facts the user tells you, not for the task at hand."
    )
    Params = RememberParams

    async def arun(
        self, ctx: ToolContext, config: ToolConfig, params: RememberParams
    ) -> ToolResult:
        agent = await amemory_agent(
            workspace_id=ctx.workspace_id, agent_id=ctx.agent_id, subject=ctx.subject
        )
        if agent is None:
            return ToolResult(content=UNAVAILABLE)
        vector, model_key = await aembedded(ctx.engine_for, params.fact)
        try:
            remembered = await sync_to_async(fact_remember)(
                agent=agent,
                subject=ctx.subject,
                text=params.fact,
                vector=vector,
                model_key=model_key,
            )
        except FactRefused as exc:
            return ToolResult(content=f"The fact was not saved: {exc}.")
        if remembered.duplicate:
            return ToolResult(
                content="Already remembered; nothing new was saved.",
                details={"fact": remembered.fact.id, "duplicate": True},
            )
        content = "Remembered."
        if remembered.dropped:
            content += f" The {len(remembered.dropped)} oldest fact(s) were forgotten to make room."
        return ToolResult(content=content, details={"fact": remembered.fact.id})
