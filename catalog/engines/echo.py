"""The echo engine: answers at once with the last user message, token by token.

It exists so benchmarks and fast tests can measure the studio alone; it is never seeded.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from catalog.engines import register
from catalog.engines.base import Chunk, Engine, GenerationRequest

_TOKEN = re.compile(r"\s*\S+")


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A pause before each token, to stand in for a slow model.
    delay_ms: float = Field(default=0, ge=0, le=60_000)


@register
class EchoEngine(Engine):
    kind = "echo"
    Settings = EchoSettings
    portable = True  # holds nothing: any worker serves it

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        prompt = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
        tokens = _TOKEN.findall(prompt)
        input_tokens = sum(len(_TOKEN.findall(m["content"])) for m in request.messages)
        emitted = tokens[: request.max_tokens]
        for token in emitted:
            if self.settings.delay_ms:
                await asyncio.sleep(self.settings.delay_ms / 1000)
            yield Chunk(text=token)
        finish = "length" if len(tokens) > request.max_tokens else "stop"
        yield Chunk(input_tokens=input_tokens, output_tokens=len(emitted), finish_reason=finish)
