"""Reads for the alerts pages: a flow's rules and its firing history."""

from __future__ import annotations

from django.db.models import QuerySet

from flows.models import Flow
from observe.models import AlertFiring, AlertRule

HISTORY_ROWS = 100


def alert_rules_of(flow: Flow) -> QuerySet[AlertRule]:
    return AlertRule.objects.filter(flow=flow).order_by("name", "id")


def alert_firings_of(flow: Flow) -> list[AlertFiring]:
    """The flow's latest firings, newest first (at most ``HISTORY_ROWS``)."""
    return list(
        AlertFiring.objects.filter(rule__flow=flow)
        .select_related("rule")
        .order_by("-fired_at", "-id")[:HISTORY_ROWS]
    )
