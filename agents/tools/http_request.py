"""The HTTP request tool: the model calls a web API, but only a host the agent's author listed.

The author fixes the hosts (exact names, compared as ``catalog/hosts.py`` compares a
credential's: IDNA, lowercase, no trailing dot), the methods, the timeout and how much of the
answer is read; the model gives the URL, the method, the query and the body. A URL is read by
httpx, the client that sends it, so the host checked is the host called (no parser
differential), and every redirect hop is checked again. The request itself goes through
``studio.egress``, which still refuses the studio's own network even for a listed host.

The answer goes back to the model as untrusted data inside delimiters, cut at the author's size.
Stored credentials (as the flows' HTTP node sends them) are not offered to agents yet.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any, Literal

import httpx
from django.core.exceptions import ValidationError
from pydantic import Field, field_validator, model_validator

from agents.tools import register
from agents.tools.base import Tool, ToolConfig, ToolContext, ToolParams, ToolResult, untrusted
from catalog.hosts import MAX_HOSTS, host_allowed, hosts_clean
from studio import egress

MAX_REDIRECTS = 5
MAX_BODY_CHARS = 20_000
Method = Literal["GET", "POST"]


class HttpRequestConfig(ToolConfig):
    hosts: list[str] = Field(
        min_length=1,
        max_length=MAX_HOSTS,
        description="The hosts the agent may call, e.g. api.example.com (exact names)",
    )
    methods: list[Method] = Field(default_factory=lambda: ["GET"], min_length=1, max_length=2)
    max_response_kb: int = Field(default=64, ge=1, le=1024)
    timeout_s: float = Field(default=10.0, ge=1.0, le=60.0)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        if any(h.strip().startswith("*") for h in hosts):
            raise ValueError("list each host by its exact name (no *. wildcards)")
        try:
            return hosts_clean(hosts)
        except ValidationError as exc:
            raise ValueError(" ".join(exc.messages)) from None


class HttpRequestParams(ToolParams):
    url: str = Field(
        min_length=1, max_length=2_000, description="The full URL, http:// or https://"
    )
    method: Method = "GET"
    query: dict[str, str] = Field(
        default_factory=dict, max_length=30, description="Query parameters, added to the URL"
    )
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None, description="For POST: a text, or a JSON object or list sent as JSON"
    )

    @field_validator("query")
    @classmethod
    def _short_query(cls, query: dict[str, str]) -> dict[str, str]:
        if any(len(k) > 200 or len(v) > 2_000 for k, v in query.items()):
            raise ValueError("a query name is at most 200 characters, a value 2,000")
        return query

    @model_validator(mode="after")
    def _bounded_body(self) -> HttpRequestParams:
        if self.body is not None and len(_encoded(self.body)) > MAX_BODY_CHARS:
            raise ValueError(f"body: at most {MAX_BODY_CHARS:,} characters")
        return self


def _encoded(body: str | dict[str, Any] | list[Any]) -> str:
    return body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)


def _refusal(config: HttpRequestConfig, params: HttpRequestParams) -> str | None:
    """Why the request may not be sent, before any connection; None when it may."""
    if params.method not in config.methods:
        return f"the method {params.method} is not allowed (allowed: {', '.join(config.methods)})"
    if params.body is not None and params.method == "GET":
        return "a GET request has no body; use POST or leave the body out"
    try:
        url = httpx.URL(params.url)
    except httpx.InvalidURL as exc:
        return f"the URL cannot be read ({exc})"
    if url.scheme not in ("http", "https"):
        return "the URL must start with http:// or https://"
    if not url.host:
        return "the URL has no host"
    if url.userinfo:
        return "the URL may not hold a user name or password"
    if not host_allowed(url.host, config.hosts):
        return f"the host {url.host!r} is not one this agent may call ({', '.join(config.hosts)})"
    return None


def _request(params: HttpRequestParams, idempotency_key: str | None) -> dict[str, Any]:
    headers: dict[str, str] = {}
    parts: dict[str, Any] = {"method": params.method, "url": params.url, "headers": headers}
    if params.query:
        parts["params"] = params.query
    if params.body is not None:
        content_type = "text/plain" if isinstance(params.body, str) else "application/json"
        parts["content"] = _encoded(params.body).encode()
        headers["Content-Type"] = f"{content_type}; charset=utf-8"
    if params.method == "POST" and idempotency_key:
        # The same for a call repeated after a worker died mid-step: an API that honours the
        # header does the side effect once.
        headers["Idempotency-Key"] = idempotency_key
    return parts


def _text(raw: bytes, encoding: str | None) -> str:
    try:
        return raw.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # a charset the server named that Python does not know
        return raw.decode("utf-8", errors="replace")


async def _read_head(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the body, and whether there was more (not read)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False


def _failed(reason: str) -> ToolResult:
    return ToolResult(content=f"The request failed: {reason}.", details={"error": reason})


@register
class HttpRequest(Tool):
    name = "http_request"
    description = (
        "Call a web API over HTTP (GET or POST) on one of the hosts this agent may call. "
        "Returns the status and the response body."
    )
    Params = HttpRequestParams
    Config = HttpRequestConfig

    def definition(self, config: HttpRequestConfig) -> dict[str, Any]:
        definition = copy.deepcopy(super().definition(config))
        function = definition["function"]
        function["description"] += f" Allowed hosts: {', '.join(config.hosts)}."
        function["parameters"]["properties"]["method"]["enum"] = list(config.methods)
        return definition

    async def arun(
        self, ctx: ToolContext, config: HttpRequestConfig, params: HttpRequestParams
    ) -> ToolResult:
        refusal = _refusal(config, params)
        if refusal:
            return ToolResult(content=f"Not sent: {refusal}.", details={"refused": refusal})

        async def listed_hosts_only(request: httpx.Request) -> None:
            # Each redirect hop too: a listed API cannot send the agent on to another host.
            if not host_allowed(request.url.host, config.hosts):
                raise PermissionError(f"it redirected to {request.url.host!r}, not a listed host")

        started = time.monotonic()
        try:
            async with (
                asyncio.timeout(config.timeout_s),
                egress.async_client(
                    timeout=httpx.Timeout(config.timeout_s),
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                    event_hooks={"request": [listed_hosts_only]},
                ) as client,
                client.stream(**_request(params, ctx.idempotency_key)) as response,
            ):
                raw, truncated = await _read_head(response, config.max_response_kb * 1024)
        except (TimeoutError, httpx.TimeoutException):
            return _failed(f"no answer within {config.timeout_s:g} s")
        except (egress.EgressRefused, PermissionError) as exc:
            return _failed(f"refused, {exc}")
        except httpx.TooManyRedirects:
            return _failed(f"more than {MAX_REDIRECTS} redirects")
        except httpx.HTTPError as exc:
            return _failed(str(exc) or type(exc).__name__)
        text = _text(raw, response.charset_encoding)
        if truncated:
            text += f"\n[… cut at {config.max_response_kb} kB]"
        # The URL asked for: the response's own names the address egress connected to.
        shown = f"{params.method} {params.url}"
        return ToolResult(
            content=f"HTTP {response.status_code}\n{untrusted(text, source=shown)}",
            details={
                "request": shown,
                "status": response.status_code,
                "bytes": len(raw),
                "truncated": truncated,
                "ms": round((time.monotonic() - started) * 1000, 2),
            },
        )
