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

Short-term memory (``agent_window``): the conversation's recent turns that fit the agent's
window; with ``summarise_older``, the older ones are summarised by the agent's own model or
route through the LLM node's summariser (``flows.nodes.memory``: cached in Redis, rolling) and
the summary is put after the instructions. Every model call the agent makes besides its steps
(the summary, fact extraction) is metered as the agent's (``agent_call``).

Whose memory: a member's run is about ``user:<id>``; a run from the embed widget by an
anonymous visitor is about the visitor its signed widget token names (``visitor:<hash>``, the
conversation's end user); any other anonymous run (an API key) has no long-term memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from agents.loop import AgentEnv
from agents.memory import user_subject
from agents.spec import AgentSpec
from agents.state import AgentState
from catalog.engines.base import GenerationRequest
from catalog.inference import CallResult, ainvoke
from catalog.models import Model
from flows.history import history_split
from flows.models import NodeResult, NodeStatus, RunSource
from flows.nodes import memory as summaries
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


async def agent_env(
    ctx: NodeContext, spec: AgentSpec, agent_id: int | None = None, agent_slug: str = ""
) -> AgentEnv:
    """The environment of ``spec``'s run as node ``ctx.node_id``; LookupError when its model,
    route or library prompt is gone. ``agent_slug``: what its usage rows name."""
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
        "agent_slug": agent_slug,
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
        subject=await end_user_subject(ctx),
    )


async def end_user_subject(ctx: NodeContext) -> str | None:
    """Whom the run's long-term memory is about (see the module's docstring); None: no one."""
    if ctx.user_id is not None:
        return user_subject(ctx.user_id)
    return await _widget_visitor(ctx.run_id)


async def _widget_visitor(run_id: str) -> str | None:
    """The anonymous visitor whose widget message started run ``run_id``: its answer's
    conversation's end user, as the signed widget token named it. Only a widget run of a widget
    conversation counts: an API client names its conversations' end users itself, and must not
    reach a visitor's memory by naming one."""
    from conversations.models import Message, Source

    end_user = await (
        Message.objects.filter(
            run_id=run_id,
            run__source=RunSource.WIDGET,
            conversation__source=Source.WIDGET,
            conversation__end_user__startswith="visitor:",
        )
        .values_list("conversation__end_user", flat=True)
        .afirst()
    )
    return end_user or None


# --- model calls besides the steps, and short-term memory ----------------------------------


def agent_call(
    env: AgentEnv, *, node_id: str
) -> Callable[[Callable[[Model], GenerationRequest]], Awaitable[CallResult]]:
    """A model call made for the agent outside its steps (not streamed, never cached), metered
    as the agent's under ``node_id`` ("summary", "extract")."""

    async def call(request_for: Callable[[Model], GenerationRequest]) -> CallResult:
        async def silent(text: str) -> None:
            return None

        result = await ainvoke(
            workspace_id=env.workspace_id,
            candidates=env.candidates,
            request_for=request_for,
            engine_for=env.engine_for,
            on_token=silent,
            use_cache=False,
            first_token_timeout_s=env.first_token_timeout_s,
            queue=env.queue,
            usage={"source": "agent", "user_id": env.user_id, **env.usage, "node_id": node_id},
        )
        env.side_tokens[0] += result.input_tokens
        env.side_tokens[1] += result.output_tokens
        return result

    return call


def conversation_turns(value: Any) -> list[dict[str, str]]:
    """A conversation given as JSON as chat turns: its ``{"role", "content"}`` items whose role
    is user or assistant and whose content is text (anything else left out)."""
    if not isinstance(value, list):
        return []
    return [
        {"role": item["role"], "content": item["content"]}
        for item in value
        if isinstance(item, dict)
        and item.get("role") in ("user", "assistant")
        and isinstance(item.get("content"), str)
    ]


@dataclass
class Window:
    """What the agent is shown of the conversation before the message."""

    turns: list[dict[str, str]]
    # For the trace: turns dropped, and the summary written (or why there is none).
    details: dict[str, Any] = field(default_factory=dict)


async def agent_window(
    ctx: NodeContext, spec: AgentSpec, env: AgentEnv, history: Any, *, most_turns: int
) -> Window:
    """The recent turns of ``history`` that fit the agent's window (at most ``most_turns``).
    With ``spec.memory.summarise_older``, the turns left out are summarised and the summary is
    added to ``env.instructions`` (after the agent's own); a summary that cannot be made leaves
    them out, with a note in the details: it never fails the run."""
    dropped, kept = history_split(
        conversation_turns(history),
        last_turns=most_turns // 2,
        max_tokens=spec.memory.window_tokens,
    )
    window = Window(kept)
    if not dropped:
        return window
    if not spec.memory.summarise_older:
        window.details = {"dropped_turns": len(dropped)}
        return window
    target = await model_call.resolve(ctx, spec)  # type: ignore[arg-type]  # same two fields
    memory = summaries.Memory(kept)
    await summaries.summarise_dropped(
        ctx, target, dropped, memory, call=agent_call(env, node_id="summary")
    )
    window.details = memory.details
    if memory.summary:
        own = env.instructions if env.instructions is not None else spec.instructions.text
        env.instructions = summaries.with_summary(own, memory.summary)
    return window
