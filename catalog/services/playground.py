"""The compare playground: one prompt, two catalog models, both answers streamed side by side.

The web process never runs a model. ``playground_start`` writes one job per side to Redis (who
asked, in which workspace, for which model and prompt) and sends ``playground_generate`` to each
model's queue. The task claims the job, checks the user may still use the model, and runs
``playground_agenerate`` on its worker's resident loop, which streams the answer into the side's
event log (``studio.events``, keyed by the side's stream id) and ends it with ``run.finished``
(tokens, time to first token, latency, cost) or ``run.failed`` (the reason). The page follows each
log over Server-Sent Events (``playground_follow``); only the user who started a job may.

Each side has its own stream, so each ends with its own terminal event. Stream ids are
``play-<uuid hex>``: they never collide with run UUIDs in the shared event-log namespace.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction

from catalog.engines.base import GenerationRequest
from catalog.inference import ainvoke
from catalog.models import Model
from catalog.router import Candidate
from catalog.selectors.models import model_queue
from catalog.services.usage import ausage_record, usage_cost
from studio import events, redis_client
from studio.celery import app

GENERATE_TASK = "workers.tasks.playground_generate"
SIDES = ("a", "b")
JOB_TTL_S = 3600
# A side that no worker has picked up in this long is failed rather than run late: the person
# who asked has given up on it, and the page has told them so.
QUEUE_WAIT_S = 300.0
# How long one answer may take, engine load included.
GENERATE_TIMEOUT_S = 300.0
_STREAM_ID = re.compile(r"play-[0-9a-f]{32}")


@dataclass(frozen=True)
class PlaygroundJob:
    """One side of a comparison, as stored in Redis under ``studio:playground:<stream_id>``."""

    stream_id: str
    side: str
    user_id: int
    workspace_id: int
    model_id: int
    system: str
    prompt: str
    temperature: float
    max_tokens: int
    created_at: float

    @property
    def start_by(self) -> float:
        return self.created_at + QUEUE_WAIT_S

    @property
    def deadline(self) -> float:
        """By then the side has ended, or its worker is gone."""
        return self.start_by + GENERATE_TIMEOUT_S

    def messages(self) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.prompt}]


def _job_key(stream_id: str) -> str:
    return f"studio:playground:{stream_id}"


def _claim_key(stream_id: str) -> str:
    return f"studio:playground:{stream_id}:claimed"


def _parse(raw: bytes | None) -> PlaygroundJob | None:
    return PlaygroundJob(**json.loads(raw)) if raw is not None else None


def playground_start(
    *,
    workspace: Any,
    user: Any,
    model_a: Model,
    model_b: Model,
    system: str,
    prompt: str,
    temperature: float,
    max_tokens: int,
) -> dict[str, str]:
    """Start both sides; returns the stream id of each (``{"a": …, "b": …}``).

    The caller has checked that ``user`` may use both models in ``workspace``. The jobs are in
    Redis before their tasks are sent (on commit), so a task always finds its job.
    """
    now = time.time()
    jobs: list[tuple[PlaygroundJob, str]] = []
    for side, model in zip(SIDES, (model_a, model_b), strict=True):
        job = PlaygroundJob(
            stream_id=f"play-{uuid.uuid4().hex}",
            side=side,
            user_id=user.id,
            workspace_id=workspace.id,
            model_id=model.id,
            system=system,
            prompt=prompt,
            temperature=temperature,
            max_tokens=max_tokens,
            created_at=now,
        )
        redis_client.client().set(_job_key(job.stream_id), json.dumps(asdict(job)), ex=JOB_TTL_S)
        jobs.append((job, model_queue(model)))

    def send() -> None:
        for job, queue in jobs:
            app.send_task(GENERATE_TASK, args=[job.stream_id], queue=queue)

    transaction.on_commit(send)
    return {job.side: job.stream_id for job, _ in jobs}


def playground_job(stream_id: str) -> PlaygroundJob | None:
    """The job behind a stream id, or None (unknown, malformed or expired)."""
    if not _STREAM_ID.fullmatch(stream_id):
        return None
    return _parse(redis_client.client().get(_job_key(stream_id)))


async def aplayground_job(stream_id: str) -> PlaygroundJob | None:
    if not _STREAM_ID.fullmatch(stream_id):
        return None
    return _parse(await redis_client.async_client().get(_job_key(stream_id)))


def playground_claim(*, stream_id: str) -> PlaygroundJob | None:
    """The job for the one task delivery that may run it; None for a repeated delivery or an
    expired job. A job claimed after ``start_by`` is failed here, not run."""
    job = playground_job(stream_id)
    if job is None:
        return None
    if not redis_client.client().set(_claim_key(stream_id), "1", nx=True, ex=JOB_TTL_S):
        return None  # Celery delivers at least once: another delivery has it
    if time.time() > job.start_by:
        playground_fail(job=job, reason=f"no worker picked this up within {QUEUE_WAIT_S:g} s")
        return None
    return job


def playground_fail(*, job: PlaygroundJob, reason: str) -> None:
    """End a side with ``reason`` (from synchronous code: the task)."""
    events.publish_sync(job.stream_id, events.RUN_FAILED, job.side, {"reason": reason})


async def playground_agenerate(
    *, job: PlaygroundJob, model: Model, engine_for: Callable[[Model], Awaitable[Any]]
) -> None:
    """Stream one side's answer into its event log and meter it (``Usage``, source playground).

    Runs on a worker's resident loop. Never raises for a failed call: the side's followers must
    hear an end, so every outcome is published as ``run.finished`` or ``run.failed``.
    """
    stream_id = job.stream_id
    await events.publish(
        stream_id, events.RUN_STARTED, job.side, {"model": model.slug, "name": model.name}
    )

    tokens = events.TokenBuffer(stream_id, job.side)

    request = GenerationRequest(
        messages=job.messages(),
        temperature=job.temperature,
        max_tokens=job.max_tokens,
        top_p=(model.sampling or {}).get("top_p") or 1.0,
    )
    usage = {"source": "playground", "user_id": job.user_id}
    started = time.monotonic()
    try:
        async with asyncio.timeout(GENERATE_TIMEOUT_S):
            result = await ainvoke(
                workspace_id=job.workspace_id,
                candidates=[Candidate(model, "compared in the playground")],
                request_for=lambda _model: request,
                engine_for=engine_for,
                on_token=tokens.add,
                # A comparison measures the models, so it never answers from the cache.
                use_cache=False,
                usage=usage,
            )
    except TimeoutError:
        reason = f"no complete answer within {GENERATE_TIMEOUT_S:g} s"
        await tokens.flush()
        # ainvoke was cancelled mid-call and metered nothing: the attempt still counts.
        await ausage_record(
            workspace_id=job.workspace_id,
            model=model,
            latency_ms=(time.monotonic() - started) * 1000,
            ok=False,
            error=reason,
            **usage,
        )
        await events.publish(stream_id, events.RUN_FAILED, job.side, {"reason": reason})
        return
    except Exception as exc:  # the model's own failure (already metered): the user reads why
        reason = str(exc) or type(exc).__name__
        await tokens.flush()
        await events.publish(stream_id, events.RUN_FAILED, job.side, {"reason": reason})
        return
    await tokens.flush()  # every token before the end
    await events.publish(
        stream_id,
        events.RUN_FINISHED,
        job.side,
        {
            "model": model.slug,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "finish_reason": result.finish_reason,
            "ttft_ms": round(result.ttft_ms, 1),
            "latency_ms": round(result.model_ms + result.emit_ms, 1),
            "cost": f"{usage_cost(model, result.input_tokens, result.output_tokens).normalize():f}",
        },
    )


async def _ended(stream_id: str, through: int | None = None) -> bool:
    """Whether the side's log holds its terminal event (at or before seq ``through``)."""
    logged = await events.replay(stream_id)
    return any(
        e["type"] in events.TERMINAL_TYPES and (through is None or e["seq"] <= through)
        for e in logged
    )


async def aplayground_ended(job: PlaygroundJob, through: int) -> bool:
    """Whether a reader who has seen the events up to ``through`` has seen the side end."""
    return await _ended(job.stream_id, through)


async def playground_follow(
    job: PlaygroundJob, after: int = 0, idle_s: float = events.FOLLOW_IDLE_S
) -> AsyncIterator[dict | None]:
    """A side's events after ``after`` until its terminal one; None on idle ticks.

    A side still silent at its deadline (its worker died) is failed here, so that the page
    stops waiting.
    """
    async for event in events.follow(job.stream_id, after, idle_s):
        if event is None and time.time() > job.deadline:
            if not await _ended(job.stream_id):
                await events.publish(
                    job.stream_id,
                    events.RUN_FAILED,
                    job.side,
                    {"reason": "no answer came back: the worker serving this model stopped"},
                )
        yield event
