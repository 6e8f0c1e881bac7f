"""What the benchmarks' fake model servers share: OpenAI's chat-completion chunk, the reply a
handler writes, and letting the studio's egress reach a server on loopback."""

from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler
from typing import Any


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a streamed answer."""
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def reply(handler: BaseHTTPRequestHandler, status: int, content_type: str, data: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def allow_loopback_models() -> None:
    """Let the studio's egress reach the fake server (it refuses loopback by default)."""
    allowed = [a for a in os.environ.get("STUDIO_EGRESS_ALLOW_MODELS", "").split(",") if a]
    if "127.0.0.1" not in allowed:
        os.environ["STUDIO_EGRESS_ALLOW_MODELS"] = ",".join([*allowed, "127.0.0.1"])
