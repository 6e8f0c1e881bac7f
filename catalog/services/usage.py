"""Usage metering: one row per model call, written by whoever made the call."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from catalog.models import Model, Usage

_MILLION = Decimal(1_000_000)


def usage_cost(model: Model | None, input_tokens: int, output_tokens: int) -> Decimal:
    """What a call cost at the model's prices per million tokens (0 for an unknown model)."""
    if model is None:
        return Decimal(0)
    return (model.price_input * input_tokens + model.price_output * output_tokens) / _MILLION


def usage_row(
    *,
    workspace_id: int,
    model: Model | None,
    model_slug: str = "",
    source: str = "flow",
    input_tokens: int = 0,
    output_tokens: int = 0,
    latency_ms: float = 0.0,
    ttft_ms: float | None = None,
    cache_hit: bool = False,
    ok: bool = True,
    error: str = "",
    **context: Any,
) -> Usage:
    """The row of one call, not saved yet. ``context``: adapter, route_slug, reason, flow_id,
    flow_slug, run_id, node_id, api_key_id, user_id. A cache hit costs nothing."""
    cost = Decimal(0) if cache_hit or not ok else usage_cost(model, input_tokens, output_tokens)
    return Usage(
        workspace_id=workspace_id,
        model=model,
        model_slug=model_slug or (model.slug if model else ""),
        source=source,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        cost=cost,
        cache_hit=cache_hit,
        ok=ok,
        error=error[:500],
        **context,
    )


async def ausage_record(**kwargs: Any) -> Usage:
    """Record one call (``usage_row``'s arguments)."""
    row = usage_row(**kwargs)
    await row.asave(force_insert=True)
    return row


def usage_record_many(rows: list[Usage]) -> None:
    """Record calls kept by their caller to be written with its own transaction."""
    if rows:
        Usage.objects.bulk_create(rows)


def usage_record(**kwargs: Any) -> Usage:
    """``ausage_record`` for synchronous callers."""
    from asgiref.sync import async_to_sync

    return async_to_sync(ausage_record)(**kwargs)
