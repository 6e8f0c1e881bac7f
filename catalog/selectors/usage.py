"""Reads of usage: which calls a member may see, narrowed by the usage page's filters, and their
totals, per day and per model, each computed by PostgreSQL in one query.

Who sees what: every role has ``catalog.view_usage`` and sees the workspace's calls; a limited
member (outside the owner and admin roles, as everywhere) sees only the calls they made
themselves. Their calls went through models and flows shared with them, whereas the workspace's
other calls would name flows, keys and models that were not.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    DecimalField,
    F,
    FloatField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from catalog.models import Usage
from studio.roles import UNLIMITED_ROLES
from workspaces.access import membership


class Percentile(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``: the value
    below which ``fraction`` of the rows fall, interpolated; NULLs are ignored, NULL for no rows.
    """

    function = "PERCENTILE_CONT"
    name = "Percentile"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        fraction = float(fraction)
        if not 0 <= fraction <= 1:
            raise ValueError(f"a percentile's fraction lies in [0, 1], not {fraction}")
        # A float's repr is a plain SQL numeric literal; it is never user input.
        super().__init__(expression, fraction=repr(fraction), **extra)


# Latency is the model's: answers from the cache took no model time and would drag it down.
_SERVED = Q(cache_hit=False)
_ZERO_COST = Value(Decimal(0), output_field=DecimalField(max_digits=14, decimal_places=8))


def _sums() -> dict[str, Any]:
    # Named apart from the fields they sum: an annotation may not shadow a model field.
    return {
        "calls": Count("id"),
        "tokens_in": Coalesce(Sum("input_tokens"), 0),
        "tokens_out": Coalesce(Sum("output_tokens"), 0),
        "tokens": Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
        "total_cost": Coalesce(Sum("cost"), _ZERO_COST),
    }


def usage_visible(user, workspace_id: int) -> QuerySet[Usage]:
    """The workspace's calls ``user`` may see (see the module docstring); none for a
    non-member."""
    found = membership(user, workspace_id)
    if found is None:
        return Usage.objects.none()
    rows = Usage.objects.filter(workspace_id=workspace_id)
    if found.limited and found.role not in UNLIMITED_ROLES:
        rows = rows.filter(user=user)
    return rows


def usage_filtered(
    workspace_id: int,
    *,
    user,
    since: date,
    until: date,
    model_id: int | None = None,
    flow_slug: str = "",
    api_key_id: int | None = None,
    source: str = "",
    agent_slug: str = "",
) -> QuerySet[Usage]:
    """The calls ``user`` may see made from the start of day ``since`` to the end of day
    ``until`` (both in the current time zone), narrowed by the filters that are set."""
    rows = usage_visible(user, workspace_id).filter(
        created_at__gte=day_start(since), created_at__lt=day_start(until + timedelta(days=1))
    )
    if model_id is not None:
        rows = rows.filter(model_id=model_id)
    if flow_slug:
        rows = rows.filter(flow_slug=flow_slug)
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
    if source:
        rows = rows.filter(source=source)
    if agent_slug:
        rows = rows.filter(agent_slug=agent_slug)
    return rows


def usage_flow_slugs(user, workspace_id: int) -> list[str]:
    """The flows that have calls ``user`` may see, for the flow filter.

    One ``DISTINCT`` over the workspace's usage: the catalog does not read the flows app, and a
    flow deleted since still has its usage.
    """
    rows = usage_visible(user, workspace_id).exclude(flow_slug="")
    return list(rows.order_by("flow_slug").values_list("flow_slug", flat=True).distinct())


def usage_agent_slugs(user, workspace_id: int) -> list[str]:
    """The agents that have calls ``user`` may see, for the agent filter (as the flow filter:
    one ``DISTINCT``, no read of the agents app)."""
    rows = usage_visible(user, workspace_id).exclude(agent_slug="")
    return list(rows.order_by("agent_slug").values_list("agent_slug", flat=True).distinct())


def usage_totals(rows: QuerySet[Usage]) -> dict[str, Any]:
    """Calls, tokens, cost, cache hits, errors, and the median and 95th percentile of latency and
    of time to first token (over calls the model served, not the cache) of ``rows``."""
    return rows.aggregate(
        **_sums(),
        cache_hits=Count("id", filter=Q(cache_hit=True)),
        errors=Count("id", filter=Q(ok=False)),
        latency_p50=Percentile("latency_ms", 0.5, filter=_SERVED),
        latency_p95=Percentile("latency_ms", 0.95, filter=_SERVED),
        ttft_p50=Percentile("ttft_ms", 0.5, filter=_SERVED),
        ttft_p95=Percentile("ttft_ms", 0.95, filter=_SERVED),
    )


def usage_by_day(rows: QuerySet[Usage], since: date, until: date) -> list[dict[str, Any]]:
    """Calls, tokens and cost per day (in the current time zone) from ``since`` to ``until``,
    oldest first; a day without calls is there with zeros, so a chart's axis has no gaps."""
    found = {
        row["day"]: row
        for row in rows.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(**_sums())
        .order_by("day")
    }
    # A loop over the days of the range (at most a year: the filter form's limit), not over calls.
    days = (since + timedelta(days=n) for n in range((until - since).days + 1))
    return [found.get(day) or {"day": day, **_EMPTY_DAY} for day in days]


_EMPTY_DAY = {"calls": 0, "tokens_in": 0, "tokens_out": 0, "tokens": 0, "total_cost": Decimal(0)}


def usage_by_model(rows: QuerySet[Usage]) -> list[dict[str, Any]]:
    """Per model slug, most calls first: calls, tokens, cost, errors, average and median latency,
    average time to first token (those two over calls the model served), and the share of calls
    answered from the cache (0 to 1)."""
    return list(
        rows.values("model_slug")
        .annotate(
            **_sums(),
            errors=Count("id", filter=Q(ok=False)),
            latency_avg=Avg("latency_ms", filter=_SERVED),
            latency_p50=Percentile("latency_ms", 0.5, filter=_SERVED),
            ttft_avg=Avg("ttft_ms", filter=_SERVED),
            cache_hit_rate=Avg(
                Case(When(cache_hit=True, then=Value(1.0)), default=Value(0.0)),
                output_field=FloatField(),
            ),
        )
        .order_by("-calls", "model_slug")
    )


def usage_by_agent(rows: QuerySet[Usage]) -> list[dict[str, Any]]:
    """Per agent (the calls its steps made; calls of no agent left out), most calls first:
    calls, tokens, cost, errors."""
    return list(
        rows.exclude(agent_slug="")
        .values("agent_slug")
        .annotate(**_sums(), errors=Count("id", filter=Q(ok=False)))
        .order_by("-calls", "agent_slug")
    )


def usage_report(rows: QuerySet[Usage], since: date, until: date) -> dict[str, Any]:
    """Everything the usage page shows of ``rows``: four queries."""
    return {
        "totals": usage_totals(rows),
        "by_day": usage_by_day(rows, since, until),
        "by_model": usage_by_model(rows),
        "by_agent": usage_by_agent(rows),
    }


def usage_export_rows(rows: QuerySet[Usage]) -> QuerySet:
    """The calls one by one, newest first, as plain values for the CSV export (one query, read
    in chunks)."""
    return rows.order_by("-created_at", "-id").values(
        "created_at",
        "model_slug",
        "adapter",
        "route_slug",
        "reason",
        "flow_slug",
        "run_id",
        "node_id",
        "agent_slug",
        "source",
        "user__username",
        "api_key_id",
        "api_key__name",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "ttft_ms",
        "cost",
        "cache_hit",
        "ok",
        "error",
    )


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
