"""Reads of flows and runs."""

from __future__ import annotations

from django.db.models import QuerySet

from flows.models import Flow, NodeResult, Run


def flows_for_workspace(workspace_id: int) -> QuerySet[Flow]:
    return Flow.objects.filter(workspace_id=workspace_id).select_related("published_version")


def published_flows(workspace_id: int) -> QuerySet[Flow]:
    return flows_for_workspace(workspace_id).filter(published_version__isnull=False)


def runs_for_flow(flow: Flow, limit: int = 50) -> list[Run]:
    return list(flow.runs.select_related("flow_version")[:limit])


def run_nodes(run: Run) -> QuerySet[NodeResult]:
    return run.node_results.all()
