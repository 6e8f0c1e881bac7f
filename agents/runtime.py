"""An agent run inside a flow's node: the ``AgentEnv`` built from the node's context.

The model is reached as the flow's model nodes reach theirs (``flows.nodes.model_call``: the
spec's model, or its route's candidates in order, on the worker's resident engines); ``emit``
publishes the agent's events on the run's event log under the node's key (its answer's tokens
stream like an LLM node's); ``checkpoint`` stores the ``AgentState`` on the node's stored result
while it runs, so that a node retried after its worker was lost resumes from it instead of
repeating a tool call.

The state lives in the node's ``details`` under ``STATE_KEY`` while the node is running or
waits for a person's approval (beside the call asked about, then the answer); the node's
finished result replaces ``details`` with its trace, so the state is not kept after.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from agents.loop import AgentEnv
from agents.memory import user_subject
from agents.spec import AgentSpec
from agents.state import AgentState
from flows.models import NodeResult, NodeStatus
from flows.nodes import model_call
from flows.nodes.base import NodeContext

STATE_KEY = "agent_state"
ANSWER_KEY = "answer"


def _stored(ctx: NodeContext) -> QuerySet[NodeResult]:
    return NodeResult.objects.filter(run_id=ctx.run_id, node_id=ctx.node_id)


async def state_load(ctx: NodeContext) -> tuple[AgentState | None, dict | None]:
    """The state a previous attempt of this node checkpointed, or None (a first attempt), and
    the person's answer it resumes with when it waited for an approval (``ANSWER_KEY``, set by
    ``flows.services.runs.run_answer``; gone once the resumed state is checkpointed)."""
    details = await _stored(ctx).values_list("details", flat=True).afirst() or {}
    saved = details.get(STATE_KEY)
    state = AgentState.model_validate(saved) if saved else None
    return state, details.get(ANSWER_KEY)


async def _instructions(ctx: NodeContext, spec: AgentSpec) -> str | None:
    """The library prompt's text when the spec names one (None: the spec's own text)."""
    wanted = spec.instructions
    if not wanted.library_prompt:
        return None
    from catalog.selectors.prompts import aprompt_version_resolve

    version = await aprompt_version_resolve(
        ctx.workspace_id, wanted.library_prompt, wanted.library_version
    )
    if version is None:
        raise LookupError(f"prompt {wanted.library_prompt!r} has no usable version now")
    return version.system or version.template


async def agent_env(ctx: NodeContext, spec: AgentSpec, agent_id: int | None = None) -> AgentEnv:
    """The environment of ``spec``'s run as node ``ctx.node_id``; LookupError when its model,
    route or library prompt is gone."""
    target = await model_call.resolve(ctx, spec)  # type: ignore[arg-type]  # same two fields
    route = target.route

    async def checkpoint(state: AgentState) -> None:
        # Only while the node runs: a late write must not touch a finished or failed result.
        running = _stored(ctx).filter(status=NodeStatus.RUNNING)
        details = {STATE_KEY: state.model_dump(mode="json")}
        await running.aupdate(details=details)

    usage: dict[str, Any] = {
        "route_slug": route.slug if route else "",
        "flow_id": ctx.flow_id,
        "flow_slug": ctx.flow_slug,
        "run_id": ctx.run_id,
        "api_key_id": ctx.api_key_id,
    }
    return AgentEnv(
        workspace_id=ctx.workspace_id,
        user_id=ctx.user_id,
        run_id=f"{ctx.run_id}:{ctx.node_id}",
        candidates=target.candidates,
        engine_for=ctx.engine_for,
        emit=ctx.emit,
        checkpoint=checkpoint,
        instructions=await _instructions(ctx, spec),
        queue=target.queue,
        first_token_timeout_s=route.timeout_s if route else None,
        use_cache=False,  # an agent's steps depend on tool results: never served from cache
        usage=usage,
        agent_id=agent_id,
        # A member's facts; an anonymous run (an API key, a widget visitor) has no memory yet.
        subject=user_subject(ctx.user_id) if ctx.user_id is not None else None,
    )
