"""One model call as the studio makes it: candidates in order, the response cache, metering.

``ainvoke`` is what the LLM node (and later agents) call on a worker. For each candidate (one for
a plain model, several for a route) it looks in the response cache, else streams from the
resident engine, giving up on a candidate that fails or sends no first token within the timeout
and moving to the next, as long as nothing was streamed yet. Every attempt is metered in
``Usage``, failed ones too, with the reason its model was chosen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from catalog import cache
from catalog.engines import engine_class
from catalog.engines.base import Chunk, EngineError, GenerationRequest
from catalog.models import Model, Usage
from catalog.router import Candidate
from catalog.services.usage import ausage_record, usage_cost, usage_row
from studio import tracing


class NoCandidateServed(EngineError):
    """Every candidate of a call failed; the message lists why each one did."""


@dataclass
class CallResult:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    model: Model
    reason: str
    cache_hit: bool
    ttft_ms: float
    model_ms: float  # time in the model, not counting the studio's own event publishing
    emit_ms: float
    tool_calls: list[dict] | None = None
    attempts: list[dict] = field(default_factory=list)

    def trace(self) -> dict[str, Any]:
        """What the run trace shows about the call."""
        return {
            "model": self.model.slug,
            "engine": self.model.engine,
            "reason": self.reason,
            "cache": "hit" if self.cache_hit else "miss",
            "finish_reason": self.finish_reason,
            "model_ms": round(self.model_ms, 2),
            "emit_ms": round(self.emit_ms, 2),
            "ttft_ms": round(self.ttft_ms, 2),
            "cost": str(usage_cost(self.model, self.input_tokens, self.output_tokens))
            if not self.cache_hit
            else "0",
            **({"attempts": self.attempts} if self.attempts else {}),
            **({"tool_calls": self.tool_calls} if self.tool_calls else {}),
        }


class _FirstTokenTimeout(Exception):
    pass


async def _with_first_token_timeout(
    stream: AsyncIterator[Chunk], timeout_s: float | None
) -> AsyncIterator[Chunk]:
    iterator = aiter(stream)
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(anext(iterator), timeout_s)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _FirstTokenTimeout from None
            if chunk.text or chunk.tool_calls:
                timeout_s = None  # only the first token is timed
            yield chunk
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


class _CandidateFailed(Exception):
    """A candidate failed before streaming anything: the next one may answer instead."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class _Meter:
    """What every usage row of one candidate shares, so that each outcome (a cache hit, a
    failure, an answer) records only its own figures."""

    workspace_id: int
    model: Model
    reason: str
    request: GenerationRequest
    usage: dict[str, Any]
    kept: list[Usage] | None  # where the caller keeps the rows to write them itself

    async def record(self, **figures: Any) -> None:
        row = {
            "workspace_id": self.workspace_id,
            "model": self.model,
            "reason": self.reason,
            "adapter": self.request.adapter.name if self.request.adapter else "",
            **figures,
            **self.usage,
        }
        _trace_call(self.model, figures)
        if self.kept is None:
            await ausage_record(**row)
        else:
            self.kept.append(usage_row(**row))


def _trace_call(model: Model, figures: dict[str, Any]) -> None:
    """The call's span (GenAI semantic conventions), made as it is metered."""
    if not tracing.ENABLED:
        return
    tracing.completed(
        f"chat {model.slug}",
        figures.get("latency_ms", 0) / 1000,
        ok=figures.get("ok", True),
        **{
            "gen_ai.operation.name": "chat",
            "gen_ai.system": model.engine,
            "gen_ai.request.model": model.slug,
            "gen_ai.usage.input_tokens": figures.get("input_tokens", 0),
            "gen_ai.usage.output_tokens": figures.get("output_tokens", 0),
            "studio.cache_hit": figures.get("cache_hit", False),
            "error.type": figures.get("error") or None,
        },
    )


@dataclass
class _Streaming:
    """One candidate's answer as it streams, timed; kept outside the ``try`` so that a failure
    still knows how long it took and whether the user saw part of it."""

    started: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    emitting: float = 0.0  # seconds spent in ``on_token``, not in the model
    parts: list[str] = field(default_factory=list)
    final: Chunk = field(default_factory=Chunk)

    async def consume(
        self,
        stream: AsyncIterator[Chunk],
        on_token: Callable[[str], Awaitable[None]],
        timeout_s: float | None,
    ) -> None:
        async for chunk in _with_first_token_timeout(stream, timeout_s):
            if chunk.text:
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                self.parts.append(chunk.text)
                emit_started = time.monotonic()
                await on_token(chunk.text)
                self.emitting += time.monotonic() - emit_started
            if chunk.finish_reason:
                self.final = chunk


async def ainvoke(
    *,
    workspace_id: int,
    candidates: list[Candidate],
    request_for: Callable[[Model], GenerationRequest],
    engine_for: Callable[[Model], Awaitable[Any]],
    on_token: Callable[[str], Awaitable[None]],
    use_cache: bool = True,
    first_token_timeout_s: float | None = None,
    queue: str | None = None,
    usage: dict[str, Any] | None = None,
    metered: list[Usage] | None = None,
) -> CallResult:
    """Serve one call from the first candidate that answers. ``queue``: the worker queue this
    runs on; a local model served on another queue is skipped (it is not loaded here).
    ``usage``: what the usage rows record besides the call (flow, run, node, key, user, route).
    ``metered``: the caller writes the usage rows, kept there, with its own transaction (a flow
    node's, with its result); else each is written as the call ends.
    """
    usage = usage or {}
    attempts: list[dict] = []
    for index, candidate in enumerate(candidates):
        model = candidate.model
        if not _served_on(model, queue):
            attempts.append({"model": model.slug, "error": f"not served on the {queue} queue"})
            continue
        request = request_for(model)
        reason = _reason(candidate, attempts)
        meter = _Meter(workspace_id, model, reason, request, usage, metered)
        key = cache.cache_key(workspace_id, model, request) if use_cache else None
        if key and (hit := await cache.cache_get(key)) is not None:
            return await _answer_from_cache(hit, on_token=on_token, meter=meter, attempts=attempts)
        try:
            return await _answer_from_engine(
                engine_for=engine_for,
                on_token=on_token,
                meter=meter,
                attempts=attempts,
                cache_key=key,
                # The last candidate may take its time: there is nothing left to fall back to.
                timeout_s=first_token_timeout_s if index < len(candidates) - 1 else None,
                first_token_timeout_s=first_token_timeout_s,
                sole=len(candidates) == 1,
            )
        except _CandidateFailed as failed:
            attempts.append({"model": model.slug, "error": failed.error[:200]})
    detail = "; ".join(f"{a['model']}: {a['error']}" for a in attempts) or "no models to try"
    raise NoCandidateServed(f"no model could serve the call ({detail})")


def _served_on(model: Model, queue: str | None) -> bool:
    """Whether ``model`` can answer on this worker: portable engines run anywhere, local ones
    only on the queue whose processes load them."""
    cls = engine_class(model.engine)
    return not queue or cls.portable or cls.queue_for(model.settings) == queue


def _reason(candidate: Candidate, attempts: list[dict]) -> str:
    """Why this candidate serves: the router's reason, and the failure it stands in for."""
    if not attempts:
        return candidate.reason
    last = attempts[-1]
    return f"{candidate.reason}; after {last['model']} failed ({last['error']})"


async def _answer_from_cache(
    hit: cache.CachedAnswer,
    *,
    on_token: Callable[[str], Awaitable[None]],
    meter: _Meter,
    attempts: list[dict],
) -> CallResult:
    """Replay a cached answer as one token; metered as a hit (it costs nothing)."""
    started = time.monotonic()
    await on_token(hit.text)
    emit_ms = (time.monotonic() - started) * 1000
    await meter.record(
        input_tokens=hit.input_tokens,
        output_tokens=hit.output_tokens,
        latency_ms=emit_ms,
        ttft_ms=emit_ms,
        cache_hit=True,
    )
    return CallResult(
        text=hit.text,
        input_tokens=hit.input_tokens,
        output_tokens=hit.output_tokens,
        finish_reason=hit.finish_reason,
        model=meter.model,
        reason=meter.reason,
        cache_hit=True,
        ttft_ms=emit_ms,
        model_ms=0.0,
        emit_ms=emit_ms,
        attempts=attempts,
    )


async def _answer_from_engine(
    *,
    engine_for: Callable[[Model], Awaitable[Any]],
    on_token: Callable[[str], Awaitable[None]],
    meter: _Meter,
    attempts: list[dict],
    cache_key: str | None,
    timeout_s: float | None,
    first_token_timeout_s: float | None,
    sole: bool,
) -> CallResult:
    """Stream the answer of ``meter.model``, meter it and cache it (unless it called tools).

    A failure is metered too, then raised: as EngineError once the user has seen part of the
    answer (another model cannot continue it), as the engine's own error for a model named
    directly (``sole``), else as ``_CandidateFailed`` so that the next candidate is tried."""
    model = meter.model
    streaming = _Streaming()
    try:
        engine = await engine_for(model)
        # Refused before it runs: a prompt the model cannot take would be cut or fail inside.
        engine.context_check(meter.request, model=model.name)
        await streaming.consume(engine.stream(meter.request), on_token, timeout_s)
    except Exception as exc:  # _FirstTokenTimeout included
        error = (
            f"no first token within {first_token_timeout_s:g} s"
            if isinstance(exc, _FirstTokenTimeout)
            else str(exc) or type(exc).__name__
        )
        await meter.record(
            latency_ms=(time.monotonic() - streaming.started) * 1000, ok=False, error=error
        )
        if streaming.parts:
            raise EngineError(f"{model.slug} failed while answering: {error}") from exc
        if sole:
            raise
        raise _CandidateFailed(error) from exc
    ended = time.monotonic()
    started, final = streaming.started, streaming.final
    result = CallResult(
        text="".join(streaming.parts),
        input_tokens=final.input_tokens or 0,
        output_tokens=final.output_tokens or 0,
        finish_reason=final.finish_reason or "stop",
        model=model,
        reason=meter.reason,
        cache_hit=False,
        ttft_ms=((streaming.first_token_at or ended) - started) * 1000,
        model_ms=(ended - started - streaming.emitting) * 1000,
        emit_ms=streaming.emitting * 1000,
        tool_calls=final.tool_calls,
        attempts=attempts,
    )
    await meter.record(
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        latency_ms=(ended - started) * 1000,
        ttft_ms=result.ttft_ms,
    )
    if cache_key and not final.tool_calls:
        await cache.cache_put(
            cache_key,
            cache.CachedAnswer(
                text=result.text,
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                finish_reason=result.finish_reason,
                model=model.slug,
            ),
        )
    return result
