"""Comparisons of evaluation runs kept for a flow: the service that stores one, and the reads
of the comparison page and the flow's publish panel. The comparing itself is pure
(``evals.comparison``); callers have checked access (``evals.access``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from evals.access import datasets_scope
from evals.comparison import Comparison, ComparisonRefused, comparable, compare, side_of
from evals.models import Dataset, EvalComparison, EvalRun, EvalStatus
from flows.models import Flow

# What the publish panel reads of each case: the answers may be long and it shows none.
_PANEL_FIELDS = ("index", "case_id", "scores", "latency_ms", "tokens", "cost", "error")


def eval_comparison_create(
    *, dataset: Dataset, baseline: EvalRun, candidate: EvalRun, actor: Any = None
) -> EvalComparison:
    """Keep ``baseline`` against ``candidate`` as the flow's latest comparison. ValidationError
    (in words for the member) unless both are finished runs of ``dataset``. Not audited: a
    comparison changes nothing, it records what someone looked at."""
    for eval_run in (baseline, candidate):
        if eval_run.dataset_id != dataset.id:
            raise ValidationError(
                f"Evaluation {eval_run.id} is not of the dataset {dataset.name}: "
                "compare two evaluations of one dataset."
            )
    try:
        comparable(side_of(baseline, []), side_of(candidate, []))
    except ComparisonRefused as exc:
        raise ValidationError(str(exc)) from None
    return EvalComparison.objects.create(
        workspace_id=dataset.workspace_id,
        flow_id=baseline.flow_id,
        baseline=baseline,
        candidate=candidate,
        created_by=actor,
    )


def runs_finished(dataset: Dataset) -> QuerySet[EvalRun]:
    """The dataset's evaluations that may be compared, newest first."""
    return dataset.eval_runs.filter(status=EvalStatus.DONE).select_related(
        "flow_version", "base_version", "dataset_version"
    )


def dataset_comparison(dataset: Dataset, comparison_id: int) -> EvalComparison | None:
    """A comparison of ``dataset``'s runs, or None (another dataset's, or no such id)."""
    return (
        EvalComparison.objects.filter(
            id=comparison_id, workspace_id=dataset.workspace_id, baseline__dataset=dataset
        )
        .select_related(
            "created_by",
            "baseline__flow_version",
            "baseline__base_version",
            "baseline__dataset_version",
            "candidate__flow_version",
            "candidate__base_version",
            "candidate__dataset_version",
        )
        .first()
    )


def comparison_build(kept: EvalComparison, *, with_output: bool = True) -> Comparison | None:
    """The comparison of a kept pair, from their results as they are now; None for a pair
    that does not compare (only a row stored around ``eval_comparison_create`` can be one:
    a finished run stays finished)."""
    sides = []
    for eval_run in (kept.baseline, kept.candidate):
        results = eval_run.results.order_by("index")
        if not with_output:
            results = results.only(*_PANEL_FIELDS)
        sides.append(side_of(eval_run, results, with_output=with_output))
    try:
        return compare(sides[0], sides[1])
    except ComparisonRefused:
        return None


def flow_comparison_last(user, flow: Flow) -> EvalComparison | None:
    """The latest comparison of ``flow``'s evaluations on a dataset ``user`` may read."""
    visible = datasets_scope(user, flow.workspace_id, "view")
    return (
        EvalComparison.objects.filter(
            flow=flow, workspace_id=flow.workspace_id, baseline__dataset__in=visible
        )
        .select_related(
            "baseline__dataset",
            "baseline__flow_version",
            "baseline__base_version",
            "candidate__flow_version",
            "candidate__base_version",
        )
        .first()
    )
