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
from catalog.models import Model
from catalog.router import Candidate
from catalog.services.usage import ausage_record, usage_cost


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
) -> CallResult:
    """Serve one call from the first candidate that answers. ``queue``: the worker queue this
    runs on; a local model served on another queue is skipped (it is not loaded here).
    ``usage``: what the usage rows record besides the call (flow, run, node, key, user, route).
    """
    usage = usage or {}
    attempts: list[dict] = []
    for index, candidate in enumerate(candidates):
        model = candidate.model
        reason = candidate.reason
        if attempts:
            last = attempts[-1]
            reason = f"{reason}; after {last['model']} failed ({last['error']})"
        cls = engine_class(model.engine)
        if queue and not cls.portable and cls.queue_for(model.settings) != queue:
            attempts.append({"model": model.slug, "error": f"not served on the {queue} queue"})
            continue
        request = request_for(model)
        key = cache.cache_key(workspace_id, model, request) if use_cache else None
        if key and (hit := await cache.cache_get(key)) is not None:
            started = time.monotonic()
            await on_token(hit.text)
            emit_ms = (time.monotonic() - started) * 1000
            await ausage_record(
                workspace_id=workspace_id,
                model=model,
                input_tokens=hit.input_tokens,
                output_tokens=hit.output_tokens,
                latency_ms=emit_ms,
                ttft_ms=emit_ms,
                cache_hit=True,
                reason=reason,
                adapter=request.adapter.name if request.adapter else "",
                **usage,
            )
            return CallResult(
                text=hit.text,
                input_tokens=hit.input_tokens,
                output_tokens=hit.output_tokens,
                finish_reason=hit.finish_reason,
                model=model,
                reason=reason,
                cache_hit=True,
                ttft_ms=emit_ms,
                model_ms=0.0,
                emit_ms=emit_ms,
                attempts=attempts,
            )
        started = time.monotonic()
        first_token_at: float | None = None
        emitting = 0.0
        parts: list[str] = []
        final = Chunk()
        try:
            engine = await engine_for(model)
            timeout = first_token_timeout_s if index < len(candidates) - 1 else None
            async for chunk in _with_first_token_timeout(engine.stream(request), timeout):
                if chunk.text:
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                    parts.append(chunk.text)
                    emit_started = time.monotonic()
                    await on_token(chunk.text)
                    emitting += time.monotonic() - emit_started
                if chunk.finish_reason:
                    final = chunk
        except Exception as exc:  # _FirstTokenTimeout included
            error = (
                f"no first token within {first_token_timeout_s:g} s"
                if isinstance(exc, _FirstTokenTimeout)
                else str(exc) or type(exc).__name__
            )
            await ausage_record(
                workspace_id=workspace_id,
                model=model,
                latency_ms=(time.monotonic() - started) * 1000,
                ok=False,
                error=error,
                reason=reason,
                adapter=request.adapter.name if request.adapter else "",
                **usage,
            )
            if parts:  # the user has seen part of this answer: another model cannot continue it
                raise EngineError(f"{model.slug} failed while answering: {error}") from exc
            if len(candidates) == 1:  # a model named directly: its own error is the reason
                raise
            attempts.append({"model": model.slug, "error": error[:200]})
            continue
        ended = time.monotonic()
        text = "".join(parts)
        result = CallResult(
            text=text,
            input_tokens=final.input_tokens or 0,
            output_tokens=final.output_tokens or 0,
            finish_reason=final.finish_reason or "stop",
            model=model,
            reason=reason,
            cache_hit=False,
            ttft_ms=((first_token_at or ended) - started) * 1000,
            model_ms=(ended - started - emitting) * 1000,
            emit_ms=emitting * 1000,
            tool_calls=final.tool_calls,
            attempts=attempts,
        )
        await ausage_record(
            workspace_id=workspace_id,
            model=model,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            latency_ms=(ended - started) * 1000,
            ttft_ms=result.ttft_ms,
            reason=reason,
            adapter=request.adapter.name if request.adapter else "",
            **usage,
        )
        if key and not final.tool_calls:
            await cache.cache_put(
                key,
                cache.CachedAnswer(
                    text=text,
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    finish_reason=result.finish_reason,
                    model=model.slug,
                ),
            )
        return result
    detail = "; ".join(f"{a['model']}: {a['error']}" for a in attempts) or "no models to try"
    raise NoCandidateServed(f"no model could serve the call ({detail})")
