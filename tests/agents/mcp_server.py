"""A small MCP server for the MCP tool's tests, built with the official SDK and served over
streamable HTTP: ``python tests/agents/mcp_server.py PORT``. Its tools: add, echo, wait,
idempotency_key and fail. It answers 401 when the ``MCP_TEST_TOKEN`` environment variable is set
and a request does not carry it as a bearer token."""

from __future__ import annotations

import os
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("studio-test-tools")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Give the text back."""
    return text


@server.tool()
async def wait(seconds: float) -> str:
    """Answer after some seconds."""
    await anyio.sleep(seconds)
    return "done"


@server.tool()
def idempotency_key(ctx: Context) -> str:
    """The Idempotency-Key header the call came with."""
    return (ctx.headers or {}).get("idempotency-key", "(none)")


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason given."""
    raise ValueError(f"the tool failed: {reason}")


def _app():
    app = server.streamable_http_app()
    token = os.environ.get("MCP_TEST_TOKEN")
    if not token:
        return app

    async def guarded(scope, receive, send):
        headers = dict(scope.get("headers") or [])
        if scope["type"] == "http" and headers.get(b"authorization") != f"Bearer {token}".encode():
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"unauthorised"})
            return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    uvicorn.run(_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
