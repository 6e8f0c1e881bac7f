"""The one narrow interface of every inference engine: ``async stream(request) -> Chunk…`` for
chat and completion, ``async embed(texts)`` and ``async rerank(query, texts)`` for retrieval.

An engine is created once per worker process (``workers/resident.py``) and shared by the tasks
of that process; ``generate`` is derived from ``stream``. An engine serves the tasks it lists in
``tasks``; the others raise ``EngineError`` (the catalog refuses such entries up front).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

# torch, transformers and sentence-transformers import their parts lazily, and two threads
# importing them at once can see each other's half-made modules ("cannot import name
# 'AutoModelForCausalLM' from 'transformers'"), as can two loads of weights resolving model
# classes. Engines with ``loads_torch`` are therefore built under this lock, one at a time.
TORCH_LOADS = threading.Lock()


@dataclass(frozen=True)
class EngineSpec:
    """What an engine is built from: a catalog entry's engine-relevant fields.

    ``task`` is what the entry is for (``catalog.models.Task``): an engine that serves several
    loads a different model class for each (a sentence encoder or a cross-encoder).

    ``secret`` is the decrypted credential of a remote endpoint; it is kept out of ``repr`` so it
    never reaches a log or a traceback, and out of ``key`` (a changed secret is a changed
    ``credential_id``).
    """

    engine: str
    weights: str
    settings: dict = field(default_factory=dict)
    revision: str = ""
    quantization: str = ""
    dtype: str = ""
    context_length: int = 2048
    credential_id: int | None = None
    task: str = "chat"
    secret: str = field(default="", repr=False, compare=False)

    @property
    def key(self) -> tuple:
        return (
            self.engine,
            self.weights,
            repr(sorted(self.settings.items())),
            self.revision,
            self.quantization,
            self.dtype,
            self.context_length,
            self.credential_id,
            self.task,
        )


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter to apply for one request (engines that cannot raise EngineError)."""

    id: int
    name: str
    weights: str


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    # Above 1, a token the answer already holds is less likely again (engines that support it:
    # the CPU engine and vLLM; a remote endpoint gets the standard parameters only).
    repetition_penalty: float = 1.0
    adapter: Adapter | None = None
    # Structured output: the answer must match this JSON schema (engines that support it).
    json_schema: dict | None = None
    # OpenAI-style tool definitions; an engine that parses tool calls returns them on the last
    # chunk's ``tool_calls``.
    tools: list[dict] | None = None


@dataclass
class Chunk:
    """A piece of streamed output. The last chunk carries the token counts and finish reason."""

    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    tool_calls: list[dict] | None = None


@dataclass
class Completion:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    tool_calls: list[dict] | None = None


class EngineError(Exception):
    """A failure the user should read: bad weights, a model that cannot load, a refused request."""


class ContextTooLong(EngineError):
    """A prompt that, with room for its answer, is longer than the model takes: refused before
    it runs rather than cut or left to fail inside the engine."""


# In every context refusal's text: how a run's recorded error is told apart from other failures
# (the OpenAI-compatible API answers it 400 context_length_exceeded, as OpenAI does).
CONTEXT_REFUSAL_MARK = "(including the answer's max tokens"


def is_context_refusal(error: str | None) -> bool:
    return bool(error) and CONTEXT_REFUSAL_MARK in error


def context_refusal(*, prompt_tokens: int, max_tokens: int, limit: int, model: str) -> str:
    return (
        f"the prompt is {prompt_tokens:,} tokens; {model} takes at most {limit:,} "
        f"(including the answer's max tokens, {max_tokens:,})"
    )


# Each message's role and separators, as chat formats wrap a message (OpenAI's own estimate).
MESSAGE_OVERHEAD_TOKENS = 4


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _bytes_bound(request: GenerationRequest) -> int:
    """The most tokens the shared encoding can make of the prompt: a token is at least a byte."""
    return sum(
        len(str(m.get("content") or "").encode()) + MESSAGE_OVERHEAD_TOKENS
        for m in request.messages
    )


class Engine:
    """The base of every engine; each capability an engine lacks raises ``EngineError``.

    Retrieval contracts, for the engines whose ``tasks`` include them:

    - ``embed(texts)``: one vector per text, in order, each of ``dimensions()`` floats and
      L2-normalised (the knowledge store compares them by cosine distance);
    - ``rerank(query, texts)``: one relevance score per text, in order, higher is more relevant
      (scores are comparable within one call, not across models);
    - both return ``[]`` for no texts, without calling a model or a server.
    """

    kind: ClassVar[str]
    # What the engine serves: values of ``catalog.models.Task``.
    tasks: ClassVar[frozenset[str]] = frozenset({"chat", "completion"})
    # Calls an endpoint named in its settings: where it calls is an admin's choice, because the
    # operator's allow list for model endpoints (STUDIO_EGRESS_ALLOW_MODELS) trusts admins.
    remote: ClassVar[bool] = False
    # The Celery queue whose workers keep this engine resident.
    queue: ClassVar[str] = "inference"
    # True when the engine holds no local weights (a remote endpoint, echo): any worker may
    # serve it, so a route's fallback can reach it from whichever queue the node runs on.
    portable: ClassVar[bool] = False
    supports_adapters: ClassVar[bool] = False
    # True when building the engine imports torch and the Hugging Face libraries and loads
    # weights through them: such engines are built one at a time per process (``TORCH_LOADS``).
    loads_torch: ClassVar[bool] = False
    Settings: ClassVar[type[BaseModel]] = NoSettings
    # True when ``prompt_tokens`` counts with the model's own tokenizer and chat template;
    # else it is the shared encoding's count, never more than the text's UTF-8 bytes.
    exact_tokens: ClassVar[bool] = False

    @classmethod
    def queue_for(cls, settings: dict) -> str:
        """The queue for a catalog entry with these engine settings (vLLM: ``gpu.<model>``)."""
        return cls.queue

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.settings = self.Settings.model_validate(spec.settings)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Yield output as it is generated; the final chunk has token counts and finish reason."""
        raise EngineError(f"the {self.kind} engine cannot generate text")
        yield Chunk()  # unreachable: makes this an async generator, as callers iterate it

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
            tool_calls=last.tool_calls,
        )

    def context_limit(self) -> int:
        """The most tokens a prompt and its answer may hold together: the catalog entry's
        context length (engines that know their model's own limit take the smaller)."""
        return self.spec.context_length

    def prompt_tokens(self, request: GenerationRequest) -> int:
        """The prompt's length in tokens: the studio's shared encoding (``token_counts``), which
        an engine with a tokenizer of its own replaces with an exact count."""
        from catalog.token_counts import encoding

        encode = encoding().encode
        return sum(
            len(encode(str(m.get("content") or ""), disallowed_special=()))
            + MESSAGE_OVERHEAD_TOKENS
            for m in request.messages
        )

    def context_check(self, request: GenerationRequest, *, model: str) -> None:
        """ContextTooLong, naming both numbers, when the prompt and ``max_tokens`` of answer do
        not fit the model's context; called before anything is generated."""
        limit = self.context_limit()
        if not self.exact_tokens and _bytes_bound(request) + request.max_tokens <= limit:
            return  # fits whatever the encoding: most prompts are never tokenized here
        tokens = self.prompt_tokens(request)
        if tokens + request.max_tokens > limit:
            raise ContextTooLong(
                context_refusal(
                    prompt_tokens=tokens, max_tokens=request.max_tokens, limit=limit, model=model
                )
            )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One L2-normalised vector per text, in order (see the class docstring)."""
        raise EngineError(f"the {self.kind} engine cannot embed")

    async def rerank(self, query: str, texts: list[str]) -> list[float]:
        """One relevance score per text, in order, higher is better (see the class docstring)."""
        raise EngineError(f"the {self.kind} engine cannot rerank")

    def dimensions(self) -> int:
        """The length of the vectors ``embed`` returns."""
        raise EngineError(f"the {self.kind} engine cannot embed")

    def close(self) -> None:
        """Release what the engine holds (GPU memory, threads)."""
