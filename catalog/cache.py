"""The response cache: identical temperature-0 calls answered from Redis instead of a model.

A key covers the workspace (no answer crosses workspaces), the model entry as it is now (its id
and last change, so new weights or settings miss), the adapter, the messages and every sampling
parameter. Calls with a temperature above 0 or with tools are never cached: their answers are
not meant to repeat. Prefix caching inside the engine (vLLM) is a different thing: it saves
prompt computation, this saves the whole call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from django.conf import settings

from catalog.engines.base import GenerationRequest
from catalog.models import Model
from studio import redis_client

PREFIX = "studio:cache:"


@dataclass
class CachedAnswer:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    model: str


def cache_key(workspace_id: int, model: Model, request: GenerationRequest) -> str | None:
    """The key for ``request`` on ``model``, or None when the call must not be cached."""
    if settings.STUDIO_RESPONSE_CACHE_TTL_S <= 0 or request.temperature > 0 or request.tools:
        return None
    material = json.dumps(
        {
            "model": model.id,
            "changed": model.updated_at.isoformat() if model.updated_at else "",
            "adapter": request.adapter.id if request.adapter else None,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "top_p": request.top_p,
            "json_schema": request.json_schema,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(material.encode()).hexdigest()
    return f"{PREFIX}{workspace_id}:{digest}"


async def cache_get(key: str) -> CachedAnswer | None:
    raw = await redis_client.async_client().get(key)
    if raw is None:
        return None
    try:
        return CachedAnswer(**json.loads(raw))
    except (TypeError, ValueError):  # written by an older studio: treat as a miss
        return None


async def cache_put(key: str, answer: CachedAnswer) -> None:
    await redis_client.async_client().set(
        key, json.dumps(asdict(answer)), ex=settings.STUDIO_RESPONSE_CACHE_TTL_S
    )
