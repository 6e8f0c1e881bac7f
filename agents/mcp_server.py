"""The studio as an MCP server: ``/mcp/`` lists the published flows and agents an API key may run
as MCP tools (an agent's input is its ``message``), and calling one runs the flow's published
version (an agent's backing flow) as the runs API does.

Streamable HTTP in its JSON-response, stateless form: each POST carries one JSON-RPC message and
is answered with one JSON object (a notification with 202), with no session and no event stream
(GET answers 405, which the transport allows). So no long-lived task or session store sits in the
web process, and every POST is authenticated on its own, with the key's request limits counted
as the runs API counts them. The messages are validated and built with the SDK's own types
(``mcp_types``); the few methods a tools-only server answers are dispatched here.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import mcp_types
from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as SchemaError

from agents.access import agent_by_api_name
from agents.selectors import agents_for_key
from flows.access import access_published_flow
from flows.api import start_run
from flows.models import Flow, Run, RunSource, RunStatus
from flows.runtime.waiting import run_wait
from flows.selectors import published_flows, run_answer_text, version_graph
from studio import access
from studio.json_api import BodyRefused, read_json
from workspaces.authentication import authenticate
from workspaces.models import ApiKey

M = TypeVar("M", bound=BaseModel)

SERVER_NAME = "studio"
SERVER_VERSION = "1"
INSTRUCTIONS = (
    "Each tool runs one published flow or agent of the workspace and answers with its output."
)

# MCP's rule for tool names. A flow's slug (letters, digits, ``-`` and ``_``, at most 100)
# always meets it; a flow whose slug somehow does not is left out rather than renamed, so that
# a tool's name always is the slug to run.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")

MESSAGE = TypeAdapter(mcp_types.JSONRPCMessage)

# The JSON schema of each input field type; ``json`` and ``any`` take any value.
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
}


class RpcError(Exception):
    """A JSON-RPC error answer: its code, message and HTTP status."""

    def __init__(self, code: int, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# --- tools ------------------------------------------------------------------------------------


def input_schema(flow: Flow) -> dict[str, Any]:
    """The JSON schema of the published version's input fields (what ``run_inputs_clean``
    will accept): one property per field, the required ones required, nothing else."""
    graph = version_graph(flow.published_version_id, flow.published_version.graph)
    fields = [f for node in graph.of_type("input") for f in node.config.fields]
    properties = {
        f.name: {**FIELD_SCHEMAS.get(f.type, {}), **({"description": f.label} if f.label else {})}
        for f in fields
    }
    required = [f.name for f in fields if f.required]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def tools_for_key(api_key: ApiKey) -> list[dict[str, Any]]:
    """The published flows and agents the key may run (as ``/v1/models`` lists them, under the
    same names), as MCP tools."""
    flows = published_flows(api_key.workspace_id)
    runnable = access.scope(api_key, api_key.workspace_id, flows, "run")
    named = [(flow.slug, flow) for flow in runnable]
    named += [(name, agent.flow) for name, agent in agents_for_key(api_key)]
    return [
        mcp_types.Tool(
            name=name,
            title=flow.name,
            description=flow.description or flow.name,
            input_schema=input_schema(flow),
        ).model_dump(by_alias=True, mode="json", exclude_none=True)
        for name, flow in sorted(named, key=lambda pair: pair[0])
        if TOOL_NAME.match(name)
    ]


def _start(api_key: ApiKey, name: str, arguments: dict[str, Any]) -> Run:
    """A run of the published flow or agent ``name``, if the key may run it (the runs API's
    check)."""
    try:
        flow = agent_by_api_name(api_key, name) or access_published_flow(api_key, name)
    except Http404:
        raise RpcError(mcp_types.INVALID_PARAMS, f"Unknown tool: {name}") from None
    return start_run(flow=flow, inputs=arguments, api_key=api_key, source=RunSource.MCP)


def _result(text: str, *, failed: bool) -> dict[str, Any]:
    result = mcp_types.CallToolResult(content=[mcp_types.TextContent(text=text)], is_error=failed)
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


async def tool_call(api_key: ApiKey, params: dict[str, Any] | None) -> dict[str, Any]:
    """Run the tool's flow and wait for its end (the run's own deadline bounds the wait). A
    run that cannot start for its inputs, or that fails, is a tool result marked as an error
    with the reason, so that the model calling it can read it; an unknown tool is an error."""
    call = _validated(mcp_types.CallToolRequestParams, params)
    try:
        run = await sync_to_async(_start)(api_key, call.name, call.arguments or {})
    except ValidationError as exc:
        return _result("; ".join(exc.messages), failed=True)
    except PermissionDenied as exc:
        return _result(str(exc) or "This API key may not run this flow.", failed=True)
    run = await run_wait(run)
    if run.status != RunStatus.SUCCEEDED:
        return _result(f"The flow run failed: {run.error or run.status}", failed=True)
    return _result(run_answer_text(run), failed=False)


# --- protocol ---------------------------------------------------------------------------------


def _validated(model: type[M], params: dict[str, Any] | None) -> M:
    try:
        return model.model_validate(params or {})
    except SchemaError as exc:
        raise RpcError(
            mcp_types.INVALID_PARAMS, f"Invalid params: {exc.errors()[0]['msg']}"
        ) from None


def initialize(params: dict[str, Any] | None) -> dict[str, Any]:
    """The handshake: the client's protocol version if this SDK speaks it, else the newest."""
    asked = _validated(mcp_types.InitializeRequestParams, params).protocol_version
    version = asked if asked in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
    result = mcp_types.InitializeResult(
        protocol_version=version,
        capabilities=mcp_types.ServerCapabilities(
            tools=mcp_types.ToolsCapability(list_changed=False)
        ),
        server_info=mcp_types.Implementation(name=SERVER_NAME, version=SERVER_VERSION),
        instructions=INSTRUCTIONS,
    )
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


async def dispatch(api_key: ApiKey, method: str, params: dict[str, Any] | None) -> dict:
    if method == "initialize":
        return initialize(params)
    if method == "ping":
        return {}
    if method == "tools/list":
        # Every tool on one page: a workspace holds tens of flows, not thousands.
        return {"tools": await sync_to_async(tools_for_key)(api_key)}
    if method == "tools/call":
        return await tool_call(api_key, params)
    raise RpcError(mcp_types.METHOD_NOT_FOUND, f"Method not found: {method}")


def _error(request_id: Any, exc: RpcError) -> JsonResponse:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": exc.code, "message": exc.message}}
    return JsonResponse(body, status=exc.status)


def _message(request: HttpRequest) -> mcp_types.JSONRPCMessage:
    """The one JSON-RPC message of the POST, validated; RpcError for anything else (a batch
    included: the protocol since 2025-06-18 sends one message per POST)."""
    version = request.headers.get("MCP-Protocol-Version")
    if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
        message = f"Unsupported MCP-Protocol-Version {version!r}: this server speaks the handshake."
        raise RpcError(mcp_types.INVALID_REQUEST, message, status=400)
    try:
        data = read_json(request)
    except BodyRefused as exc:
        code = mcp_types.PARSE_ERROR if exc.status == 400 else mcp_types.INVALID_REQUEST
        raise RpcError(code, exc.message, status=exc.status) from None
    try:
        return MESSAGE.validate_python(data)
    except SchemaError:
        raise RpcError(mcp_types.INVALID_REQUEST, "Not one JSON-RPC message.", status=400) from None


@csrf_exempt
async def endpoint(request: HttpRequest) -> HttpResponse:
    """``/mcp/``: one JSON-RPC message per POST from a bearer of an API key (401 without a
    usable one, 429 past its limits, as the runs API answers)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    try:
        message = _message(request)
    except RpcError as exc:
        return _error(None, exc)
    if not isinstance(message, mcp_types.JSONRPCRequest):
        return HttpResponse(status=202)  # a notification or a response: nothing to answer
    try:
        result = await dispatch(api_key, message.method, message.params)
    except RpcError as exc:
        return _error(message.id, exc)
    return JsonResponse({"jsonrpc": "2.0", "id": message.id, "result": result})
