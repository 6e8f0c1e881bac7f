"""The sentence_transformers engine: local embedding (a bi-encoder, ``SentenceTransformer``) and
reranking (a cross-encoder, ``CrossEncoder``) models, on the CPU or a CUDA GPU.

The catalog entry's task picks the model class: ``embedding`` or ``rerank``. Weights are local
folders, ``bundled:<name>`` folders or hub ids already in the local Hugging Face cache: loading
never touches the network (a worker may have none, and a self-hosted studio fetches nothing it
was not told to).

One model per worker process, kept by ``workers/resident.py``; CPU entries live on the
``retrieval`` queue, CUDA entries on ``gpu`` or ``gpu.<gpu_queue>``. Encoding runs in a thread,
one batch at a time in the whole process (a module-level lock): two batches on the same cores
or GPU only slow each other down. ``sentence_transformers`` and ``torch`` are imported when an
engine is built, never at discovery.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from catalog.bundled import resolve_weights
from catalog.engines import register
from catalog.engines.base import Engine, EngineError, EngineSpec

RETRIEVAL_QUEUE = "retrieval"
GPU_QUEUE = "gpu"
# The name part of a ``gpu.<name>`` queue: the rule the vLLM engine applies to its queues.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# The catalog's dtypes other than "auto" (the weights' own), as torch names them.
_DTYPES = ("float16", "bfloat16", "float32")
# Held while a batch is encoded: one batch at a time per process, whichever model it is for.
_ENCODING = threading.Lock()


class SentenceTransformersSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: Literal["cpu", "cuda"] = "cpu"
    # Texts (or query-text pairs) per forward pass.
    batch_size: int = Field(default=32, ge=1, le=1024)
    # Longer inputs are truncated to this many tokens; None: the model's own limit.
    max_seq_length: int | None = Field(default=None, ge=1, le=131_072)
    # With device "cuda": serve the entry on the queue gpu.<gpu_queue> (its own GPU workers)
    # rather than the shared "gpu" queue.
    gpu_queue: str = Field(default="", max_length=63)

    @field_validator("gpu_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if value and not _QUEUE_NAME.fullmatch(value):
            raise ValueError(
                "gpu_queue must be a name of letters, digits, '.', '-' and '_' (the entry is then "
                "served on the queue gpu.<name>), or empty"
            )
        return value

    @model_validator(mode="after")
    def _queue_needs_cuda(self) -> SentenceTransformersSettings:
        if self.gpu_queue and self.device != "cuda":
            raise ValueError('gpu_queue applies only with device "cuda"')
        return self


@register
class SentenceTransformersEngine(Engine):
    kind = "sentence_transformers"
    loads_torch = True
    tasks = frozenset({"embedding", "rerank"})
    queue = RETRIEVAL_QUEUE
    Settings = SentenceTransformersSettings

    @classmethod
    def queue_for(cls, settings: dict) -> str:
        if settings.get("device") != "cuda":
            return RETRIEVAL_QUEUE
        name = settings.get("gpu_queue")
        return f"{GPU_QUEUE}.{name}" if name else GPU_QUEUE

    def __init__(self, spec: EngineSpec) -> None:
        """Load the model for ``spec.task``; raises EngineError when it cannot be loaded."""
        super().__init__(spec)
        if spec.task not in self.tasks:
            raise EngineError(
                f"the {self.kind} engine serves {', '.join(sorted(self.tasks))}; not {spec.task}"
            )
        if spec.quantization:
            raise EngineError(f"the {self.kind} engine does not load quantized weights")
        # Before the import: huggingface_hub reads it once. local_files_only below is the guard
        # that holds even when the hub library was imported earlier in this process.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import CrossEncoder, SentenceTransformer

        if self.settings.device == "cuda" and not torch.cuda.is_available():
            raise EngineError('device "cuda" was asked for, but torch sees no CUDA device here')
        options: dict[str, Any] = {
            "device": self.settings.device,
            "revision": spec.revision or None,
            "local_files_only": True,
        }
        if spec.dtype in _DTYPES:
            options["model_kwargs"] = {"dtype": getattr(torch, spec.dtype)}
        try:
            path = resolve_weights(spec.weights)
            if spec.task == "embedding":
                self.model = SentenceTransformer(path, **options)
            else:
                self.model = CrossEncoder(path, **options)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise EngineError(f"could not load model weights {spec.weights!r}: {exc}") from exc
        if self.settings.max_seq_length is not None:
            self.model.max_seq_length = self.settings.max_seq_length
        self._dimensions: int | None = None
        if spec.task == "embedding":
            self._dimensions = self.model.get_embedding_dimension() or len(
                self._encode(["dimensions"])[0]
            )
        elif self.model.num_labels != 1:
            raise EngineError(
                f"{spec.weights!r} is a classifier with {self.model.num_labels} labels; "
                "a reranker scores each pair with one"
            )

    def __repr__(self) -> str:
        return f"<SentenceTransformersEngine {self.spec.task} {self.spec.weights!r}>"

    def _encode(self, texts: list[str]) -> list[list[float]]:
        with _ENCODING:
            vectors = self.model.encode(
                texts,
                batch_size=self.settings.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()

    def _predict(self, query: str, texts: list[str]) -> list[float]:
        with _ENCODING:
            scores = self.model.predict(
                [(query, text) for text in texts],
                batch_size=self.settings.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return scores.reshape(-1).tolist()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors of ``dimensions()`` floats, in order; waits for the process's lock."""
        if self.spec.task != "embedding":
            raise EngineError(f"{self.spec.weights!r} is loaded as a reranker; it cannot embed")
        if not texts:
            return []
        try:
            return await asyncio.to_thread(self._encode, texts)
        except RuntimeError as exc:  # torch's: out of memory, a broken input
            raise EngineError(f"embedding failed: {exc}") from exc

    async def rerank(self, query: str, texts: list[str]) -> list[float]:
        """The cross-encoder's score of each (query, text) pair, in order (higher: more
        relevant); waits for the process's lock."""
        if self.spec.task != "rerank":
            raise EngineError(f"{self.spec.weights!r} is loaded as an embedder; it cannot rerank")
        if not texts:
            return []
        try:
            return await asyncio.to_thread(self._predict, query, texts)
        except RuntimeError as exc:
            raise EngineError(f"reranking failed: {exc}") from exc

    def dimensions(self) -> int:
        if self._dimensions is None:
            raise EngineError(f"{self.spec.weights!r} is loaded as a reranker; it cannot embed")
        return self._dimensions

    def close(self) -> None:
        """Drop the model; on a GPU, hand its cached memory back."""
        model = getattr(self, "model", None)
        self.model = None
        if model is not None and self.settings.device == "cuda":
            import torch

            del model
            torch.cuda.empty_cache()
