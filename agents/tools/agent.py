"""The agent tool: another published agent of the workspace, asked a question by this one.

A call runs the other agent's published version as a child run of its backing flow (the hidden
flow ``agent_publish`` keeps: input, the agent node, output), the way the flow tool runs a flow
(``agents/tools/flow.py``): durable like any agent node (checkpointed, resumed after a lost
worker), its steps on its own trace, its model calls metered as that run's usage, and the same
idempotency key finds the same child again.

An agent that calls itself, or a chain that comes back to an agent already running in it, is
refused with a tool error before any run starts; any chain nests at most
``flows.nodes.subflow.MAX_DEPTH`` runs deep.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from pydantic import Field

from agents.models import Agent
from agents.tools import register
from agents.tools.base import Tool, ToolConfig, ToolContext, ToolParams, ToolResult
from agents.tools.flow import (
    CallRefused,
    child_outcome,
    child_start,
    child_wait,
    may_run,
    parent_of,
    refused,
    unavailable,
)
from flows.models import Run
from flows.nodes.subflow import MAX_DEPTH
from flows.selectors import run_answer_text, version_graph
from studio import access

MAX_MESSAGE_CHARS = 20_000


class AgentConfig(ToolConfig):
    agent: str = Field(
        min_length=1, max_length=100, description="A published agent of the workspace (its slug)."
    )


class AgentParams(ToolParams):
    message: str = Field(
        min_length=1, max_length=MAX_MESSAGE_CHARS, description="what to ask the agent"
    )


def _published(workspace_id: int, slug: str) -> Agent | None:
    """The agent with a published version and its backing flow (fetched with them)."""
    return (
        Agent.objects.select_related("flow__published_version", "published_version")
        .filter(
            workspace_id=workspace_id,
            slug=slug,
            published_version__isnull=False,
            flow__published_version__isnull=False,
        )
        .first()
    )


def _agents_running(ctx: ToolContext, parent: Run | None) -> set[str]:
    """The slugs of the agents running in this chain of calls: in each run up the chain, the
    agent node that waits on the call below it (the calling agent's own node first)."""
    slugs: set[str] = set()
    _, _, key = (ctx.run_id or "").partition(":")
    run, hops = parent, 0
    while run is not None and hops <= MAX_DEPTH:
        node = version_graph(run.flow_version_id).nodes.get(key.split("[", 1)[0])
        if node is not None and node.kind.type == "agent":
            slugs.add(node.config.agent)
        key, run, hops = run.parent_node, run.parent, hops + 1
    return slugs


@register
class AgentTool(Tool):
    name = "agent"
    description = "Ask another agent of the workspace and read its answer."
    Params = AgentParams
    Config = AgentConfig

    def definition(self, config: AgentConfig) -> dict[str, Any]:
        definition = super().definition(config)
        definition["function"]["description"] = (
            f"Ask the agent {config.agent} a question (a message) and read its answer."
        )
        return definition

    def check(self, config: AgentConfig, workspace: Any, user: Any = None) -> list[str]:
        agent = _published(workspace.id, config.agent)
        if agent is None or (user is not None and not access.has_perm(user, agent, "use")):
            return [unavailable("agent", config.agent)]
        return []

    async def arun(self, ctx: ToolContext, config: AgentConfig, params: AgentParams) -> ToolResult:
        try:
            run = await sync_to_async(self._start)(ctx, config, params)
        except CallRefused as exc:
            return refused(str(exc))
        run = await child_wait(run)
        answer = run_answer_text(run) if run.outputs else ""
        return child_outcome(run, what="agent", slug=config.agent, answer=answer)

    def _start(self, ctx: ToolContext, config: AgentConfig, params: AgentParams) -> Run:
        agent = _published(ctx.workspace_id, config.agent)
        if agent is None or not may_run(ctx.user_id, agent, "use"):
            raise CallRefused(unavailable("agent", config.agent))
        parent, _ = parent_of(ctx)
        if ctx.agent_id == agent.id or agent.slug in _agents_running(ctx, parent):
            raise CallRefused(
                f"the agent {config.agent!r} is already running in this chain of calls (an "
                "agent cannot call itself, directly or through other agents)"
            )
        return child_start(ctx, agent.flow, {"message": params.message})
