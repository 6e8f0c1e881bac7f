"""The agent node: runs a published agent as one node of a flow, on the worker that serves its
model, streaming its steps (tool calls, results, the answer's tokens) on the run's events.

The node runs a published version of the agent (the one published now, or a pinned number).
With ``draft: true`` it runs the agent's current draft instead, for the builder's preview
(``agents/preview.py``) only: the run must be a studio run of that agent's own backing flow,
made by someone who may change the agent; any other run fails (a flow imported with
``draft: true`` never runs someone's draft).

Its state is checkpointed on the node's stored result (``agents/runtime.py``), so a node
retried after a lost worker resumes without repeating a tool call. A limit ends the node with
the limit's message as its answer (outcome ``limited``, the run goes on); a model that cannot
be called fails the node with the reason.

A tool call that needs a person's approval makes the node wait (``NodeOutput.wait``): its state
stays on the stored result, the run is ``waiting`` and ``run.waiting`` carries the call (tool,
arguments, step, key). The person approves or rejects it (``answer_check``: on the run's page
or over the API); the node is queued again and resumes: an approved call runs once (its
idempotency key, and the state's record of started calls), a rejected one tells the model the
person refused it, with their reason, and the agent goes on without it.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as AnswerInvalid
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from agents.extraction import facts_extract
from agents.loop import AgentEnv, AgentOutcome, agent_resume, agent_run, still_waiting
from agents.models import Agent, AgentVersion
from agents.runtime import (
    STATE_KEY,
    agent_env,
    agent_window,
    conversation_turns,
    state_load,
)
from agents.spec import AgentSpec
from agents.state import Status
from flows.history import history_window
from flows.models import Run, RunSource
from flows.nodes import model_call, register
from flows.nodes.base import NodeConfig, NodeContext, NodeOutput, NodeType, PortType
from studio import access, events

MAX_HISTORY = 50  # turns of the ``history`` input the agent reads (the most recent)
APPROVAL_WAIT_S = 24 * 3600  # how long the run may wait for a person to approve a call


class AgentNodeConfig(NodeConfig):
    agent: str = Field(
        min_length=1, max_length=100, title="Agent", description="An agent of the workspace."
    )
    version: int | None = Field(
        default=None,
        ge=1,
        title="Version",
        description="Pin a published version; empty: the version published when the node runs.",
    )
    # Every input port of a node must be connected: the history port is there when asked for.
    history: bool = Field(
        default=False,
        title="History input",
        description="Give the agent the conversation before the message (a JSON list of "
        "{role, content} turns) on a second input.",
    )
    # The builder's preview: run the agent's saved draft (see the module's docstring). Left
    # out of the schema, so the flow editor neither shows nor keeps it.
    draft: SkipJsonSchema[bool] = Field(
        default=False, description="Run the agent's draft (the builder's preview only)."
    )

    @model_validator(mode="after")
    def _draft_or_version(self) -> AgentNodeConfig:
        if self.draft and self.version is not None:
            raise ValueError("a node runs the agent's draft or a pinned version, not both")
        return self


def _version(workspace_id: int, config: AgentNodeConfig) -> tuple[Agent | None, Any]:
    """The agent and the version the node runs (None when the agent has none to run)."""
    agent = (
        Agent.objects.select_related("published_version")
        .filter(workspace_id=workspace_id, slug=config.agent)
        .first()
    )
    if agent is None:
        return None, None
    if config.draft:
        # The draft as a version that is not stored: numbered 0, read like any other.
        draft = AgentVersion(agent=agent, number=0, spec=agent.draft)
        return agent, draft if agent.draft is not None else None
    if config.version is None:
        return agent, agent.published_version
    return agent, AgentVersion.objects.filter(agent=agent, number=config.version).first()


def _unavailable(config: AgentNodeConfig) -> str:
    # One message for a missing agent, an unpublished one and one the user may not use.
    if config.draft:
        return f"agent {config.agent!r} has no draft that this flow may use"
    wanted = f"version {config.version}" if config.version else "published version"
    return f"agent {config.agent!r} has no {wanted} that this flow may use"


def _spec(version: AgentVersion) -> AgentSpec:
    try:
        return AgentSpec.model_validate(version.spec)
    except ValidationError:
        which = f"version {version.number}" if version.number else "draft"
        raise ValueError(f"agent {which} no longer reads as an agent") from None


def history_turns(value: Any, window_tokens: int) -> list[dict[str, str]]:
    """The ``history`` input as chat turns: a list of ``{"role", "content"}`` (user or
    assistant; anything else left out), the most recent that fit the agent's short-term memory
    window (``spec.memory.window_tokens``, counted roughly as the flows' memory counts)."""
    return history_window(conversation_turns(value)[-MAX_HISTORY:], max_tokens=window_tokens)


class ApprovalAnswer(BaseModel):
    """A person's decision on a tool call that waits for approval."""

    model_config = ConfigDict(extra="forbid")
    approve: StrictBool
    reason: str = Field(default="", max_length=2_000)
    # The request answered (``run.waiting``'s ``key``): an answer to an earlier one is stale.
    key: str | None = Field(default=None, max_length=300)


def _asking(config: AgentNodeConfig, outcome: AgentOutcome) -> NodeOutput:
    """The node waits for a person to approve the call ``outcome.pending``."""
    asked = {
        "kind": "approval",
        "agent": config.agent,
        **(outcome.pending or {}),
        "deadline_s": APPROVAL_WAIT_S,
    }
    state = outcome.state.model_dump(mode="json")
    return NodeOutput(outputs={}, details={STATE_KEY: state}, wait=asked)


async def _extracted(
    spec: AgentSpec, env: AgentEnv, message: str, outcome: AgentOutcome
) -> dict[str, Any]:
    """With automatic extraction on, the facts about the end user the answered exchange gave,
    stored (what the trace shows: ``agents.extraction``); nothing otherwise."""
    memory = spec.memory
    wanted = memory.long_term and memory.extract_facts and env.agent_id and env.subject
    if not wanted or outcome.status != Status.DONE:
        return {}
    found = await facts_extract(env=env, message=message, answer=outcome.answer)
    return found.details()


def _may_use(user_id: int | None, agent: Agent) -> bool:
    if user_id is None:
        return True  # an API key's run: the flow's author was checked when it was saved
    user = get_user_model().objects.filter(id=user_id).first()
    return user is not None and access.has_perm(user, agent, "use")


DRAFT_REFUSED = (
    "only the agent builder's preview runs an agent's draft: a studio run of the agent's own "
    "flow, by someone who may change the agent"
)


def _may_run_draft(run_id: str, agent: Agent) -> bool:
    """Whether run ``run_id`` is the builder's preview of ``agent``: a studio run of the
    agent's backing flow whose user may change the agent."""
    run = Run.objects.filter(id=run_id).select_related("created_by").first()
    return (
        run is not None
        and agent.flow_id is not None
        and run.flow_id == agent.flow_id
        and run.source == RunSource.STUDIO
        and run.created_by is not None
        and access.has_perm(run.created_by, agent, "change")
    )


@register
class AgentNode(NodeType):
    type = "agent"
    label = "Agent"
    group = "Models"
    description = "Runs a published agent (its tools, its steps) and gives its answer."
    Config = AgentNodeConfig

    # A call that needs approval makes the run wait for a person.
    pauses_run = True

    def input_ports(self, config: AgentNodeConfig) -> dict[str, PortType]:
        if config.history:
            return {"message": "text", "history": "json"}
        return {"message": "text"}

    def output_ports(self, config: AgentNodeConfig) -> dict[str, PortType]:
        return {"answer": "text", "steps": "number", "outcome": "text"}

    def check(self, config: AgentNodeConfig, workspace: Any, user: Any = None) -> list[str]:
        agent, version = _version(workspace.id, config)
        needed = "change" if config.draft else "use"
        if version is None or (user is not None and not access.has_perm(user, agent, needed)):
            return [_unavailable(config)]
        try:
            spec = _spec(version)
        except ValueError as exc:
            return [f"agent {config.agent!r}: {exc}"]
        problems = model_call.target_problems(spec, workspace, user)  # type: ignore[arg-type]
        return [f"agent {config.agent!r}: {p}" for p in problems]

    def pickers(self, config: dict, workspace: Any, user: Any) -> dict[str, list[tuple[str, str]]]:
        """The flow editor's selects: the workspace's published agents ``user`` may use (each
        with the number it publishes now), and the chosen one's versions to pin."""
        published = Agent.objects.filter(published_version__isnull=False)
        agents = list(
            access.scope(user, workspace.id, published, "use")
            .select_related("published_version")
            .order_by("name")
        )
        choices = [(a.slug, f"{a.name} ({a.slug}), v{a.published_version.number}") for a in agents]
        wanted = config.get("agent") if isinstance(config, dict) else None
        chosen = next((a for a in agents if a.slug == wanted), None)
        if chosen is None:
            return {"agent": choices, "version": [("", "The version published when it runs")]}
        now = chosen.published_version.number
        numbers = chosen.versions.values_list("number", flat=True)  # newest first
        return {
            "agent": choices,
            "version": [
                ("", f"The version published when it runs (now v{now})"),
                *[(str(n), f"v{n}{' (published now)' if n == now else ''}") for n in numbers],
            ],
        }

    def answer_check(
        self, config: AgentNodeConfig, details: dict, values: Any, user: Any = None
    ) -> dict:
        """Approve or reject the call asked about: ``{"approve": true}`` or ``{"approve":
        false, "reason": "…"}``, with the request's ``key`` to make sure it is the one asked."""
        asked = details.get("asked") or {}
        try:
            answer = ApprovalAnswer.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors()
            )
            raise AnswerInvalid(
                f'An approval is {{"approve": true}} or {{"approve": false, "reason": …}} '
                f"({problems})."
            ) from None
        if answer.key is not None and answer.key != asked.get("key"):
            raise AnswerInvalid(
                "This approval request is no longer waiting: the agent asks about another call "
                "now.",
                code="conflict",
            )
        return {
            "approve": answer.approve,
            "reason": answer.reason.strip(),
            "key": asked.get("key"),
            "by": getattr(user, "username", "") or "",
        }

    def queue(self, config: AgentNodeConfig, workspace_id: int) -> str | None:
        _, version = _version(workspace_id, config)
        if version is None:
            return "inference"  # the node fails there with the reason
        try:
            spec = _spec(version)
        except ValueError:
            return "inference"
        return model_call.target_queue(spec, workspace_id)  # type: ignore[arg-type]

    async def arun(
        self, ctx: NodeContext, config: AgentNodeConfig, inputs: dict[str, Any]
    ) -> NodeOutput:
        agent, version = await sync_to_async(_version)(ctx.workspace_id, config)
        if version is None or not await sync_to_async(_may_use)(ctx.user_id, agent):
            raise LookupError(_unavailable(config))
        if config.draft and not await sync_to_async(_may_run_draft)(ctx.run_id, agent):
            raise PermissionError(f"agent {config.agent!r}: {DRAFT_REFUSED}")
        spec = _spec(version)
        env = await agent_env(ctx, spec, agent_id=agent.id, agent_slug=agent.slug)
        message = inputs.get("message")
        # Without its history input, the agent is given the conversation the run belongs to
        # (an agent's chat page, widget and APIs run it so, through its backing flow).
        history = inputs.get("history") if config.history else ctx.history
        # The recent turns; older ones summarised into the instructions (``agent_window``).
        window = await agent_window(ctx, spec, env, history, most_turns=MAX_HISTORY)
        message = "" if message is None else str(message)
        messages = [*window.turns, {"role": "user", "content": message}]
        state, answer = await state_load(ctx)
        if state is not None and state.status in (Status.DONE, Status.LIMITED):
            # A retry after the worker was lost between the agent's end and the node's result:
            # its answer is given again (the retry reset the streamed text), not asked again.
            await ctx.emit(events.TOKEN, {"text": state.answer})
            outcome = AgentOutcome(state.status, state.answer, state.reason, state)
        elif state is not None and state.status == Status.WAITING and answer is not None:
            decision = "approve" if answer["approve"] else "reject"
            note = answer.get("reason", "")
            outcome = await agent_resume(spec, state, decision, env=env, note=note)
        elif state is not None and state.status == Status.WAITING:
            outcome = still_waiting(state)  # requeued with no answer: ask again
        else:
            outcome = await agent_run(spec, messages, env=env, state=state)
        if outcome.status == Status.FAILED:
            raise RuntimeError(f"the agent could not answer: {outcome.reason}")
        if outcome.status == Status.WAITING:
            return _asking(config, outcome)
        state = outcome.state
        memory = {**window.details, **await _extracted(spec, env, message, outcome)}
        return NodeOutput(
            input_tokens=state.input_tokens + env.side_tokens[0],
            output_tokens=state.output_tokens + env.side_tokens[1],
            outputs={
                "answer": outcome.answer,
                "steps": state.steps,
                "outcome": str(outcome.status),
            },
            details={
                "agent": config.agent,
                "version": version.number or "draft",
                "outcome": str(outcome.status),
                "reason": outcome.reason,
                "steps": state.steps,
                "tokens": state.tokens,
                **({"memory": memory} if memory else {}),
            },
        )
