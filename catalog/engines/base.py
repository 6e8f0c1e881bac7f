"""The one narrow interface of every inference engine: ``async stream(request) -> Chunk…``.

An engine is created once per worker process (``workers/resident.py``) and shared by the tasks
of that process; ``generate`` is derived from ``stream``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class EngineSpec:
    """What an engine is built from: a catalog entry's engine-relevant fields."""

    engine: str
    weights: str
    settings: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.engine, self.weights, tuple(sorted(self.settings.items())))


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]
    max_tokens: int = 256
    temperature: float = 0.0


@dataclass
class Chunk:
    """A piece of streamed output. The last chunk carries the token counts and finish reason."""

    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None


@dataclass
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str


class EngineError(Exception):
    """A failure the user should read: bad weights, a model that cannot load, a refused request."""


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Engine(abc.ABC):
    kind: ClassVar[str]
    # The Celery queue whose workers keep this engine resident.
    queue: ClassVar[str] = "inference"
    Settings: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.settings = self.Settings.model_validate(spec.settings)

    @abc.abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Yield output as it is generated; the final chunk has token counts and finish reason."""

    async def generate(self, request: GenerationRequest) -> Completion:
        parts: list[str] = []
        last = Chunk()
        async for chunk in self.stream(request):
            parts.append(chunk.text)
            last = chunk
        return Completion(
            text="".join(parts),
            input_tokens=last.input_tokens or 0,
            output_tokens=last.output_tokens or 0,
            finish_reason=last.finish_reason or "stop",
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the engine holds (GPU memory, threads)."""
