"""Server-Sent Events: the framing of event-log streams and the response that carries them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse


async def sse_frames(events: AsyncIterator[dict | None]) -> AsyncIterator[str]:
    """Frame events (``studio.events`` dicts; None = idle) as SSE; ``id`` is the sequence
    number, so a browser resumes with Last-Event-ID."""
    async for event in events:
        if event is None:
            yield ": keep-alive\n\n"
            continue
        yield f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"


def sse_response(stream: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # no proxy buffering: tokens arrive as they are made
    return response
