"""Usage metering: one row per model call, written by whoever made the call; its tokens count
against the daily quotas of its workspace and API key (``workspaces.quotas``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from catalog.models import Model, Usage
from workspaces.quotas import atokens_spend, tokens_spend

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
    flow_slug, run_id, node_id, agent_slug, api_key_id, user_id. A cache hit costs nothing."""
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


def _quota_tokens(row: Usage) -> int:
    # What the quota counts is what costs: a cache hit or a failed call spends nothing.
    return 0 if row.cache_hit or not row.ok else row.input_tokens + row.output_tokens


async def ausage_record(**kwargs: Any) -> Usage:
    """Record one call (``usage_row``'s arguments) and spend its tokens."""
    row = usage_row(**kwargs)
    await row.asave(force_insert=True)
    await atokens_spend(
        workspace_id=row.workspace_id, api_key_id=row.api_key_id, tokens=_quota_tokens(row)
    )
    return row


def usage_record_many(rows: list[Usage]) -> None:
    """Record calls kept by their caller to be written with its own transaction; their tokens
    are spent once it commits (a caller whose transaction fails records them again)."""
    if rows:
        Usage.objects.bulk_create(rows)
        transaction.on_commit(lambda: _spend_many(rows))


def _spend_many(rows: list[Usage]) -> None:
    spent: dict[tuple[int, int | None], int] = {}
    for row in rows:
        subject = (row.workspace_id, row.api_key_id)
        spent[subject] = spent.get(subject, 0) + _quota_tokens(row)
    for (workspace_id, api_key_id), tokens in spent.items():
        tokens_spend(workspace_id=workspace_id, api_key_id=api_key_id, tokens=tokens)


def usage_record(**kwargs: Any) -> Usage:
    """``ausage_record`` for synchronous callers."""
    from asgiref.sync import async_to_sync

    return async_to_sync(ausage_record)(**kwargs)
