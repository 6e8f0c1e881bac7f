"""The agent loop: ask the model, run the tools it calls, give it their results, until it answers
or a limit ends the run.

``agent_run`` runs an ``AgentSpec`` from the conversation's messages; ``agent_resume`` carries
on after a person approved or rejected a call. Both take an ``AgentEnv``: where the run stands
(workspace, user, run id), how the model is reached (candidates and engines, through
``catalog.inference.ainvoke``, as a flow's LLM node calls it: cache, fallback and metering), and
three hooks: ``emit`` (the run's event log), ``checkpoint`` (the state, stored after every change
that must survive a killed worker) and ``clock``.

Durability: the state is checkpointed after each model answer and after each tool result. A run
resumed from a checkpoint (``agent_run(..., state=…)``) retries a step cut off during its model
call, skips every tool call whose result is recorded, and does not repeat a call that started
but recorded no result (it may have had effects): the model is told it was cut off. Each tool
call carries the idempotency key ``<run>:<step>:<index>``.

Every limit (``spec.limits``) ends the run with a final message saying which one was reached
(status ``limited``), streamed like an answer; the per-step limit on tool calls refuses the
extra calls instead, telling the model so.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from agents.mcp_client import McpError
from agents.spec import AgentSpec, ToolUse
from agents.state import AgentState, Status, ToolCall, ToolOutcome
from agents.strategies import strategy_for
from agents.strategies.base import Decision, delimited
from agents.tools import tools
from agents.tools.base import Tool, ToolContext, ToolParams, ToolResult, params_from_model
from catalog.engines.base import EngineError, GenerationRequest
from catalog.inference import ainvoke
from catalog.models import Model
from catalog.router import Candidate
from studio import events, tracing

DEFAULT_MAX_TOKENS = 512  # one model call's answer, when neither the agent nor the model says
SHOWN_CHARS = 500  # of a tool result, in its event (the state keeps all of it)


async def _no_emit(type_: str, data: dict[str, Any]) -> None:
    return None


async def _no_checkpoint(state: AgentState) -> None:
    return None


@dataclass
class AgentEnv:
    workspace_id: int
    user_id: int | None
    run_id: str
    candidates: list[Candidate]  # the spec's model, or its route's models in order
    engine_for: Callable[[Model], Awaitable[Any]]
    emit: Callable[[str, dict[str, Any]], Awaitable[None]] = _no_emit
    checkpoint: Callable[[AgentState], Awaitable[None]] = _no_checkpoint
    clock: Callable[[], float] = time.time
    # The instructions' text when the spec names a library prompt (the caller resolves it).
    instructions: str | None = None
    queue: str | None = None
    first_token_timeout_s: float | None = None
    use_cache: bool = False
    usage: dict[str, Any] = field(default_factory=dict)  # what usage rows record besides
    # Long-term memory: the agent, and who the facts are about ("user:<id>"; None: anonymous,
    # no memory). With ``spec.memory.long_term`` the model is offered remember and recall.
    agent_id: int | None = None
    subject: str | None = None
    # Tokens of the calls made for the agent outside its steps (a summary, fact extraction) in
    # this execution: [input, output], added to the node's totals.
    side_tokens: list[int] = field(default_factory=lambda: [0, 0])


@dataclass
class AgentOutcome:
    status: Status
    answer: str  # the answer, or the final message of a limited or failed run
    reason: str
    state: AgentState
    # While waiting: the call a person must approve ({"key", "tool", "arguments"}).
    pending: dict[str, Any] | None = None


class _LimitReached(Exception):
    def __init__(self, reason: str, what: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = f"I stopped before finishing: this agent reached its {what}."


async def agent_run(
    spec: AgentSpec,
    messages: Sequence[dict[str, Any]],
    *,
    env: AgentEnv,
    state: AgentState | None = None,
) -> AgentOutcome:
    """Run the agent on ``messages`` (the conversation, ending with the user's message), or
    resume it from ``state``, its last checkpoint."""
    if state is None:
        state = AgentState(run_id=env.run_id, started_at=env.clock(), messages=list(messages))
    return await _Loop(spec, env, state).drive()


async def agent_resume(
    spec: AgentSpec,
    state: AgentState,
    decision: Literal["approve", "reject"],
    *,
    env: AgentEnv,
    note: str = "",
) -> AgentOutcome:
    """Carry on a run waiting for approval: ``approve`` makes the call, ``reject`` tells the
    model the person refused it (with their ``note``). ValueError if the run is not waiting."""
    key = state.waiting_on
    call = state.call(key) if key else None
    if state.status != Status.WAITING or call is None:
        raise ValueError("this agent run is not waiting for an approval")
    if decision == "approve":
        state.approved.append(call.key)
    elif decision == "reject":
        refusal = f"The person reviewing this call refused it{f': {note}' if note else '.'}"
        state.results[call.key] = ToolOutcome(content=refusal, details={"error": "rejected"})
    else:
        raise ValueError(f"unknown decision {decision!r}: approve or reject")
    if state.waiting_since is not None:
        state.started_at += max(env.clock() - state.waiting_since, 0.0)
    state.status, state.waiting_on, state.waiting_since = Status.RUNNING, None, None
    loop = _Loop(spec, env, state)
    if decision == "reject":
        await loop.result_event(call)
    return await loop.drive()


MEMORY_TOOLS = ("remember", "recall")


def _with_memory_tools(spec: AgentSpec, env: AgentEnv) -> AgentSpec:
    """``spec`` with the long-term memory tools added (those the author did not add already)
    when its memory is on and the run knows the agent and whom it talks with."""
    if not (spec.memory.long_term and env.agent_id and env.subject):
        return spec
    present = {use.tool for use in spec.tools}
    added = [ToolUse(tool=name) for name in MEMORY_TOOLS if name not in present]
    return spec.model_copy(update={"tools": [*spec.tools, *added]}) if added else spec


class _Loop:
    def __init__(self, spec: AgentSpec, env: AgentEnv, state: AgentState) -> None:
        if not env.candidates:
            raise ValueError("an agent run needs a model to call")
        self.spec, self.env, self.state = _with_memory_tools(spec, env), env, state
        self.strategy = strategy_for(spec.strategy, env.candidates[0].model)
        self.uses: dict[str, ToolUse] = {use.exposed_name: use for use in self.spec.tools}
        self.definitions = self._definitions()
        # The functions of remote servers (MCP), by the name the model calls: their tool use
        # and the way back to the remote name. Listed once per ``drive``.
        self.remote: dict[str, tuple[ToolUse, Any]] = {}
        self.shown = ""  # the streamed part of the current step's answer

    async def drive(self) -> AgentOutcome:
        await self._list_remote()
        try:
            while True:
                if self.state.calls:
                    waiting = await self._run_calls()
                    if waiting is not None:
                        return waiting
                self._check_limits()
                decision = await self._model_step()
                if not decision.calls:
                    return await self._finish(Status.DONE, decision.answer)
                await self._take_calls(decision)
        except _LimitReached as limit:
            return await self._finish(Status.LIMITED, limit.message, reason=limit.reason)
        except EngineError as exc:
            return await self._finish(Status.FAILED, "", reason=str(exc))

    # --- the model ---------------------------------------------------------------------------

    def _definitions(self) -> list[dict[str, Any]]:
        """The tools as the model is told of them, each under its exposed name. A tool whose
        settings no longer validate is left out (a call to it is answered with the problem)."""
        found = []
        registry = tools()
        for use in self.spec.tools:
            tool = registry.get(use.tool)
            if tool is None:
                continue
            try:
                config = tool.Config.model_validate(use.config)
            except ValidationError:
                continue
            definition = copy.deepcopy(tool.definition(config))
            definition["function"]["name"] = use.exposed_name
            found.append(definition)
        return found

    async def _list_remote(self) -> None:
        """Offer each tool that fronts a remote server (``remote_tools``, MCP) as the server's
        own functions instead of its one generic function. A server that cannot be listed is
        left out, the model told nothing of it; the trace says why."""
        registry = tools()
        for use in self.spec.tools:
            tool = registry.get(use.tool)
            if tool is None or not hasattr(tool, "remote_tools"):
                continue
            self.definitions = [
                d for d in self.definitions if d["function"]["name"] != use.exposed_name
            ]
            try:
                config = tool.Config.model_validate(use.config)
                functions = await tool.remote_tools(
                    self._context(), config, prefix=use.exposed_name
                )
            except (ValidationError, McpError) as exc:
                await self.env.emit(
                    events.TOOL_RESULT,
                    {
                        "step": self.state.steps,
                        "key": "",
                        "tool": use.exposed_name,
                        "content": f"The tools of this server could not be listed: {exc}",
                        "details": {"error": "list"},
                    },
                )
                continue
            for function in functions:
                self.remote[function.definition["function"]["name"]] = (use, function)
                self.definitions.append(function.definition)

    def _context(self, idempotency_key: str | None = None) -> ToolContext:
        return ToolContext(
            self.env.workspace_id,
            self.env.user_id,
            self.env.engine_for,
            idempotency_key=idempotency_key,  # a tool with side effects sends it along
            run_id=self.env.run_id,  # the flow and agent tools start child runs under it
            agent_id=self.env.agent_id,
            subject=self.env.subject,
        )

    def _request(self, model: Model) -> GenerationRequest:
        defaults = model.sampling or {}
        limits = self.spec.limits
        instructions = self.env.instructions
        if instructions is None:
            instructions = self.spec.instructions.text
        system = self.strategy.system_text(instructions, self.definitions)
        temperature = self.spec.temperature
        if temperature is None:
            temperature = defaults.get("temperature") or 0.0
        return GenerationRequest(
            messages=[{"role": "system", "content": system}, *self.state.messages],
            max_tokens=limits.max_answer_tokens or defaults.get("max_tokens") or DEFAULT_MAX_TOKENS,
            temperature=temperature,
            top_p=defaults.get("top_p") or 1.0,
            tools=self.strategy.tools_param(self.definitions),
        )

    async def _model_step(self) -> Decision:
        """One model call (step ``steps + 1``); the step counts once the model has answered."""
        step = self.state.steps + 1
        await self.env.emit(events.AGENT_STEP, {"step": step})
        tokens = self.strategy.token_filter()

        async def on_token(text: str) -> None:
            shown = tokens.feed(text)
            if shown:
                await self.env.emit(events.TOKEN, {"text": shown})

        result = await self._timed(
            ainvoke(
                workspace_id=self.env.workspace_id,
                candidates=self.env.candidates,
                request_for=self._request,
                engine_for=self.env.engine_for,
                on_token=on_token,
                use_cache=self.env.use_cache,
                first_token_timeout_s=self.env.first_token_timeout_s,
                queue=self.env.queue,
                usage={
                    "source": "agent",
                    "user_id": self.env.user_id,
                    **self.env.usage,
                    "node_id": f"step-{step}",
                },
            )
        )
        self.state.steps = step
        self.state.tokens += result.input_tokens + result.output_tokens
        self.state.input_tokens += result.input_tokens
        self.state.output_tokens += result.output_tokens
        self.shown = tokens.shown
        return self.strategy.decide(result)

    async def _take_calls(self, decision: Decision) -> None:
        """Record the calls the model asked for (beyond the per-step limit: refused)."""
        step, most = self.state.steps, self.spec.limits.max_tool_calls_per_step
        calls = []
        for index, raw in enumerate(decision.calls):
            call = ToolCall(
                key=f"{self.state.run_id}:{step}:{index}",
                id=raw["id"] or f"call_{step}_{index}",
                name=raw["name"],
                arguments=raw["arguments"],
            )
            if index >= most:
                call.refusal = (
                    f"Not run: this agent makes at most {most} tool calls per step. Call it "
                    "again in your next step if you still need it."
                )
            calls.append(call)
        if decision.thought:
            await self.env.emit(events.AGENT_THOUGHT, {"step": step, "text": decision.thought})
        self.state.messages.append(self.strategy.assistant_message(decision, calls))
        self.state.calls, self.state.results = calls, {}
        self.state.started, self.state.approved = [], []
        await self.env.checkpoint(self.state)

    # --- the tools ---------------------------------------------------------------------------

    async def _run_calls(self) -> AgentOutcome | None:
        """Make the step's calls not made yet, in order, then give all results to the model.
        Returns the waiting outcome when a call needs a person's approval first."""
        state = self.state
        for call in state.calls:
            if call.key in state.results:
                continue
            outcome = await self._one_call(call)
            if outcome is None:
                return await self._wait_for(call)
            state.results[call.key] = outcome
            await self.result_event(call)
            await self.env.checkpoint(state)
        contents = [delimited(c.name, state.results[c.key].content) for c in state.calls]
        state.messages += self.strategy.result_messages(state.calls, contents)
        state.calls, state.results, state.started, state.approved = [], {}, [], []
        await self.env.checkpoint(state)
        return None

    async def _one_call(self, call: ToolCall) -> ToolOutcome | None:
        """The call's outcome, or None when it waits for approval."""
        if call.key not in self.state.approved and call.key not in self.state.started:
            await self.env.emit(events.TOOL_CALL, self._call_data(call))
        if call.refusal:
            return ToolOutcome(content=call.refusal, details={"error": "refused"})
        remote = self.remote.get(call.name)
        use = remote[0] if remote else self.uses.get(call.name)
        tool = tools().get(use.tool) if use else None
        if use is None or tool is None:
            names = ", ".join([*self.uses, *self.remote]) or "none"
            return _error(f"There is no tool named {call.name!r}. The tools are: {names}.")
        checked = _checked(tool, use, call, remote[1] if remote else None)
        if isinstance(checked, ToolOutcome):
            return checked
        config, params = checked
        if call.key in self.state.started:
            return _error(
                "This call was cut off (the worker making it stopped) and was not made again, "
                "as it may have had effects. Call the tool again if you still need it.",
                kind="interrupted",
            )
        if use.needs_approval and call.key not in self.state.approved:
            return None
        self.state.started.append(call.key)
        await self.env.checkpoint(self.state)
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name}
        try:
            with tracing.span(f"execute_tool {call.name}", **attributes):
                result = await self._timed(tool.arun(self._context(call.key), config, params))
        except _LimitReached:
            raise
        except Exception as exc:  # a failing tool: the model reads why and may try otherwise
            return _error(f"The tool {call.name} failed: {exc or type(exc).__name__}")
        return ToolOutcome(content=result.content, details=result.details)

    async def _wait_for(self, call: ToolCall) -> AgentOutcome:
        self.state.status, self.state.waiting_on = Status.WAITING, call.key
        self.state.waiting_since = self.env.clock()
        await self.env.emit(events.APPROVAL_NEEDED, self._call_data(call))
        await self.env.checkpoint(self.state)
        return still_waiting(self.state)

    def _call_data(self, call: ToolCall) -> dict[str, Any]:
        return call_data(call)

    async def result_event(self, call: ToolCall) -> None:
        outcome = self.state.results[call.key]
        data = self._call_data(call)
        del data["arguments"]
        content = outcome.content
        shown = content if len(content) <= SHOWN_CHARS else content[:SHOWN_CHARS] + "…"
        await self.env.emit(
            events.TOOL_RESULT, {**data, "content": shown, "details": outcome.details}
        )

    # --- limits and the end ------------------------------------------------------------------

    def _check_limits(self) -> None:
        limits, state = self.spec.limits, self.state
        if state.steps >= limits.max_steps:
            raise _LimitReached("max_steps", f"limit of {limits.max_steps} steps")
        if state.tokens >= limits.max_tokens:
            raise _LimitReached("max_tokens", f"limit of {limits.max_tokens:,} tokens")
        self._remaining_s()

    def _remaining_s(self) -> float:
        limit = self.spec.limits.max_seconds
        remaining = limit - (self.env.clock() - self.state.started_at)
        if remaining <= 0:
            raise _LimitReached("max_seconds", f"time limit of {limit:g} seconds")
        return remaining

    async def _timed(self, work: Coroutine[Any, Any, Any]) -> Any:
        """``work``, cut off when the run's time is up."""
        try:
            remaining = self._remaining_s()
        except _LimitReached:
            work.close()
            raise
        try:
            return await asyncio.wait_for(work, remaining)
        except TimeoutError:
            limit = self.spec.limits.max_seconds
            raise _LimitReached("max_seconds", f"time limit of {limit:g} seconds") from None

    async def _finish(self, status: Status, answer: str, *, reason: str = "") -> AgentOutcome:
        state = self.state
        state.status, state.answer, state.reason = status, answer, reason
        if status == Status.DONE:
            state.messages.append({"role": "assistant", "content": answer})
        unshown = _unshown(answer, self.shown if status == Status.DONE else "")
        if unshown:
            await self.env.emit(events.TOKEN, {"text": unshown})
        await self.env.emit(
            events.AGENT_FINISHED,
            {
                "outcome": str(status),
                "reason": reason,
                "steps": state.steps,
                "tokens": state.tokens,
            },
        )
        await self.env.checkpoint(state)
        return AgentOutcome(status, answer, reason, state)


def call_data(call: ToolCall) -> dict[str, Any]:
    """A call as its events show it (and as a person approving it reads it)."""
    return {
        "step": int(call.key.rsplit(":", 2)[1]),
        "key": call.key,
        "tool": call.name,
        "arguments": _shown_arguments(call.arguments),
    }


def still_waiting(state: AgentState) -> AgentOutcome:
    """The outcome of a run that waits for an approval not given yet, as ``agent_run`` gave it."""
    call = state.call(state.waiting_on or "")
    pending = call_data(call) if call is not None else None
    return AgentOutcome(Status.WAITING, "", "a tool call needs approval", state, pending)


def _error(content: str, *, kind: str = "error") -> ToolOutcome:
    return ToolOutcome(content=content, details={"error": kind})


def _checked(
    tool: Tool, use: ToolUse, call: ToolCall, remote: Any = None
) -> tuple[Any, ToolParams] | ToolOutcome:
    """The author's settings and the model's arguments, validated; else what the model is told.
    ``remote``: the remote function called (its arguments are the remote tool's own)."""
    try:
        config = tool.Config.model_validate(use.config)
    except ValidationError as exc:
        return _error(f"The tool {call.name} is not set up correctly ({_problems(exc)}).")
    # One reading of a model's arguments for every tool: bounded, then validated.
    if remote is not None:
        params = remote.arguments(call.arguments)
    else:
        params = params_from_model(call.name, tool.Params, call.arguments)
    if isinstance(params, ToolResult):
        return ToolOutcome(content=params.content, details=params.details)
    return config, params


def _problems(exc: ValidationError) -> str:
    shown = []
    for error in exc.errors()[:8]:
        where = ".".join(str(part) for part in error.get("loc", ())) or "arguments"
        shown.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(shown)


def _shown_arguments(raw: str) -> Any:
    """The arguments for a person to read: the JSON value, or the text when it is not JSON."""
    try:
        return json.loads(raw or "{}")
    except ValueError:
        return raw[:SHOWN_CHARS]


def _unshown(answer: str, shown: str) -> str:
    """What of the answer the user has not seen streamed yet."""
    if not shown.strip():
        return answer
    return answer[len(shown) :] if answer.startswith(shown) else ""
