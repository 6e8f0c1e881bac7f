"""The flow tool: a published flow of the workspace, called by the agent as a child run.

The model sees one function named as the author named the tool, whose parameters are the
published version's input fields (read when the run starts, like an MCP server's tools:
``remote_tools``); its arguments are checked against those fields before anything runs.

A call starts the published version as an ordinary run (``flows.services.run_create``) with
source ``subflow`` and, when the agent runs inside a flow run, that run as its parent: it has its
own trace and events, counts against the run tree's limits, and fails with its parent. Calls nest
at most ``flows.nodes.subflow.MAX_DEPTH`` runs deep, as sub-flows do. The child is found again by
the call's idempotency key, so a retried call waits for the run it started instead of starting
a second one.

Waiting: the tool follows the child's event log (``flows.runtime.waiting.run_wait``, Redis
``XREAD BLOCK`` on the worker's event loop); the worker thread running the agent node stays with
it meanwhile, as it does during a model call. The child runs on other worker threads.

The agent tool (``agents/tools/agent.py``) uses the same machinery on an agent's backing
flow.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from pydantic import ConfigDict, Field

from agents.tools import register
from agents.tools.base import (
    Tool,
    ToolConfig,
    ToolContext,
    ToolParams,
    ToolResult,
    argument_error,
    params_from_model,
    untrusted,
)
from flows.models import Flow, Run, RunSource, RunStatus
from flows.nodes.fields import FieldSpec
from flows.nodes.subflow import MAX_DEPTH
from flows.runtime.waiting import run_wait
from flows.schema import GraphError
from flows.selectors import published_flow, run_answer_text, version_graph
from flows.services import run_fail
from flows.services.runs import fields_clean, run_create
from studio import access

MAX_RESULT_CHARS = 20_000
# JSON schema types of the input fields' port types ("any": no constraint).
_SCHEMA_TYPES = {"text": "string", "number": "number", "boolean": "boolean", "json": None}


class FlowConfig(ToolConfig):
    flow: str = Field(
        min_length=1, max_length=100, description="A published flow of the workspace (its slug)."
    )


class FlowParams(ToolParams):
    inputs: dict[str, Any] = Field(default_factory=dict, description="the flow's input fields")


class _AnyObject(ToolParams):
    # Any object: checked against the flow's input fields next.
    model_config = ConfigDict(extra="allow")


def unavailable(what: str, slug: str) -> str:
    # One message for a missing flow (or agent), an unpublished one and one the user may not
    # run: no probing for slugs.
    return f"{what} {slug!r} is not a published {what} of this workspace that you may use"


def input_fields(flow: Flow) -> list[FieldSpec]:
    """The published version's input fields; GraphError when it no longer reads as a flow."""
    graph = version_graph(flow.published_version_id, flow.published_version.graph)
    return [f for node in graph.of_type("input") for f in node.config.fields]


def input_schema(fields: list[FieldSpec]) -> dict[str, Any]:
    """The JSON schema of a flow's input fields, as a model is given parameters."""
    properties: dict[str, Any] = {}
    for field in fields:
        prop: dict[str, Any] = {}
        kind = _SCHEMA_TYPES.get(field.type)
        if kind:
            prop["type"] = kind
        if field.label:
            prop["description"] = field.label
        properties[field.name] = prop
    required = [f.name for f in fields if f.required]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class FlowFunction:
    """The flow as the model sees it (its inputs as parameters), and how its arguments are
    checked: the loop uses it as it uses an MCP server's functions."""

    definition: dict[str, Any]
    fields: list[FieldSpec]

    def arguments(self, raw: str | dict[str, Any] | None) -> FlowParams | ToolResult:
        name = self.definition["function"]["name"]
        parsed = params_from_model(name, _AnyObject, raw)
        if isinstance(parsed, ToolResult):
            return parsed
        return flow_params(name, self.fields, dict(parsed.model_extra or {}))


def flow_params(name: str, fields: list[FieldSpec], values: dict[str, Any]) -> Any:
    """``values`` checked as the flow's inputs (FlowParams), or what the model is told."""
    try:
        inputs = fields_clean(fields, values, "input")
    except ValidationError as exc:
        return argument_error(name, "; ".join(exc.messages))
    return FlowParams(inputs=inputs)


# --- child runs (shared with the agent tool) ---------------------------------------------------


def parent_of(ctx: ToolContext) -> tuple[Run | None, str]:
    """The flow run the agent runs in, and its node (``ctx.run_id`` is ``<run>:<node>`` for an
    agent node); None when the agent runs outside a flow run."""
    run_id, _, node = (ctx.run_id or "").partition(":")
    try:
        uuid.UUID(run_id)
    except ValueError:
        return None, ""
    parent = Run.objects.filter(id=run_id, workspace_id=ctx.workspace_id).first()
    return parent, node if parent else ""


def may_run(user_id: int | None, obj: Any, action: str) -> bool:
    if user_id is None:
        return True  # an API key's run: the agent's author was checked when it was published
    user = get_user_model().objects.filter(id=user_id, is_active=True).first()
    return user is not None and access.has_perm(user, obj, action)


class CallRefused(Exception):
    """The call was not made; the message is for the model (and the trace)."""


def child_start(ctx: ToolContext, flow: Flow, inputs: dict[str, Any]) -> Run:
    """The child run of this call: the one an earlier attempt of the call started (same
    idempotency key), else a new run of the flow's published version. CallRefused when it
    would nest too deep or the run tree may start no more runs."""
    parent, node = parent_of(ctx)
    if parent is not None and parent.depth + 1 > MAX_DEPTH:
        raise CallRefused(f"flows and agents called as tools nest at most {MAX_DEPTH} runs deep")
    key = ctx.idempotency_key or ""
    with transaction.atomic():
        if parent is not None:
            # Two deliveries of one call take turns here: the second finds the first's child.
            Run.objects.select_for_update(of=("self",)).filter(id=parent.id).first()
        if key:
            earlier = Run.objects.filter(
                workspace_id=ctx.workspace_id,
                parent=parent,
                source=RunSource.SUBFLOW,
                idempotency_key=key,
            ).first()
            if earlier is not None:
                return earlier
        user = get_user_model().objects.filter(id=ctx.user_id).first() if ctx.user_id else None
        try:
            return run_create(
                flow=flow,
                version=flow.published_version,
                inputs=inputs,
                source=RunSource.SUBFLOW,
                user=parent.created_by if parent else user,
                api_key=parent.api_key if parent else None,
                parent=parent,
                parent_node=node,
                idempotency_key=key,
            )
        except ValidationError as exc:
            raise CallRefused("; ".join(exc.messages)) from None


async def child_wait(run: Run) -> Run:
    """``run`` once it has ended. Cancelled (the agent's time ran out): the child is failed,
    not left running for no one."""
    try:
        return await run_wait(run)
    except asyncio.CancelledError:
        reason = "the agent that called it stopped waiting (its time ran out)"
        await sync_to_async(run_fail)(run_id=run.id, reason=reason)
        raise


def child_outcome(run: Run, *, what: str, slug: str, answer: str) -> ToolResult:
    """What the model reads of the child's end: its answer as untrusted data, or why it
    failed."""
    details = {what: slug, "run": str(run.id), "status": run.status}
    if run.status != RunStatus.SUCCEEDED:
        details["error"] = "failed"
        return ToolResult(content=f"The {what} {slug} failed: {run.error}", details=details)
    if len(answer) > MAX_RESULT_CHARS:
        answer = answer[:MAX_RESULT_CHARS] + f"\n[cut: longer than {MAX_RESULT_CHARS:,}]"
    return ToolResult(content=untrusted(answer, source=f"{what} {slug}"), details=details)


def refused(message: str) -> ToolResult:
    return ToolResult(content=f"The call was not made: {message}.", details={"error": "refused"})


def flow_answer(run: Run) -> str:
    """The flow's outputs as the model reads them: its ``text`` output alone when that is all
    it gives, else all of them as JSON."""
    if set(run.outputs) <= {"text"}:
        return run_answer_text(run)
    return json.dumps(run.outputs, ensure_ascii=False, indent=1)


@register
class FlowTool(Tool):
    name = "flow"
    description = "Run a published flow of the workspace with its inputs and read its outputs."
    Params = FlowParams
    Config = FlowConfig

    def check(self, config: FlowConfig, workspace: Any, user: Any = None) -> list[str]:
        flow = published_flow(workspace.id, config.flow)
        if flow is None or (user is not None and not access.has_perm(user, flow, "run")):
            return [unavailable("flow", config.flow)]
        return []

    async def remote_tools(
        self, ctx: ToolContext, config: FlowConfig, *, prefix: str = "flow"
    ) -> list[FlowFunction]:
        """The flow as one function named ``prefix``, its inputs as parameters (the generic
        ``definition`` when it is gone: a call then says so)."""
        flow = await sync_to_async(published_flow)(ctx.workspace_id, config.flow)
        try:
            fields = await sync_to_async(input_fields)(flow) if flow is not None else None
        except GraphError:
            fields = None
        if flow is None or fields is None:
            generic = self.definition(config)
            generic["function"]["name"] = prefix
            return [FlowFunction(generic, [])]
        description = (flow.description or f"The flow {flow.name}.")[:1_000]
        definition = {
            "type": "function",
            "function": {
                "name": prefix,
                "description": f"{description} (A flow of the studio: {flow.slug}.)",
                "parameters": input_schema(fields),
            },
        }
        return [FlowFunction(definition, fields)]

    async def arun(self, ctx: ToolContext, config: FlowConfig, params: FlowParams) -> ToolResult:
        try:
            run = await sync_to_async(self._start)(ctx, config, params)
        except CallRefused as exc:
            return refused(str(exc))
        run = await child_wait(run)
        return child_outcome(run, what="flow", slug=config.flow, answer=flow_answer(run))

    def _start(self, ctx: ToolContext, config: FlowConfig, params: FlowParams) -> Run:
        flow = published_flow(ctx.workspace_id, config.flow)
        if flow is None or not may_run(ctx.user_id, flow, "run"):
            raise CallRefused(unavailable("flow", config.flow))
        try:
            inputs = fields_clean(input_fields(flow), params.inputs, "input")
        except ValidationError as exc:
            raise CallRefused("; ".join(exc.messages)) from None
        except GraphError as exc:
            raise CallRefused(f"flow {config.flow!r} no longer reads as a flow ({exc})") from None
        return child_start(ctx, flow, inputs)
