"""The dashboard's figures: runs, error rate, run duration and time to first token, tokens and
cost, per day and per flow, version, model and API key; feedback and cache hit rates. Each one
aggregated by PostgreSQL; a constant number of queries whatever the period or the data.

Who sees what: runs and their feedback of the flows (and agents) the member may view, as the runs
list; the model calls made for those flows, and the calls made outside any flow (the
playground's) as the usage page shows them (a limited member: only their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, F, FloatField, Func, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from catalog.models import Usage
from catalog.selectors.usage import Percentile, day_start
from conversations.models import Message
from flows.models import FlowKind, Run, RunStatus
from observe.selectors import visible_flows
from studio.roles import UNLIMITED_ROLES
from workspaces.access import membership
from workspaces.models import Workspace
from workspaces.selectors import keys_for

PERIODS = (7, 30, 90)

# A finished run's duration in milliseconds; NULL for a run not started or not finished, which
# the percentiles then leave out.
DURATION_MS = Func(
    F("finished_at") - F("started_at"),
    template="(EXTRACT(EPOCH FROM %(expressions)s) * 1000)::float8",
    output_field=FloatField(),
)
# Time to first token is the model's: an answer from the cache has none worth counting.
_SERVED = Q(cache_hit=False)


@dataclass(frozen=True)
class Period:
    since: date
    until: date

    @classmethod
    def last(cls, days: int) -> Period:
        today = timezone.localdate()
        return cls(since=today - timedelta(days=days - 1), until=today)

    @property
    def days(self) -> list[date]:
        return [self.since + timedelta(days=n) for n in range((self.until - self.since).days + 1)]


def run_figures() -> dict[str, Any]:
    """Runs, failed runs and run-time p50/p95: the aggregates the dashboard, the alerts and the
    A/B arms all read, so the three agree on what a run's time and an error are."""
    return {
        "runs": Count("id"),
        "errors": Count("id", filter=Q(status=RunStatus.FAILED)),
        "duration_p50": Percentile(DURATION_MS, 0.5),
        "duration_p95": Percentile(DURATION_MS, 0.95),
    }


_ZERO_COST = Value(Decimal(0), output_field=DecimalField(max_digits=14, decimal_places=8))


def _usage_figures() -> dict[str, Any]:
    # Named apart from the fields they sum: an annotation may not shadow a model field.
    return {
        "calls": Count("id"),
        "tokens_in": Coalesce(Sum("input_tokens"), 0),
        "tokens_out": Coalesce(Sum("output_tokens"), 0),
        "tokens": Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
        "total_cost": Coalesce(Sum("cost"), _ZERO_COST),
        "cache_hits": Count("id", filter=Q(cache_hit=True)),
        "ttft_p50": Percentile("ttft_ms", 0.5, filter=_SERVED),
        "ttft_p95": Percentile("ttft_ms", 0.95, filter=_SERVED),
    }


def dashboard_runs(workspace_id: int, flow_ids: list[int], period: Period) -> QuerySet[Run]:
    """The runs of ``flow_ids`` (already narrowed to those ``user`` may view) in ``period``."""
    return Run.objects.filter(
        workspace_id=workspace_id,
        flow_id__in=flow_ids,
        created_at__gte=day_start(period.since),
        created_at__lt=day_start(period.until + timedelta(days=1)),
    )


def dashboard_usage(
    user, workspace_id: int, flow_ids: list[int], period: Period, *, flowless: bool
) -> QuerySet[Usage]:
    """The model calls of ``flow_ids`` in ``period``, and with ``flowless`` the calls of no flow
    that the usage page would show ``user``."""
    scope = Q(flow_id__in=flow_ids)
    found = membership(user, workspace_id)
    if flowless and found is not None:
        outside = Q(flow_id__isnull=True)
        if found.limited and found.role not in UNLIMITED_ROLES:
            outside &= Q(user=user)
        scope |= outside
    return Usage.objects.filter(
        scope,
        workspace_id=workspace_id,
        created_at__gte=day_start(period.since),
        created_at__lt=day_start(period.until + timedelta(days=1)),
    )


def dashboard_report(
    user, workspace: Workspace, *, days: int, flow_id: int | None = None
) -> dict[str, Any]:
    """Everything the dashboard shows for the last ``days`` days, of one flow or agent
    (``flow_id``, which the caller checked ``user`` may view) or of all those they may view.
    Thirteen queries of its own (and the scope's membership look-ups), whatever the data."""
    period = Period.last(days)
    visible = sorted(visible_flows(user, workspace.id).values_list("pk", flat=True))
    if flow_id is None:
        flow_ids = visible
    else:
        flow_ids = [flow_id] if flow_id in visible else []
    runs = dashboard_runs(workspace.id, flow_ids, period)
    usage = dashboard_usage(user, workspace.id, flow_ids, period, flowless=flow_id is None)
    return {
        "period": period,
        "totals": _totals(runs, usage),
        "by_day": _by_day(runs, usage, period),
        "by_flow": _by_flow(runs, usage),
        "by_version": list(
            runs.values("flow__name", "flow__kind", "flow_version__number", "flow_version__kind")
            .annotate(**run_figures())
            .order_by("-runs", "flow__name", "flow_version__number")
        ),
        "by_model": [
            _with_rate(row)
            for row in usage.values("model_slug")
            .annotate(**_usage_figures())
            .order_by("-calls", "model_slug")
        ],
        "by_key": _by_key(user, workspace, usage),
    }


def _totals(runs: QuerySet[Run], usage: QuerySet[Usage]) -> dict[str, Any]:
    """The period's figures, with the error, cache hit and feedback rates (three queries)."""
    totals = {**runs.aggregate(**run_figures()), **usage.aggregate(**_usage_figures())}
    totals["error_rate"] = _ratio(totals["errors"], totals["runs"])
    totals["cache_hit_rate"] = _ratio(totals["cache_hits"], totals["calls"])
    # A rating is a message's, and a message names its run: the runs in scope, in the period.
    feedback = Message.objects.filter(run__in=runs.values("pk"), feedback__isnull=False).aggregate(
        up=Count("id", filter=Q(feedback__gt=0)), down=Count("id", filter=Q(feedback__lt=0))
    )
    totals["feedback_up"], totals["feedback_down"] = feedback["up"], feedback["down"]
    totals["feedback_ratio"] = _ratio(feedback["up"], feedback["up"] + feedback["down"])
    return totals


def _by_day(runs: QuerySet[Run], usage: QuerySet[Usage], period: Period) -> list[dict[str, Any]]:
    """Each day of ``period`` (in the current time zone), oldest first (two queries)."""
    run_days = {
        row["day"]: row
        for row in runs.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(**run_figures())
    }
    usage_days = {
        row["day"]: row
        for row in usage.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(**_usage_figures())
    }
    return [_day(day, run_days.get(day), usage_days.get(day)) for day in period.days]


def _ratio(part: int | None, whole: int | None) -> float | None:
    return part / whole if whole else None


def _with_rate(row: dict[str, Any]) -> dict[str, Any]:
    row["cache_hit_rate"] = _ratio(row["cache_hits"], row["calls"])
    return row


_NO_RUNS = {"runs": 0, "errors": 0, "duration_p50": None, "duration_p95": None}
_NO_CALLS = {
    "calls": 0,
    "tokens_in": 0,
    "tokens_out": 0,
    "tokens": 0,
    "total_cost": Decimal(0),
    "cache_hits": 0,
    "ttft_p50": None,
    "ttft_p95": None,
}


def _day(day: date, runs: dict[str, Any] | None, usage: dict[str, Any] | None) -> dict[str, Any]:
    """One day's figures; a day without runs or calls has zeros, so a chart has no gaps."""
    row = {**_NO_RUNS, **(runs or {}), **_NO_CALLS, **(usage or {}), "day": day}
    row["error_rate"] = _ratio(row["errors"], row["runs"])
    return row


def _by_flow(runs: QuerySet[Run], usage: QuerySet[Usage]) -> list[dict[str, Any]]:
    """Per flow or agent, most runs first: its runs' figures and its calls' (two queries)."""
    rows = {
        row["flow_id"]: {**_NO_CALLS, **row, "agent": row["flow__kind"] == FlowKind.AGENT}
        for row in runs.values("flow_id", "flow__name", "flow__kind").annotate(**run_figures())
    }
    for row in usage.filter(flow_id__in=rows).values("flow_id").annotate(**_usage_figures()):
        rows[row["flow_id"]].update(row)
    for row in rows.values():
        row["error_rate"] = _ratio(row["errors"], row["runs"])
    return sorted(rows.values(), key=lambda row: (-row["runs"], row["flow__name"]))


def _by_key(user, workspace: Workspace, usage: QuerySet[Usage]) -> list[dict[str, Any]]:
    """Per API key, calls made through a key only, most calls first. A key's name is shown to
    those who may see the key (the keys page's rule), as the usage export does."""
    visible = set(keys_for(user, workspace).values_list("id", flat=True))
    rows = (
        usage.exclude(api_key=None)
        .values("api_key_id", "api_key__name")
        .annotate(**_usage_figures())
        .order_by("-calls", "api_key_id")
    )
    return [
        {**row, "name": row["api_key__name"] if row["api_key_id"] in visible else "(hidden)"}
        for row in rows
    ]


def dashboard_series(report: dict[str, Any]) -> dict[str, Any]:
    """The per-day figures as the charts read them: parallel lists of plain numbers."""
    days = report["by_day"]
    return {
        "labels": [row["day"].isoformat() for row in days],
        "runs": [row["runs"] for row in days],
        "errors": [row["errors"] for row in days],
        "error_rate": [row["error_rate"] for row in days],
        "duration_p50": [row["duration_p50"] for row in days],
        "duration_p95": [row["duration_p95"] for row in days],
        "ttft_p50": [row["ttft_p50"] for row in days],
        "ttft_p95": [row["ttft_p95"] for row in days],
        "input_tokens": [row["tokens_in"] for row in days],
        "output_tokens": [row["tokens_out"] for row in days],
        "cost": [float(row["total_cost"]) for row in days],
    }
