"""The CPU engine: a causal language model on transformers + torch, streamed token by token.

One model per worker process (``workers/resident.py`` keeps it). Generation runs in a thread,
one request at a time: two concurrent ``generate`` calls on two cores only thrash.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from catalog.bundled import resolve_weights
from catalog.engines import register
from catalog.engines.base import Chunk, Engine, EngineError, EngineSpec, GenerationRequest


class CpuSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: int | None = Field(default=None, ge=1, le=256)


@register
class CpuEngine(Engine):
    kind = "cpu"
    Settings = CpuSettings

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        try:
            path = resolve_weights(spec.weights)
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError, FileNotFoundError) as exc:
            raise EngineError(f"could not load model weights {spec.weights!r}: {exc}") from exc
        self.model.eval()
        self._lock = threading.Lock()

    def _prompt_ids(self, request: GenerationRequest):
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                request.messages, tokenize=False, add_generation_prompt=True
            )
        else:
            text = "\n".join(m["content"] for m in request.messages)
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        encoded = self._prompt_ids(request)
        input_tokens = int(encoded["input_ids"].shape[1])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancelled = threading.Event()
        outcome: dict = {}

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs) -> bool:
                return cancelled.is_set()

        sampling = (
            {"do_sample": True, "temperature": request.temperature}
            if request.temperature > 0
            else {"do_sample": False}
        )

        def generate() -> None:
            try:
                with self._lock:
                    outcome["ids"] = self.model.generate(
                        **encoded,
                        max_new_tokens=request.max_tokens,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([Cancelled()]),
                        pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                        **sampling,
                    )
            except Exception as exc:  # surfaced to the caller below
                outcome["error"] = exc
                streamer.end()

        thread = threading.Thread(target=generate, name="cpu-generate", daemon=True)
        thread.start()
        pieces = iter(streamer)
        try:
            while True:
                piece = await asyncio.to_thread(next, pieces, None)
                if piece is None:
                    break
                if piece:  # the streamer yields empty strings between words
                    yield Chunk(text=piece)
        finally:
            cancelled.set()
            await asyncio.to_thread(thread.join)
        if "error" in outcome:
            raise EngineError(f"generation failed: {outcome['error']}") from outcome["error"]
        output_tokens = int(outcome["ids"].shape[1]) - input_tokens
        finish = "length" if output_tokens >= request.max_tokens else "stop"
        yield Chunk(input_tokens=input_tokens, output_tokens=output_tokens, finish_reason=finish)
