"""The vLLM engine: continuous batching on NVIDIA GPUs, with prefix caching, LoRA adapters,
structured (JSON schema) output and tool-call parsing. Written against vLLM 0.33 (``AsyncLLM``,
the v1 engine), installed by ``pip install -e '.[gpu]'``.

vLLM is imported only inside ``__init__`` and the methods: module discovery, settings validation
and the whole CPU install never import it.

One engine per worker process, fed by every task of that process. ``workers/resident.py`` keeps
the engine and one background event loop per process; each Celery task thread submits its node's
coroutine to that loop, so all concurrent requests reach the same ``AsyncLLM`` and vLLM batches
them. A GPU worker therefore runs ONE process with a thread pool as wide as the batch it should
fill, serving its model's queue (``gpu`` unless the entry's settings name ``gpu.<name>``)::

    celery -A studio worker -Q gpu -P threads -c 64

Not the prefork pool: its children are daemonic processes, which may not start vLLM's engine-core
process, and each child would load its own copy of the model onto the GPU. Never two worker
processes on the same GPUs for one queue, for the same reason.

vLLM starts its engine-core process with ``spawn`` here (``VLLM_WORKER_MULTIPROC_METHOD``, unless
the operator set it): a Celery worker is multi-threaded, and forking a multi-threaded process can
deadlock the child.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from catalog.bundled import resolve_weights
from catalog.engines import register
from catalog.engines.base import (
    Adapter,
    Chunk,
    ContextTooLong,
    Engine,
    EngineError,
    EngineSpec,
    GenerationRequest,
    context_refusal,
)

GPU_QUEUE = "gpu"
_QUEUE = re.compile(r"gpu(\.[A-Za-z0-9][A-Za-z0-9_.-]{0,62})?")
INSTALL_HINT = "install the GPU extra on the GPU worker: pip install -e '.[gpu]'"
# The ranks vLLM 0.33 accepts for max_lora_rank (vllm.config.lora.MaxLoRARanks).
LoraRank = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]


class VllmSettings(BaseModel):
    """A catalog entry's vLLM settings; None means vLLM's own default."""

    model_config = ConfigDict(extra="forbid")
    # The Celery queue whose GPU worker serves this entry: "gpu", or "gpu.<name>" to pin the
    # entry to the workers started with -Q gpu.<name> (one model per GPU set).
    queue: str = Field(default=GPU_QUEUE, max_length=66)
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    # None: the catalog entry's context_length.
    max_model_len: int | None = Field(default=None, ge=16, le=10_000_000)
    max_num_seqs: int | None = Field(default=None, ge=1, le=4096)
    enable_lora: bool = False
    max_loras: int = Field(default=1, ge=1, le=256)
    max_lora_rank: LoraRank = 16
    enforce_eager: bool = False
    # A vLLM tool-call parser name (hermes, llama3_json, mistral, qwen3_xml, …): with it, a
    # request that offers tools gets the model's calls parsed into ``tool_calls``.
    tool_call_parser: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")

    @field_validator("queue")
    @classmethod
    def _gpu_queue(cls, value: str) -> str:
        if not _QUEUE.fullmatch(value):
            raise ValueError(
                "the queue must be 'gpu' or 'gpu.<name>' (letters, digits, '.', '-', '_')"
            )
        return value


def engine_args(spec: EngineSpec, settings: VllmSettings) -> dict[str, Any]:
    """The ``AsyncEngineArgs`` keywords for a catalog entry (resolves bundled weights)."""
    args: dict[str, Any] = {
        "model": resolve_weights(spec.weights),
        "revision": spec.revision or None,
        "quantization": spec.quantization or None,
        "dtype": spec.dtype or "auto",
        "max_model_len": settings.max_model_len or spec.context_length,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "enforce_eager": settings.enforce_eager,
        # Chat turns and flows repeat their system prompt: its KV cache is computed once.
        "enable_prefix_caching": True,
        "enable_lora": settings.enable_lora,
    }
    if settings.enable_lora:
        args["max_loras"] = settings.max_loras
        args["max_lora_rank"] = settings.max_lora_rank
    if settings.max_num_seqs is not None:
        args["max_num_seqs"] = settings.max_num_seqs
    return args


def lora_name(adapter: Adapter) -> str:
    """The adapter's name inside the engine.

    vLLM tells LoRA requests apart by name; a slug re-used for new weights after a delete gets a
    new id, so the id is part of the name and the old adapter's cache entry is never reused.
    """
    return f"{adapter.name}-{adapter.id}"


@register
class VllmEngine(Engine):
    kind = "vllm"
    loads_torch = True
    queue = GPU_QUEUE
    supports_adapters = True
    Settings = VllmSettings
    exact_tokens = True

    @classmethod
    def queue_for(cls, settings: dict) -> str:
        return settings.get("queue") or GPU_QUEUE

    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        # vLLM reports usage to its authors unless told not to; a self-hosted studio sends
        # nothing anywhere unless its operator says so.
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as exc:
            raise EngineError(f"vLLM is not installed here ({exc}); {INSTALL_HINT}") from exc
        self._tool_parser_cls = None
        if self.settings.tool_call_parser:
            from vllm.tool_parsers import ToolParserManager

            try:
                self._tool_parser_cls = ToolParserManager.get_tool_parser(
                    self.settings.tool_call_parser
                )
            except KeyError:
                raise EngineError(
                    f"vLLM has no tool-call parser {self.settings.tool_call_parser!r}"
                ) from None
        try:
            args = AsyncEngineArgs(**engine_args(spec, self.settings))
            self.engine = AsyncLLM.from_engine_args(args)
        except (OSError, ValueError, RuntimeError) as exc:
            # Bad weights, an unknown quantization, too little GPU memory for the context…
            raise EngineError(f"vLLM could not load {spec.weights!r}: {exc}") from exc
        self.max_model_len = self.engine.model_config.max_model_len

    def context_limit(self) -> int:
        return self.max_model_len

    def context_check(self, request: GenerationRequest, *, model: str) -> None:
        """Checked exactly in ``stream`` instead, on the tokens vLLM's own renderer makes."""

    async def _render(self, request: GenerationRequest) -> Any:
        """The chat messages through the model's chat template, tokenized: vLLM's engine input."""
        from vllm.renderers import ChatParams
        from vllm.utils.mistral import is_mistral_tokenizer

        renderer = self.engine.renderer
        params = ChatParams(
            chat_template_kwargs={
                "add_generation_prompt": True,
                "tools": request.tools,
                # As vLLM's own LLM.chat: Mistral's tokenizer renders straight to token ids.
                "tokenize": is_mistral_tokenizer(renderer.tokenizer),
            }
        )
        _, (engine_input,) = await renderer.render_chat_async([request.messages], params)
        return engine_input

    def _tool_parser(self, request: GenerationRequest):
        """A fresh parser and vLLM's view of the request, when tool calls are to be parsed."""
        if not (request.tools and self._tool_parser_cls):
            return None, None
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        chat = ChatCompletionRequest(
            messages=request.messages, tools=request.tools, tool_choice="auto"
        )
        parser = self._tool_parser_cls(self.engine.get_tokenizer(), tools=chat.tools)
        # A parser may need special tokens kept in the text (hermes: <tool_call> is one).
        chat = parser.adjust_request(chat)
        return parser, chat

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Text deltas as vLLM produces them; the last chunk has the token counts.

        When the request offers tools and the entry names a ``tool_call_parser``, the answer is
        held back and parsed whole at the end: the text that is not a call comes as one chunk and
        the calls on the last chunk (``finish_reason="tool_calls"``). A consumer that stops early
        (or a cancelled task) aborts the request in the engine, freeing its batch slot.
        """
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        lora = None
        if request.adapter is not None:
            if not self.settings.enable_lora:
                raise EngineError(
                    f"adapter {request.adapter.name!r}: this model's vLLM settings do not "
                    "enable LoRA (set enable_lora)"
                )
            adapter = request.adapter
            lora = LoRARequest(lora_name(adapter), adapter.id, adapter.weights)
        try:
            parser, chat = self._tool_parser(request)
            engine_input = await self._render(request)
        except Exception as exc:  # a template or a tool list that vLLM refuses, a long prompt
            raise EngineError(f"could not prepare the prompt: {exc}") from exc
        input_tokens = len(engine_input.get("prompt_token_ids") or ())
        if input_tokens + request.max_tokens > self.max_model_len:
            raise ContextTooLong(
                context_refusal(
                    prompt_tokens=input_tokens,
                    max_tokens=request.max_tokens,
                    limit=self.max_model_len,
                    model=self.spec.weights,
                )
            )
        sampling = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            repetition_penalty=request.repetition_penalty,
            output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=chat.skip_special_tokens if chat is not None else True,
            structured_outputs=(
                StructuredOutputsParams(json=request.json_schema)
                if request.json_schema is not None
                else None
            ),
        )
        request_id = f"studio-{uuid.uuid4().hex}"
        outputs = self.engine.generate(engine_input, sampling, request_id, lora_request=lora)
        held: list[str] = []
        output_tokens = 0
        finish: str | None = None
        try:
            async for output in outputs:
                completion = output.outputs[0]
                output_tokens += len(completion.token_ids)
                if completion.text:
                    if parser is not None:
                        held.append(completion.text)
                    else:
                        yield Chunk(text=completion.text)
                if output.finished:
                    finish = completion.finish_reason
        except Exception as exc:  # vLLM's own: a dead engine, a refused request, a bad schema
            raise EngineError(f"vLLM failed: {exc}") from exc
        finally:
            # vLLM's generator aborts its request when closed before the end (GeneratorExit) or
            # cancelled; closing it here covers a consumer that stopped iterating us.
            await outputs.aclose()
        if finish not in ("stop", "length"):
            raise EngineError(f"vLLM ended the request: {finish or 'no finish reason'}")
        tool_calls = None
        if parser is not None:
            text = "".join(held)
            parsed = parser.extract_tool_calls(text, chat)
            if parsed.tools_called:
                text = parsed.content or ""
                tool_calls = [call.model_dump(mode="json") for call in parsed.tool_calls]
                finish = "tool_calls"
            if text:
                yield Chunk(text=text)
        yield Chunk(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            finish_reason=finish,
            tool_calls=tool_calls,
        )

    def close(self) -> None:
        """Stop the engine-core process and free its GPU memory."""
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
