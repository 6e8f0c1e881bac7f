"""MCP: the agent uses the tools of a remote MCP server (streamable HTTP only; the studio never
starts a local process for one), each remote tool offered to the model as a function of its own.

How the loop uses it (``tool = tools()["mcp"]``, ``use`` the agent's ``ToolUse``):

- ``await tool.remote_tools(ctx, config, prefix=use.exposed_name)`` lists the server's allowed
  tools as ``RemoteFunction``s: ``.definition`` is an OpenAI function definition named
  ``<prefix>__<remote name>`` (so two servers, or a server and a studio tool, cannot clash),
  with the remote description and input JSON schema, both size-bounded, at most
  ``MAX_REMOTE_TOOLS`` (``ctx`` names the workspace whose credential is sent). Raises ``McpError``
  (a readable sentence) when the server cannot be listed: the loop shows it and goes on without
  that server's tools.
- When the model calls one of those functions, ``function.arguments(raw)`` gives the
  ``McpParams`` (``{"tool": remote name, "arguments": {...}}``) or a ToolResult explaining
  malformed arguments (as ``Tool.arguments`` does), and ``await tool.arun(ctx,
  config, params)`` calls it. ``arun`` never raises for the server's faults: an unreachable
  server, a refused address, a timeout, a protocol error or the tool's own error come back as
  the ``ToolResult``'s content. The remote text is returned inside the tools' untrusted-data
  delimiters (``base.untrusted``), cut to ``MAX_RESULT_CHARS``. ``ctx.idempotency_key`` goes
  to the server as the ``Idempotency-Key`` header.

Every request goes through ``studio/egress.py`` for user-driven fetches
(``STUDIO_EGRESS_ALLOW_FETCH``): ``agents/mcp_client.py``.

``definition(config)`` (the generic one function, ``{tool, arguments}``) remains for a strategy
that lists tools without asking the server first.

Each listing and each call opens its own short MCP session: no connection is held between
steps, so a run survives a worker restart and a server restart alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator, model_validator

from agents.mcp_client import Limits, McpError, call_tool, list_tools
from agents.tools import register
from agents.tools.base import (
    Tool,
    ToolConfig,
    ToolContext,
    ToolParams,
    ToolResult,
    params_from_model,
    untrusted,
)
from catalog.hosts import host_allowed
from catalog.selectors.credentials import (
    acredential_for_request,
    credential_for_requests,
    credential_host_refused,
    credential_unavailable,
)

MAX_RESULT_CHARS = 20_000
MAX_DESCRIPTION_CHARS = 1_000
MAX_SCHEMA_CHARS = 8_000
# The most remote tools one server adds to a model's prompt.
MAX_REMOTE_TOOLS = 50
# OpenAI's rule for function names.
MAX_FUNCTION_NAME = 64
_NOT_IN_NAME = re.compile(r"[^a-zA-Z0-9_-]")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class McpParams(ToolParams):
    tool: str = Field(min_length=1, max_length=128, description="the remote tool's name")
    arguments: dict[str, Any] = Field(default_factory=dict, description="its arguments")


class _RemoteArguments(ToolParams):
    # Any object: the remote server checks its own schema.
    model_config = ConfigDict(extra="allow")


class McpConfig(ToolConfig):
    url: str = Field(max_length=2_000, description="the server's streamable HTTP endpoint")
    # The remote tools the agent may use (empty: all of them).
    tools: list[str] = Field(default_factory=list, max_length=100)
    # A stored credential sent to the server (an admin sets the hosts it may go to).
    credential: str = Field(default="", max_length=100)
    credential_as: Literal["bearer", "header"] = "bearer"
    credential_header: str = Field(default="", max_length=64)
    call_seconds: float = Field(default=30.0, ge=1.0, le=300.0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("an MCP server's URL starts with https:// (or http://)")
        return url

    @model_validator(mode="after")
    def _credential_header_named(self) -> McpConfig:
        if self.credential_as == "header" and not _HEADER_NAME.match(self.credential_header):
            raise ValueError("credential_header: name the header that carries the credential")
        return self

    def host(self) -> str:
        return httpx.URL(self.url).host

    def allows(self, remote_name: str) -> bool:
        return not self.tools or remote_name in self.tools


@dataclass(frozen=True)
class RemoteFunction:
    """One remote tool as the model sees it, and the way back to the remote name."""

    remote_name: str
    definition: dict[str, Any]

    def params(self, arguments: dict[str, Any]) -> McpParams:
        return McpParams(tool=self.remote_name, arguments=arguments)

    def arguments(self, raw: str | dict[str, Any] | None) -> McpParams | ToolResult:
        """The model's raw arguments (JSON text or an object) as ``McpParams``, or a
        ToolResult telling the model what was wrong (not JSON, not an object, too long)."""
        name = self.definition["function"]["name"]
        parsed = params_from_model(name, _RemoteArguments, raw)
        if isinstance(parsed, ToolResult):
            return parsed
        return self.params(dict(parsed.model_extra or {}))


def function_name(prefix: str, remote_name: str) -> str:
    return _NOT_IN_NAME.sub("_", f"{prefix}__{remote_name}")[:MAX_FUNCTION_NAME]


def _parameters(schema: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The remote input schema, or an open object when it is too large to give a model."""
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS or schema.get("type") != "object":
        return {"type": "object"}, " (Its parameter schema is too large to show.)"
    return schema, ""


def _function(prefix: str, host: str, remote: Any) -> RemoteFunction:
    parameters, note = _parameters(remote.input_schema)
    # The server's words, not the author's: said so, for the model and for whoever reads the trace.
    description = (
        (remote.description or remote.name)[:MAX_DESCRIPTION_CHARS]
        + note
        + f" (A tool of the MCP server at {host}.)"
    )
    definition = {
        "type": "function",
        "function": {
            "name": function_name(prefix, remote.name),
            "description": description,
            "parameters": parameters,
        },
    }
    return RemoteFunction(remote_name=remote.name, definition=definition)


def _untrusted(config: McpConfig, tool: str, text: str) -> str:
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[cut: the answer is longer than {MAX_RESULT_CHARS:,}]"
    return untrusted(text, source=f"MCP tool {tool} at {config.host()}")


def _block_text(block: Any) -> str:
    kind = getattr(block, "type", "")
    if kind == "text":
        return block.text
    if kind == "resource" and hasattr(block.resource, "text"):
        return block.resource.text
    if kind == "resource_link":
        return f"[resource: {block.uri}]"
    return f"[{kind or 'unknown'} content omitted]"


@register
class Mcp(Tool):
    name = "mcp"
    description = "Use a tool of a remote MCP server: name the tool and give its arguments."
    Params = McpParams
    Config = McpConfig

    def check(self, config: McpConfig, workspace: Any, user: Any = None) -> list[str]:
        if not config.credential:
            return []
        credential = credential_for_requests(workspace.id, config.credential)
        if credential is None:
            return [credential_unavailable(config.credential)]
        if not host_allowed(config.host(), credential.allowed_hosts):
            return [
                credential_host_refused(config.credential, config.host(), credential.allowed_hosts)
            ]
        return []

    async def _options(
        self, ctx: ToolContext, config: McpConfig, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The headers and hooks for the server; PermissionError when the credential may not
        be sent there. Each request (redirects too) is checked against its allowed hosts."""
        limits = Limits(call_seconds=config.call_seconds, total_seconds=config.call_seconds * 2)
        if not config.credential:
            return {"limits": limits, "headers": headers or {}}
        secret, allowed = await acredential_for_request(
            ctx.workspace_id, config.credential, config.host()
        )

        async def only_allowed_hosts(request: httpx.Request) -> None:
            if not host_allowed(request.url.host, allowed):
                raise PermissionError(
                    credential_host_refused(config.credential, request.url.host, allowed)
                )

        header = "Authorization" if config.credential_as == "bearer" else config.credential_header
        value = f"Bearer {secret}" if config.credential_as == "bearer" else secret
        return {
            "limits": limits,
            "headers": {**(headers or {}), header: value},
            "event_hooks": {"request": [only_allowed_hosts]},
        }

    async def remote_tools(
        self, ctx: ToolContext, config: McpConfig, *, prefix: str = "mcp"
    ) -> list[RemoteFunction]:
        try:
            options = await self._options(ctx, config)
        except PermissionError as exc:
            raise McpError(str(exc)) from None
        functions: dict[str, RemoteFunction] = {}
        for remote in await list_tools(config.url, **options):
            name = function_name(prefix, remote.name)
            # Two remote names that read alike once cut to a function name: the first is kept.
            if config.allows(remote.name) and len(remote.name) <= 128 and name not in functions:
                functions[name] = _function(prefix, config.host(), remote)
        return list(functions.values())[:MAX_REMOTE_TOOLS]

    async def arun(self, ctx: ToolContext, config: McpConfig, params: McpParams) -> ToolResult:
        details = {"server": config.host(), "tool": params.tool}
        if not config.allows(params.tool):
            return ToolResult(
                content=f"The tool {params.tool!r} is not one this agent may use.", details=details
            )
        try:
            # A server that honours it does not repeat a call retried after a worker died.
            key = {"Idempotency-Key": ctx.idempotency_key} if ctx.idempotency_key else {}
            options = await self._options(ctx, config, key)
            result = await call_tool(config.url, params.tool, params.arguments, **options)
        except (McpError, PermissionError) as exc:
            return ToolResult(content=f"The MCP tool could not run: {exc}", details=details)
        text = "\n".join(_block_text(block) for block in result.content)
        if not text and result.structured_content is not None:
            text = json.dumps(result.structured_content)[: MAX_RESULT_CHARS + 1]
        if result.is_error:
            return ToolResult(
                content=f"The MCP tool {params.tool!r} failed:\n"
                + _untrusted(config, params.tool, text),
                details={**details, "error": True},
            )
        return ToolResult(content=_untrusted(config, params.tool, text), details=details)
