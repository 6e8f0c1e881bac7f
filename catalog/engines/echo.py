"""The echo engine: answers at once with the last user message, token by token; embeds and
reranks at once too, with stand-ins that need no model.

It exists so benchmarks and fast tests can measure the studio alone; it is never seeded.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from catalog.engines import register
from catalog.engines.base import Chunk, Engine, GenerationRequest

_TOKEN = re.compile(r"\s*\S+")
_WORD = re.compile(r"\w+")


class EchoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A pause before each token, to stand in for a slow model.
    delay_ms: float = Field(default=0, ge=0, le=60_000)
    # The length of the vectors ``embed`` returns (384: as the bundled MiniLM).
    dimensions: int = Field(default=384, ge=2, le=4096)


def _unit_vector(text: str, dimensions: int) -> list[float]:
    """A vector that depends only on ``text``: equal texts get equal vectors, different texts
    nearly orthogonal ones (random directions in many dimensions are)."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    vector = [rng.random() - 0.5 for _ in range(dimensions)]
    norm = math.sqrt(math.fsum(x * x for x in vector))
    return [x / norm for x in vector]


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@register
class EchoEngine(Engine):
    kind = "echo"
    tasks = frozenset({"chat", "completion", "embedding", "rerank"})
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

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """A deterministic unit vector per text, seeded by the text's SHA-256: no meaning, only
        identity (the same text always lands on the same point)."""
        return [_unit_vector(text, self.settings.dimensions) for text in texts]

    async def rerank(self, query: str, texts: list[str]) -> list[float]:
        """The fraction of the query's distinct words (case-insensitive) found in each text."""
        wanted = _words(query)
        if not wanted:
            return [0.0 for _ in texts]
        return [len(wanted & _words(text)) / len(wanted) for text in texts]

    def dimensions(self) -> int:
        return self.settings.dimensions
