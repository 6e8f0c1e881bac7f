"""The A/B experiment's figures per arm and the confidence of their difference: the tests on
fixed numbers, then the page over stored runs, feedback, usage and evaluations."""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertContains

from catalog.models import Usage
from conversations.models import Conversation, Message, Role
from evals.models import Dataset, DatasetVersion, EvalRun, EvalStatus
from flows.models import Flow, Run, RunStatus
from flows.services import flow_version_save
from flows.services.experiments import flow_experiment_start
from observe.experiments import (
    experiment_report,
    normal_cdf,
    two_proportion_p,
    verdict,
    welch_p,
)

# --- the tests on fixed numbers ----------------------------------------------------------------


def test_the_normal_cdf():
    assert normal_cdf(0) == 0.5
    assert normal_cdf(1.959964) == pytest.approx(0.975, abs=1e-6)


def test_two_proportions():
    # 50/100 against 65/100: pooled 0.575, z = 0.15 / 0.06991 = 2.1456, two-sided p = 0.0319.
    assert two_proportion_p(50, 100, 65, 100) == pytest.approx(0.031905, abs=1e-5)
    assert two_proportion_p(65, 100, 50, 100) == pytest.approx(0.031905, abs=1e-5)
    assert two_proportion_p(10, 40, 10, 40) == pytest.approx(1.0)
    assert two_proportion_p(0, 40, 0, 50) == 1.0  # no errors in either arm
    assert two_proportion_p(3, 0, 1, 10) is None


def test_welch():
    # 1200 ± 300 ms over 40 runs against 1000 ± 250 ms over 45: t = -3.3155, p = 0.000915.
    p = welch_p(1200.0, 300.0**2, 40, 1000.0, 250.0**2, 45)
    assert p == pytest.approx(0.000915, abs=1e-5)
    assert welch_p(1.0, 0.0, 30, 1.0, 0.0, 30) == 1.0
    assert welch_p(1.0, 0.0, 30, 2.0, 0.0, 30) == 0.0
    assert welch_p(1.0, 1.0, 1, 2.0, 1.0, 30) is None


def test_the_verdict_reads_which_arm_is_better():
    common = {"n_a": 100, "n_b": 100}
    better = verdict(0.0319, value_a=0.50, value_b=0.65, higher_is_better=True, **common)
    worse = verdict(0.0319, value_a=0.50, value_b=0.65, higher_is_better=False, **common)
    faster = verdict(0.000915, value_a=1200, value_b=1000, higher_is_better=False, **common)

    assert (better.text, better.better, better.confidence) == (
        "b is better with 96% confidence",
        "b",
        96,
    )
    assert worse.text == "b is worse with 96% confidence"
    assert faster.text == "b is better with 99% confidence"
    assert verdict(0.5, value_a=1, value_b=1, higher_is_better=True, **common).text == (
        "no difference"
    )


def test_too_few_samples_give_no_verdict():
    few = verdict(0.001, value_a=0.1, value_b=0.9, n_a=29, n_b=500, higher_is_better=True)
    assert (few.text, few.better) == ("not enough data yet (n<30)", "")


# --- the report over stored rows ---------------------------------------------------------------


@pytest.fixture
def flow(make_flow, echo_model, owner) -> Flow:
    flow = make_flow(echo_model)
    graph = copy.deepcopy(flow.published_version.graph)
    graph["nodes"][1]["config"]["prompt"] = "B: {{message}}"
    v2 = flow_version_save(flow=flow, graph=graph, user=owner)
    return flow_experiment_start(flow=flow, version=v2, weight=50, user=owner)


def stored_runs(flow: Flow, arm: str, count: int, *, failed: int, ms: float, cost: str) -> None:
    """``count`` finished runs of ``arm`` taking ``ms`` (+ n ms), ``failed`` of them failed,
    each with one model call costing ``cost`` and an answer rated up when n is even."""
    version = flow.published_version if arm == "a" else flow.experiment_version
    conversation = Conversation.objects.create(workspace_id=flow.workspace_id, flow=flow)
    now = timezone.now()
    for n in range(count):
        run = Run.objects.create(
            workspace_id=flow.workspace_id,
            flow=flow,
            flow_version=version,
            arm=arm,
            status=RunStatus.FAILED if n < failed else RunStatus.SUCCEEDED,
            started_at=now,
            finished_at=now + timedelta(milliseconds=ms + n),
            deadline_at=now + timedelta(minutes=5),
        )
        Usage.objects.create(
            workspace_id=flow.workspace_id, model_slug="echo", run_id=run.id, cost=Decimal(cost)
        )
        Message.objects.create(
            conversation=conversation, role=Role.ASSISTANT, run=run, feedback=1 - 2 * (n % 2)
        )


def test_the_report_gives_each_arms_figures_and_verdicts(flow):
    stored_runs(flow, "a", 40, failed=8, ms=1000, cost="0.002")
    stored_runs(flow, "b", 40, failed=1, ms=400, cost="0.001")
    # A run outside the experiment (no arm) counts in neither arm.
    Run.objects.create(
        workspace_id=flow.workspace_id,
        flow=flow,
        flow_version=flow.published_version,
        deadline_at=timezone.now(),
    )

    report = experiment_report(flow)

    a, b = report.a, report.b
    assert (a.runs, a.errors, b.runs, b.errors) == (40, 8, 40, 1)
    assert (a.version.number, b.version.number) == (1, 2)
    assert a.latency_p50 == pytest.approx(1019.5, abs=0.01)
    assert b.latency_p50 == pytest.approx(419.5, abs=0.01)
    assert a.cost_per_run == Decimal("0.002")
    assert (a.feedback_up, a.feedback_down) == (20, 20)
    # 8/40 against 1/40 errors: z = 2.4768, p = 0.0133.
    assert report.error_rate.text == "b is better with 98% confidence"
    assert report.latency.text == "b is better with 99% confidence"  # never 100%
    assert report.feedback.text == "no difference"
    assert (report.weight_a, report.weight_b) == (50, 50)


def test_the_latest_finished_evaluation_gives_each_arms_scores(flow, workspace):
    dataset = Dataset.objects.create(workspace=workspace, slug="qa", name="QA", flow=flow)
    frozen = DatasetVersion.objects.create(dataset=dataset, number=1)

    def evaluation(version, status, mean):
        return EvalRun.objects.create(
            workspace=workspace,
            dataset=dataset,
            dataset_version=frozen,
            flow=flow,
            flow_version=version,
            status=status,
            finished_at=timezone.now(),
            aggregates=[{"kind": "exact_match", "mean": mean, "pass_rate": mean, "count": 4}],
        )

    evaluation(flow.experiment_version, EvalStatus.DONE, 0.5)
    evaluation(flow.experiment_version, EvalStatus.DONE, 0.75)
    evaluation(flow.experiment_version, EvalStatus.RUNNING, 0.0)

    report = experiment_report(flow)

    assert report.a.scores == []
    assert [s["mean"] for s in report.b.scores] == [0.75]


def test_the_page_shows_both_arms_to_a_viewer(client, viewer, flow):
    stored_runs(flow, "a", 3, failed=1, ms=100, cost="0.01")
    client.force_login(viewer)

    page = client.get(reverse("observe:flow-experiment", args=[flow.slug]))

    assertContains(page, "a · v1")
    assertContains(page, "b · v2")
    assertContains(page, "not enough data yet (n&lt;30)")


def test_the_page_without_an_experiment_says_so(client, owner, make_flow, echo_model):
    plain = make_flow(echo_model, slug="plain")
    client.force_login(owner)

    page = client.get(reverse("observe:flow-experiment", args=[plain.slug]))

    assertContains(page, "No experiment is running on this flow.")


def test_the_page_of_another_workspace_is_404_and_takes_only_get(client, outsider, owner, flow):
    client.force_login(outsider)
    assert client.get(reverse("observe:flow-experiment", args=[flow.slug])).status_code == 404
    client.force_login(owner)
    assert client.post(reverse("observe:flow-experiment", args=[flow.slug])).status_code == 405
