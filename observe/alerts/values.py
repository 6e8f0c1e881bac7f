"""The value each alert metric has now for a rule's flow, computed by PostgreSQL; None when the
window holds too few finished runs (or ratings) to judge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from catalog.models import Usage
from catalog.selectors.usage import day_start
from conversations.models import Message
from flows.models import TERMINAL, Run
from observe.dashboards import run_figures
from observe.models import AlertMetric, AlertRule


def _window_runs(rule: AlertRule, now: datetime) -> QuerySet[Run]:
    # Runs still queued or running have no outcome yet: counting them would dilute the rate.
    return Run.objects.filter(
        workspace_id=rule.workspace_id,
        flow_id=rule.flow_id,
        status__in=TERMINAL,
        created_at__gte=now - timedelta(minutes=rule.window_minutes),
        created_at__lte=now,
    )


def _error_rate(rule: AlertRule, now: datetime) -> float | None:
    figures = _window_runs(rule, now).aggregate(**run_figures())
    if not figures["runs"] or figures["runs"] < rule.min_runs:
        return None
    return 100 * figures["errors"] / figures["runs"]


def _p95_latency(rule: AlertRule, now: datetime) -> float | None:
    figures = _window_runs(rule, now).aggregate(**run_figures())
    if not figures["runs"] or figures["runs"] < rule.min_runs:
        return None
    return figures["duration_p95"]


def _cost_today(rule: AlertRule, now: datetime) -> float | None:
    """The flow's model calls since midnight in the studio's time zone; no minimum: a cost is
    a cost however few the runs."""
    today = timezone.localdate(now)
    total = Usage.objects.filter(
        workspace_id=rule.workspace_id,
        flow_id=rule.flow_id,
        created_at__gte=day_start(today),
        created_at__lte=now,
    ).aggregate(total=Sum("cost"))["total"]
    return float(total or Decimal(0))


def _negative_feedback_rate(rule: AlertRule, now: datetime) -> float | None:
    """Thumbs down among the ratings of the window's runs (a rating is its answer's, and an
    answer names its run, as on the dashboard); ``min_runs`` counts ratings here."""
    figures = Message.objects.filter(
        run__in=_window_runs(rule, now).values("pk"), feedback__isnull=False
    ).aggregate(rated=Count("id"), down=Count("id", filter=Q(feedback__lt=0)))
    if not figures["rated"] or figures["rated"] < rule.min_runs:
        return None
    return 100 * figures["down"] / figures["rated"]


MEASURES: dict[str, Callable[[AlertRule, datetime], float | None]] = {
    AlertMetric.ERROR_RATE: _error_rate,
    AlertMetric.P95_LATENCY_MS: _p95_latency,
    AlertMetric.COST_PER_DAY: _cost_today,
    AlertMetric.NEGATIVE_FEEDBACK_RATE: _negative_feedback_rate,
}


def alert_value(rule: AlertRule, *, now: datetime | None = None) -> float | None:
    """The rule's metric now (one query)."""
    return MEASURES[rule.metric](rule, now or timezone.now())
