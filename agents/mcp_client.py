"""The studio's client for remote MCP servers: the official SDK's streamable HTTP transport, with
every request (each redirect hop and the server's event stream included) sent by
``studio/egress.py``, so that a server URL an author types cannot reach the studio's own network.

The SDK speaks ``httpx2``; egress is built on ``httpx``. ``_EgressTransport`` is the bridge: an
``httpx2`` transport that hands each request to an egress client and streams the answer back,
bounded in size. No local process is ever started (no stdio transport).

Every failure comes out as ``McpError`` with a sentence a person can act on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import httpx2

from studio import egress

if TYPE_CHECKING:
    import mcp_types
    from mcp import ClientSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    connect_seconds: float = 10.0
    # One request's wait for data, and one tool call's whole answer.
    call_seconds: float = 30.0
    # Everything: connecting, the handshake, the listing or the call.
    total_seconds: float = 60.0
    # One HTTP response (a JSON answer or a whole event stream).
    response_bytes: int = 4_000_000


class McpError(Exception):
    """A remote MCP server could not be used; the message says why, for the author and model."""


class _LimitedStream(httpx2.AsyncByteStream):
    def __init__(self, response: httpx.Response, limit: int, transport: _EgressTransport) -> None:
        self._response = response
        self._limit = limit
        self._transport = transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        # Raw bytes: httpx2 decodes the content encoding itself from the headers passed on.
        async for chunk in self._response.aiter_raw():
            received += len(chunk)
            if received > self._limit:
                problem = f"sent an answer larger than {self._limit:,} bytes"
                self._transport.problem = problem
                raise httpx2.ReadError(problem)
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class _EgressTransport(httpx2.AsyncBaseTransport):
    """Sends the SDK's requests through an egress client: each one checked for the fetch
    purpose (private addresses refused unless an operator allows them), none redirected
    behind the SDK's back (it follows same-origin redirects itself, each one a new request)."""

    def __init__(self, client: httpx.AsyncClient, limits: Limits) -> None:
        self._client = client
        self._limits = limits
        # The SDK turns an HTTP error into a bare "error response", and an answer cut short
        # into "stream ended": what really happened is kept here for the message (a 401 tells
        # the author to look at the credential).
        self.problem: str | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        outgoing = self._client.build_request(
            request.method,
            str(request.url),
            headers=[(k, v) for k, v in request.headers.raw if k.lower() != b"host"],
            content=body,
        )
        try:
            response = await self._client.send(outgoing, stream=True, follow_redirects=False)
        except egress.EgressRefused as exc:
            raise httpx2.ConnectError(str(exc), request=request) from None
        except httpx.TimeoutException as exc:
            raise httpx2.TimeoutException(f"timed out: {exc}", request=request) from None
        except httpx.RequestError as exc:
            raise httpx2.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        except PermissionError as exc:  # a credential's allowed hosts (the tool's request hook)
            raise httpx2.ConnectError(str(exc), request=request) from None
        # Only messages (POST): a server may refuse the optional event stream (GET) with 405.
        if response.status_code >= 400 and request.method == "POST":
            hint = " (check the credential)" if response.status_code in (401, 403) else ""
            self.problem = f"answered HTTP {response.status_code}{hint}"
        return httpx2.Response(
            response.status_code,
            headers=response.headers.raw,
            stream=_LimitedStream(response, self._limits.response_bytes, self),
        )

    async def aclose(self) -> None:
        await self._client.aclose()


def _http_client(
    headers: dict[str, str], transport: _EgressTransport, limits: Limits
) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=transport,
        headers=headers,
        timeout=httpx2.Timeout(limits.call_seconds, connect=limits.connect_seconds),
    )


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _reason(error: BaseException, url: str, problem: str | None) -> str:
    """The sentence for a failure: the SDK wraps transport errors in task groups and its own
    errors, so the most telling leaf is chosen."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import REQUEST_TIMEOUT

    leaves = _leaves(error)
    if problem is not None:
        return f"the MCP server at {url} {problem}"
    for leaf in leaves:
        timed_out = isinstance(leaf, MCPError) and leaf.code == REQUEST_TIMEOUT
        if timed_out or isinstance(leaf, httpx2.TimeoutException | TimeoutError):
            return f"the MCP server at {url} did not answer in time"
        if isinstance(leaf, httpx2.TransportError):
            return f"cannot reach the MCP server at {url}: {leaf}"
        if isinstance(leaf, MCPError):
            return f"the MCP server at {url} refused the request: {leaf}"
    first = leaves[0]
    return f"the MCP server at {url} failed: {type(first).__name__}: {first}"[:500]


@asynccontextmanager
async def connect(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    limits: Limits | None = None,
    event_hooks: dict[str, list] | None = None,
) -> AsyncIterator[ClientSession]:
    """An initialised MCP session with the server at ``url``, closed (the remote session
    ended) on leaving. Raises McpError for anything that goes wrong inside, the total time
    limit included."""
    # The SDK (half a second to import) is loaded where a worker talks to a server, not by
    # every process that lists the agent tools.
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    limits = limits or Limits()
    timeout = httpx.Timeout(limits.call_seconds, connect=limits.connect_seconds)
    inner = egress.async_client(timeout=timeout, event_hooks=event_hooks or {})
    transport = _EgressTransport(inner, limits)
    try:
        with anyio.fail_after(limits.total_seconds):
            async with (
                _http_client(headers or {}, transport, limits) as client,
                streamable_http_client(
                    url, http_client=client, max_sse_event_size=limits.response_bytes
                ) as (read, write),
                ClientSession(read, write, read_timeout_seconds=limits.call_seconds) as session,
            ):
                await session.initialize()
                yield session
    except McpError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes one readable sentence
        reason = _reason(exc, url, transport.problem)
        log.info("%s", reason, exc_info=log.isEnabledFor(logging.DEBUG))
        raise McpError(reason) from None


async def list_tools(url: str, **options: Any) -> list[mcp_types.Tool]:
    """Every tool the server offers (following its pages, at most 20 of them)."""
    import mcp_types

    async with connect(url, **options) as session:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(20):
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        return tools


async def call_tool(
    url: str, name: str, arguments: dict[str, Any], **options: Any
) -> mcp_types.CallToolResult:
    async with connect(url, **options) as session:
        return await session.call_tool(name, arguments)
