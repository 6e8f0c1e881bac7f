"""The CPU engine: a causal language model on transformers + torch, streamed token by token.

One model per worker process (``workers/resident.py`` keeps it). Concurrent requests are
batched: one generation thread (``catalog.engines.cpu_batch``) admits waiting requests between
decode steps, reads their prompts together in one forward pass and decodes every running one in
a single forward pass, so throughput grows with concurrency instead of requests queueing behind
one another.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from catalog.bundled import resolve_weights
from catalog.engines import register
from catalog.engines.base import Chunk, Engine, EngineError, EngineSpec, GenerationRequest
from catalog.engines.cpu_batch import DEFAULT_MAX_PREFILL_TOKENS, Batcher, Finished, Sequence


class CpuSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # torch's intra-op threads (process-wide); unset: half the usable cores, at least one.
    threads: int | None = Field(default=None, ge=1, le=256)
    # Requests decoded together; more wait for a slot.
    max_batch_size: int = Field(default=32, ge=1, le=256)
    # Padded prompt tokens read in one prefill between two decode steps; a burst beyond it is
    # read over several rounds, so the running requests keep decoding meanwhile.
    max_prefill_tokens: int = Field(default=DEFAULT_MAX_PREFILL_TOKENS, ge=1, le=1_000_000)
    # No n tokens in a row twice in one answer (0: off): stops the loops small models fall into
    # ("Pixel-Pixel-Pixel…") at any temperature.
    no_repeat_ngram_size: int = Field(default=0, ge=0, le=32)


def default_threads() -> int:
    """Half the cores this process may use: the web server, the other workers and the
    tokenizer need the rest, and torch's threads spin at each barrier when a core is taken
    from them (on two busy cores one thread decoded 2.4 times faster than two)."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


@register
class CpuEngine(Engine):
    kind = "cpu"
    loads_torch = True
    Settings = CpuSettings
    exact_tokens = True

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            path = resolve_weights(spec.weights)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError, FileNotFoundError) as exc:
            raise EngineError(f"could not load model weights {spec.weights!r}: {exc}") from exc
        self.model.eval()
        self._batcher = Batcher(
            self.model,
            eos_ids=_eos_ids(self.model.generation_config.eos_token_id),
            max_batch_size=self.settings.max_batch_size,
            threads=self.settings.threads or default_threads(),
            max_prefill_tokens=self.settings.max_prefill_tokens,
        )

    def context_limit(self) -> int:
        """The catalog entry's context length, or the model's own positions if fewer."""
        positions = getattr(self.model.config, "max_position_embeddings", None)
        return min(self.spec.context_length, positions or self.spec.context_length)

    def prompt_tokens(self, request: GenerationRequest) -> int:
        return len(self._prompt_ids(request))

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                request.messages, tokenize=False, add_generation_prompt=True
            )
        else:
            text = "\n".join(m["content"] for m in request.messages)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Stream one request's answer from the shared batch.

        When the caller stops iterating, the request is cancelled and leaves the batch at the
        next decode step. A failed step or a failed prefill raises ``EngineError``.
        """
        prompt = self._prompt_ids(request)
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        sequence = Sequence(
            prompt_ids=prompt,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            repetition_penalty=request.repetition_penalty,
            no_repeat_ngram_size=self.settings.no_repeat_ngram_size,
            deliver=lambda item: loop.call_soon_threadsafe(items.put_nowait, item),
        )
        try:
            self._batcher.submit(sequence)
        except RuntimeError as exc:
            raise EngineError(f"generation failed: {exc}") from exc
        text = _IncrementalText(self.tokenizer)
        try:
            while not isinstance(item := await items.get(), Finished):
                if isinstance(item, BaseException):
                    raise EngineError(f"generation failed: {item}") from item
                if piece := text.add(item):
                    yield Chunk(text=piece)
        finally:
            sequence.cancelled = True  # frees the slot if the caller stopped early
        if tail := text.flush():
            yield Chunk(text=tail)
        yield Chunk(
            input_tokens=len(prompt),
            output_tokens=item.output_tokens,
            finish_reason=item.finish_reason,
        )

    def close(self) -> None:
        self._batcher.close()


class _IncrementalText:
    """Decodes a growing list of token ids and returns only the new text.

    Text ending in an incomplete UTF-8 character (U+FFFD) is held back until the next token
    completes it; special tokens (the end-of-sequence token) are skipped.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.sent = 0

    def add(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        piece, self.sent = text[self.sent :], max(self.sent, len(text))
        return piece

    def flush(self) -> str:
        """What is still held back when the answer ends."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        return text[self.sent :]


def _eos_ids(eos: int | list[int] | None) -> frozenset[int]:
    """The generation config's end-of-sequence ids (what ``generate`` stops on)."""
    if eos is None:
        return frozenset()
    return frozenset([eos] if isinstance(eos, int) else eos)
