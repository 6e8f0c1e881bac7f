"""An online A/B experiment's figures per arm (runs, errors, latency, cost, feedback, evaluator
scores) and how confident the difference between the arms is.

The tests are the usual large-sample ones, with the normal distribution (``math.erf``): a
two-proportion z-test for the error rate and the feedback, Welch's t-test for the mean run time
(with ``MIN_SAMPLES`` runs an arm the normal approximation of Student's t is close enough).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Avg, Count, Q, QuerySet, Sum, Variance

from catalog.models import Usage
from conversations.models import Message
from evals.models import EvalRun, EvalStatus
from flows.models import Flow, FlowVersion, Run
from observe.dashboards import DURATION_MS, run_figures

# Fewer samples than this in either arm: no verdict ("not enough data yet").
MIN_SAMPLES = 30


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float | None:
    """The two-sided p-value of the difference between ``hits_a / n_a`` and ``hits_b / n_b``
    (pooled z-test); None when an arm has no samples. Equal proportions of 0 or 1: p = 1."""
    if n_a <= 0 or n_b <= 0:
        return None
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if spread == 0:
        return 1.0
    z = (hits_b / n_b - hits_a / n_a) / spread
    return 2 * (1 - normal_cdf(abs(z)))


def welch_p(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int
) -> float | None:
    """The two-sided p-value of the difference of two means with unequal variances (Welch's t,
    read on the normal distribution); None when an arm has fewer than two samples."""
    if n_a < 2 or n_b < 2:
        return None
    spread = math.sqrt(var_a / n_a + var_b / n_b)
    if spread == 0:
        return 1.0 if mean_a == mean_b else 0.0
    t = (mean_b - mean_a) / spread
    return 2 * (1 - normal_cdf(abs(t)))


@dataclass(frozen=True)
class Verdict:
    """What a person reads under a figure: which arm is better, and how sure that is."""

    text: str
    better: Literal["a", "b", ""] = ""
    confidence: int | None = None  # per cent, rounded down


def verdict(
    p_value: float | None,
    *,
    value_a: float | None,
    value_b: float | None,
    n_a: int,
    n_b: int,
    higher_is_better: bool,
) -> Verdict:
    """ "b is better with 97% confidence", "b is worse …", or why there is no verdict."""
    if min(n_a, n_b) < MIN_SAMPLES or p_value is None or value_a is None or value_b is None:
        return Verdict(f"not enough data yet (n<{MIN_SAMPLES})")
    if value_a == value_b:
        return Verdict("no difference")
    # Never "100%": the tests bound the chance of a fluke, they do not rule it out.
    confidence = min(99, math.floor((1 - p_value) * 100))
    b_better = (value_b > value_a) == higher_is_better
    word = "better" if b_better else "worse"
    text = f"b is {word} with {confidence}% confidence"
    return Verdict(text, "b" if b_better else "a", confidence)


@dataclass(frozen=True)
class ArmFigures:
    arm: Literal["a", "b"]
    version: FlowVersion
    runs: int
    errors: int
    finished: int  # runs with a duration (the latency's samples)
    latency_p50: float | None
    latency_p95: float | None
    latency_mean: float | None
    latency_var: float | None
    cost: Decimal
    feedback_up: int
    feedback_down: int
    # The version's latest finished evaluation: [{"kind", "mean", "pass_rate", "count"}].
    evaluation: EvalRun | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.runs if self.runs else None

    @property
    def cost_per_run(self) -> Decimal | None:
        return self.cost / self.runs if self.runs else None

    @property
    def feedback_rated(self) -> int:
        return self.feedback_up + self.feedback_down

    @property
    def feedback_ratio(self) -> float | None:
        return self.feedback_up / self.feedback_rated if self.feedback_rated else None


@dataclass(frozen=True)
class ExperimentReport:
    flow: Flow
    a: ArmFigures
    b: ArmFigures
    error_rate: Verdict
    feedback: Verdict
    latency: Verdict

    @property
    def weight_b(self) -> int:
        return self.flow.experiment_weight

    @property
    def weight_a(self) -> int:
        return 100 - self.flow.experiment_weight


def experiment_runs(flow: Flow, arm: str) -> QuerySet[Run]:
    """The runs arm ``arm`` served in the flow's running experiment."""
    return Run.objects.filter(flow=flow, arm=arm, created_at__gte=flow.experiment_started_at)


def _latest_evaluation(version: FlowVersion) -> EvalRun | None:
    done = EvalRun.objects.filter(flow_version=version, status=EvalStatus.DONE)
    return done.order_by("-finished_at", "-id").first()


def arm_figures(flow: Flow, arm: Literal["a", "b"], version: FlowVersion) -> ArmFigures:
    """One arm's figures (three queries, and one for its evaluation)."""
    runs = experiment_runs(flow, arm)
    figures = runs.aggregate(
        **run_figures(),
        finished=Count(DURATION_MS),
        mean=Avg(DURATION_MS),
        var=Variance(DURATION_MS, sample=True),
    )
    cost = Usage.objects.filter(run_id__in=runs.values("id")).aggregate(total=Sum("cost"))
    feedback = Message.objects.filter(run__in=runs.values("pk"), feedback__isnull=False).aggregate(
        up=Count("id", filter=Q(feedback__gt=0)), down=Count("id", filter=Q(feedback__lt=0))
    )
    evaluation = _latest_evaluation(version)
    return ArmFigures(
        arm=arm,
        version=version,
        runs=figures["runs"],
        errors=figures["errors"],
        finished=figures["finished"],
        latency_p50=figures["duration_p50"],
        latency_p95=figures["duration_p95"],
        latency_mean=figures["mean"],
        latency_var=figures["var"],
        cost=cost["total"] or Decimal(0),
        feedback_up=feedback["up"],
        feedback_down=feedback["down"],
        evaluation=evaluation,
        scores=list(evaluation.aggregates) if evaluation else [],
    )


def experiment_report(flow: Flow) -> ExperimentReport | None:
    """The running experiment's figures per arm and the verdicts; None when none runs. The
    caller has checked that the member may view the flow."""
    if flow.experiment_version is None or flow.published_version is None:
        return None
    a = arm_figures(flow, "a", flow.published_version)
    b = arm_figures(flow, "b", flow.experiment_version)
    return ExperimentReport(
        flow=flow,
        a=a,
        b=b,
        error_rate=verdict(
            two_proportion_p(a.errors, a.runs, b.errors, b.runs),
            value_a=a.error_rate,
            value_b=b.error_rate,
            n_a=a.runs,
            n_b=b.runs,
            higher_is_better=False,
        ),
        feedback=verdict(
            two_proportion_p(a.feedback_up, a.feedback_rated, b.feedback_up, b.feedback_rated),
            value_a=a.feedback_ratio,
            value_b=b.feedback_ratio,
            n_a=a.feedback_rated,
            n_b=b.feedback_rated,
            higher_is_better=True,
        ),
        latency=verdict(
            welch_p(
                a.latency_mean or 0.0,
                a.latency_var or 0.0,
                a.finished,
                b.latency_mean or 0.0,
                b.latency_var or 0.0,
                b.finished,
            ),
            value_a=a.latency_mean,
            value_b=b.latency_mean,
            n_a=a.finished,
            n_b=b.finished,
            higher_is_better=False,
        ),
    )
