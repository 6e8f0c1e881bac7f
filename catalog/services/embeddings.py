"""Texts embedded for the OpenAI-compatible API (``POST /v1/embeddings``), on a worker.

The web process never loads a model: ``embedding_start`` writes a job to Redis (which key, which
model, the texts) and sends ``workers.tasks.catalog_embed`` to the model's queue; the task
checks the key again, embeds on the worker's resident engine (the one ``engine.embed`` the
knowledge bases use), records the call's usage and pushes the vectors, packed as little-endian
float32 (what OpenAI's ``base64`` encoding is), to the job's reply list, which
``embedding_wait`` blocks on.

Token counts (the limit per input, and usage) use tiktoken's ``cl100k_base``, the encoding of
OpenAI's embedding models, from the cache shipped inside llama-index-core: nothing is
downloaded and nothing of the model is loaded in the web process.
"""

from __future__ import annotations

import array
import base64
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from catalog.engines.base import Engine
from catalog.models import Model
from catalog.selectors.models import model_queue
from catalog.services.usage import ausage_record
from catalog.token_counts import encoding
from studio import redis_client
from studio.celery import app

EMBED_TASK = "workers.tasks.catalog_embed"
JOB_TTL_S = 300
# Loading the model on a worker's first call is included.
WAIT_S = 120.0
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_INPUT_CHARS = 100_000


class EmbeddingTimeout(Exception):
    """No worker answered in time."""


class EmbeddingFailed(Exception):
    """The worker could not embed the texts; the message says why."""


@dataclass(frozen=True)
class EmbeddingJob:
    job_id: str
    model_id: int
    api_key_id: int
    workspace_id: int
    texts: list[str]
    input_tokens: int


def embedding_tokens(texts: list[str]) -> list[int]:
    """The number of tokens of each text."""
    return [len(tokens) for tokens in encoding().encode_ordinary_batch(texts)]


def _job_key(job_id: str) -> str:
    return f"studio:embed:{job_id}"


def _reply_key(job_id: str) -> str:
    return f"studio:embed:{job_id}:reply"


def embedding_start(*, model: Model, texts: list[str], api_key, input_tokens: int) -> str:
    """Queue the texts for ``model``; the caller has checked the key may embed with it.
    Returns the job id."""
    job = EmbeddingJob(
        job_id=uuid.uuid4().hex,
        model_id=model.id,
        api_key_id=api_key.id,
        workspace_id=api_key.workspace_id,
        texts=texts,
        input_tokens=input_tokens,
    )
    redis_client.client().set(_job_key(job.job_id), json.dumps(asdict(job)), ex=JOB_TTL_S)
    app.send_task(EMBED_TASK, args=[job.job_id], queue=model_queue(model))
    return job.job_id


def embedding_claim(job_id: str) -> EmbeddingJob | None:
    """The job, taken once (a repeated delivery finds nothing)."""
    raw = redis_client.client().getdel(_job_key(job_id))
    return EmbeddingJob(**json.loads(raw)) if raw else None


def embedding_reply(job_id: str, *, vectors: list[str] | None = None, error: str = "") -> None:
    payload = {"error": error} if error else {"vectors": vectors}
    client = redis_client.client()
    client.rpush(_reply_key(job_id), json.dumps(payload))
    client.expire(_reply_key(job_id), JOB_TTL_S)


def _packed(vector: list[float]) -> str:
    values = array.array("f", vector)
    if sys.byteorder != "little":
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode()


def embedding_unpacked(packed: str) -> list[float]:
    """A vector as floats, from its little-endian float32 base64."""
    values = array.array("f", base64.b64decode(packed))
    if sys.byteorder != "little":
        values.byteswap()
    return values.tolist()


async def embedding_arun(
    *, job: EmbeddingJob, model: Model, engine_for: Callable[[Model], Awaitable[Engine]]
) -> None:
    """Embed the job's texts on the resident engine, record the call (failed ones too) and
    reply with the vectors or the reason."""
    started = time.monotonic()
    error = ""
    try:
        engine = await engine_for(model)
        vectors = [_packed(vector) for vector in await engine.embed(job.texts)]
    except Exception as exc:  # the asker reads why; the worker goes on
        error = f"embedding failed: {exc}"
    await ausage_record(
        workspace_id=job.workspace_id,
        model=model,
        source="api",
        input_tokens=job.input_tokens,
        latency_ms=(time.monotonic() - started) * 1000,
        ok=not error,
        error=error,
        api_key_id=job.api_key_id,
    )
    if error:
        embedding_reply(job.job_id, error=error)
    else:
        embedding_reply(job.job_id, vectors=vectors)


def embedding_wait(job_id: str, timeout: float = WAIT_S) -> list[str]:
    """The job's vectors (little-endian float32, base64); EmbeddingTimeout when no worker
    answered, EmbeddingFailed with the worker's reason."""
    found = redis_client.pop_reply(_reply_key(job_id), timeout)
    if found is None:
        raise EmbeddingTimeout(
            f"no worker answered within {timeout:.0f} s; is a worker serving the model's queue?"
        )
    reply = json.loads(found)
    if reply.get("error"):
        raise EmbeddingFailed(reply["error"])
    return reply["vectors"]
