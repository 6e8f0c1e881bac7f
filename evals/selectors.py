"""Reads of datasets, their cases and versions."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from agents.models import Agent
from evals.access import agents_for, datasets_scope, flows_for
from evals.models import Case, Dataset, DatasetVersion
from flows.models import Run


def datasets_visible(user, workspace_id: int) -> QuerySet[Dataset]:
    """The datasets ``user`` may read, with their target and how many cases each has."""
    return (
        datasets_scope(user, workspace_id, "view")
        .select_related("flow", "agent")
        .annotate(case_count=Count("cases", distinct=True))
    )


def dataset_cases(dataset: Dataset) -> QuerySet[Case]:
    return dataset.cases.order_by("id")


def dataset_versions(dataset: Dataset) -> QuerySet[DatasetVersion]:
    return dataset.versions.select_related("created_by").order_by("-number")


def targets_changeable(user, workspace_id: int) -> list[tuple[str, str]]:
    """The flows and agents ``user`` may make a dataset for, as (``flow:slug``, label)."""
    flows = flows_for(user, workspace_id, "change").order_by("name")
    agents = agents_for(user, workspace_id, "change").order_by("name")
    return [(f"flow:{f.slug}", f"Flow: {f.name}") for f in flows] + [
        (f"agent:{a.slug}", f"Agent: {a.name}") for a in agents
    ]


def datasets_for_run(user, run: Run) -> QuerySet[Dataset]:
    """The datasets a run's inputs and outputs may be added to: those of its flow (or of the
    agent its flow serves) that ``user`` may change."""
    agent = Agent.objects.filter(flow=run.flow_id).first()
    target = {"agent": agent} if agent else {"flow": run.flow_id}
    return datasets_scope(user, run.workspace_id, "change").filter(**target).order_by("name")
