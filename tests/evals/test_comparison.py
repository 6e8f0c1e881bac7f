"""Two evaluation runs compared: the pure comparison on fixed results (scores, cost, latency,
cases matched and classified, refusals), the comparison form and page with who may do what
(403, 404, 405, another workspace, other datasets), and the flow's publish panel."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from evals.comparison import (
    CaseOutcome,
    Change,
    ComparisonRefused,
    ScoreValue,
    Side,
    compare,
    percentile,
    run_label,
)
from evals.models import EvalCaseResult, EvalComparison, EvalRun, EvalStatus
from evals.schemas import CaseData
from evals.services import case_add, dataset_create, dataset_version_create, eval_run_start
from flows.demo import assistant_graph
from flows.services import flow_version_save
from tests.evals.test_eval_runs import wait_for_eval

EXACT = "exact_match:{}"
CONTAINS = 'contains:{"phrases":["Hello"]}'
EXACT_ONLY = [{"kind": "exact_match", "config": {}}]
CHECKS = [
    {"kind": "exact_match", "config": {}},
    {"kind": "contains", "config": {"phrases": ["Hello"]}},
]


# --- the pure comparison --------------------------------------------------------------------


def outcome(
    index: int,
    passed: tuple[bool, ...] = (True,),
    *,
    case_id: int | None = None,
    values: tuple[float, ...] | None = None,
    output: str | None = "answer",
    latency: float | None = 100.0,
    tokens: int = 10,
    cost: str = "0.001",
    error: str = "",
) -> CaseOutcome:
    values = values or tuple(1.0 if p else 0.0 for p in passed)
    kinds = ("exact_match", "contains")
    scores = tuple(
        ScoreValue(kind=kinds[i], value=v, passed=p)
        for i, (v, p) in enumerate(zip(values, passed, strict=True))
    )
    return CaseOutcome(
        index=index,
        case_id=index + 100 if case_id is None else case_id,
        scores=() if error else scores,
        output=output,
        latency_ms=latency,
        tokens=tokens,
        cost=Decimal(cost),
        error=error,
    )


def side(run_id: int, cases: list[CaseOutcome], **overrides) -> Side:
    values = {
        "run_id": run_id,
        "label": f"v{run_id}",
        "workspace_id": 1,
        "dataset_id": 7,
        "flow_id": 3,
        "status": EvalStatus.DONE,
        "evaluators": (EXACT,),
    }
    return Side(**(values | overrides), cases=tuple(cases))


def test_each_case_is_classified_fixed_broke_score_answer_or_same():
    baseline = side(
        1,
        [
            outcome(0, (False,)),  # fixed
            outcome(1, (True,)),  # broke
            outcome(2, (True,), values=(0.9,)),  # score changed, passing on both
            outcome(3, (True,), output="Paris."),  # answer changed, same score
            outcome(4, (True,)),  # same
            outcome(5, (True,)),  # the candidate errs: broke
        ],
    )
    candidate = side(
        2,
        [
            outcome(0, (True,)),
            outcome(1, (False,)),
            outcome(2, (True,), values=(0.95,)),
            outcome(3, (True,), output="Paris"),
            outcome(4, (True,)),
            outcome(5, error="the run ended failed"),
        ],
    )
    comparison = compare(baseline, candidate)

    changes = [p.change for p in comparison.pairs]
    assert changes == [
        Change.FIXED,
        Change.BROKE,
        Change.SCORE,
        Change.ANSWER,
        Change.SAME,
        Change.BROKE,
    ]
    assert (comparison.count(Change.FIXED), comparison.count(Change.BROKE)) == (1, 2)
    assert [p.number for p in comparison.shown("broke")] == [2, 6]
    assert [p.number for p in comparison.shown("fixed")] == [1]
    assert len(comparison.shown("all")) == 5  # every case but the unchanged one
    assert comparison.matched_by == "case"
    with pytest.raises(ValueError):
        comparison.shown("everything")


def test_scores_cost_latency_and_tokens_side_by_side_with_their_difference():
    baseline = side(
        1,
        [
            outcome(0, (True,), latency=100, tokens=10, cost="0.001"),
            outcome(1, (False,), latency=300, tokens=20, cost="0.002"),
            outcome(2, (False,), latency=200, tokens=30, cost="0.003"),
            outcome(3, (True,), latency=None, tokens=40, cost="0.004"),
        ],
    )
    candidate = side(
        2,
        [
            outcome(0, (True,), latency=50, tokens=5, cost="0.0005"),
            outcome(1, (True,), latency=50, tokens=5, cost="0.0005"),
            outcome(2, (True,), latency=1000, tokens=5, cost="0.0005"),
            outcome(3, error="refused", latency=10, tokens=0, cost="0"),
        ],
    )
    comparison = compare(baseline, candidate)

    (exact,) = comparison.evaluators
    assert exact.label == "exact_match"
    # The errored case has no score: the candidate's mean is over the three it scored.
    assert (exact.mean.baseline, exact.mean.candidate) == (0.5, 1.0)
    assert exact.mean.delta == pytest.approx(0.5) and exact.mean.verdict == "better"
    assert exact.pass_rate.delta == pytest.approx(0.5)
    assert comparison.headline is exact

    cost = comparison.total("Total cost")
    assert (cost.baseline, cost.candidate) == (pytest.approx(0.010), pytest.approx(0.0015))
    assert cost.verdict == "better"  # cheaper
    assert comparison.total("Cost per case").baseline == pytest.approx(0.0025)
    p50, p95 = comparison.total("Latency p50"), comparison.total("Latency p95")
    assert (p50.baseline, p95.baseline) == (200, pytest.approx(290))  # the case without is left out
    assert (p50.candidate, p95.candidate) == (50, pytest.approx(857.5))
    assert p95.verdict == "worse"
    assert (comparison.total("Tokens").baseline, comparison.total("Tokens").candidate) == (100, 15)
    assert (
        comparison.total("Errors").candidate == 1 and comparison.total("Errors").verdict == "worse"
    )
    assert comparison.total("Cases passed").baseline == 2
    assert comparison.total("Cases").verdict == ""  # neither better nor worse


def test_percentile_interpolates_between_ranks():
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([10, 1, 5], 1.0) == 10


def test_cases_are_matched_by_case_id_across_orders_and_one_side_only():
    baseline = side(1, [outcome(0, case_id=11), outcome(1, case_id=12), outcome(2, case_id=13)])
    # A later dataset version: case 12 deleted, 13 moved first, 14 added.
    candidate = side(
        2,
        [outcome(0, (False,), case_id=13), outcome(1, case_id=11), outcome(2, case_id=14)],
    )
    comparison = compare(baseline, candidate)

    assert comparison.matched_by == "case"
    pairs = {p.case_id: p for p in comparison.pairs}
    assert pairs[11].change == Change.SAME
    assert pairs[12].change == Change.ONLY_BASELINE and pairs[12].candidate is None
    assert pairs[13].change == Change.BROKE
    assert pairs[13].baseline.index == 2 and pairs[13].candidate.index == 0
    assert pairs[14].change == Change.ONLY_CANDIDATE and pairs[14].baseline is None
    assert [p.case_id for p in comparison.pairs] == [11, 12, 13, 14]


def test_cases_are_matched_by_position_when_their_ids_differ():
    baseline = side(1, [outcome(0, case_id=1), outcome(1, (False,), case_id=2)])
    candidate = side(2, [outcome(0, case_id=51), outcome(1, case_id=52)])  # imported anew
    comparison = compare(baseline, candidate)
    assert comparison.matched_by == "index"
    assert [p.change for p in comparison.pairs] == [Change.SAME, Change.FIXED]


def test_an_evaluator_only_one_side_ran_is_shown_but_does_not_decide_pass_or_fail():
    baseline = side(1, [outcome(0, (True,))])
    candidate = side(2, [outcome(0, (True, False))], evaluators=(EXACT, CONTAINS))
    comparison = compare(baseline, candidate)

    assert comparison.pairs[0].change == Change.SAME
    contains = comparison.evaluators[1]
    assert contains.label == "contains"
    assert (contains.mean.baseline, contains.mean.candidate) == (None, 0.0)
    assert contains.mean.delta is None and contains.mean.verdict == ""


def test_runs_of_other_datasets_workspaces_or_unfinished_are_refused():
    base = side(1, [outcome(0)])
    with pytest.raises(ComparisonRefused, match="different datasets"):
        compare(base, side(2, [outcome(0)], dataset_id=8))
    with pytest.raises(ComparisonRefused, match="different datasets"):
        compare(base, side(2, [outcome(0)], workspace_id=2))
    with pytest.raises(ComparisonRefused, match="different flows"):
        compare(base, side(2, [outcome(0)], flow_id=4))
    with pytest.raises(ComparisonRefused, match="v2 is running: only finished"):
        compare(base, side(2, [outcome(0)], status=EvalStatus.RUNNING))
    with pytest.raises(ComparisonRefused, match="v2 is cancelled"):
        compare(base, side(2, [outcome(0)], status=EvalStatus.CANCELLED))
    with pytest.raises(ComparisonRefused, match="two different"):
        compare(base, base)


# --- through the database -------------------------------------------------------------------


def make_dataset(workspace, owner, flow, messages, slug="smoke"):
    dataset = dataset_create(
        workspace=workspace, name=slug.title(), slug=slug, target=flow, actor=owner
    )
    for message in messages:
        case_add(
            dataset=dataset, data=CaseData(inputs={"message": message}, expected_output=message)
        )
    return dataset, dataset_version_create(dataset=dataset, actor=owner)


def finished_run(dataset, frozen, flow_version, rows, status=EvalStatus.DONE, **fields):
    """An evaluation as the worker leaves it: ``rows`` are (output, passed, latency_ms, cost)
    per case, scored by exact match and contains."""
    now = timezone.now()
    eval_run = EvalRun.objects.create(
        workspace_id=dataset.workspace_id,
        dataset=dataset,
        dataset_version=frozen,
        flow_id=flow_version.flow_id,
        flow_version=flow_version,
        evaluators=CHECKS,
        status=status,
        total=len(rows),
        completed=len(rows),
        finished_at=now,
        **fields,
    )
    for i, (output, passed, latency, cost) in enumerate(rows):
        scores = [
            {"kind": "exact_match", "value": float(passed), "passed": passed, "reason": ""},
            {"kind": "contains", "value": 1.0, "passed": True, "reason": ""},
        ]
        EvalCaseResult.objects.create(
            eval_run=eval_run,
            index=i,
            case_id=frozen.cases[i]["case_id"],
            output=output,
            scores=scores,
            latency_ms=latency,
            tokens=12,
            cost=Decimal(cost),
            scored_at=now,
        )
    return eval_run


@pytest.fixture
def two_runs(workspace, owner, make_flow, echo_model):
    """v1 and v2 of a flow evaluated on three cases: v2 fixes the second, breaks the third,
    and costs more."""
    flow = make_flow(echo_model)
    v1 = flow.published_version
    v2 = flow_version_save(flow=flow, graph=v1.graph, user=owner, note="shorter prompt")
    dataset, frozen = make_dataset(workspace, owner, flow, ["Hello", "Bonjour", "Hallo"])
    baseline = finished_run(
        dataset,
        frozen,
        v1,
        [
            ("Hello", True, 100, "0.001"),
            ("Hi", False, 120, "0.001"),
            ("Hallo", True, 140, "0.001"),
        ],
    )
    candidate = finished_run(
        dataset,
        frozen,
        v2,
        [
            ("Hello", True, 90, "0.002"),
            ("Bonjour", True, 100, "0.002"),
            ("Hallo!!", False, 110, "0.002"),
        ],
    )
    return flow, dataset, baseline, candidate


def url(name: str, *args) -> str:
    return reverse(f"evals:{name}", args=args)


def test_run_label_names_the_version_and_what_was_swapped_in(two_runs):
    flow, dataset, baseline, candidate = two_runs
    assert run_label(baseline) == "v1"
    candidate.variant = {"model": {"node": "llm_1", "from": "echo", "to": "tiny"}}
    candidate.base_version = baseline.flow_version
    assert run_label(candidate) == "v1 + model tiny in llm_1"


def test_an_editor_compares_two_runs_and_sees_the_delta_and_changed_cases(client, owner, two_runs):
    flow, dataset, baseline, candidate = two_runs
    client.force_login(owner)

    form = client.get(url("comparison-new", dataset.slug))
    assert form.status_code == 200
    page = form.content.decode()
    # The newest run is offered as the candidate, the one before as the baseline.
    assert f'<option value="{candidate.id}" selected>' in page.split('name="candidate"')[1]
    assert f'<option value="{baseline.id}" selected>' in page.split('name="baseline"')[1]

    # From the older run's page: it is the candidate; none is older, so the newer is the baseline.
    page = client.get(url("comparison-new", dataset.slug), {"candidate": baseline.id})
    page = page.content.decode()
    assert f'<option value="{baseline.id}" selected>' in page.split('name="candidate"')[1]
    assert f'<option value="{candidate.id}" selected>' in page.split('name="baseline"')[1]

    response = client.post(
        url("comparison-new", dataset.slug),
        {"baseline": baseline.id, "candidate": candidate.id},
    )
    kept = EvalComparison.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("comparison-detail", dataset.slug, kept.id)
    assert (kept.flow, kept.baseline, kept.candidate, kept.created_by) == (
        flow,
        baseline,
        candidate,
        owner,
    )
    assert kept.workspace_id == dataset.workspace_id

    page = client.get(response["Location"]).content.decode()
    assert "v1 vs v2 on Smoke" in page
    assert "1 fixed</strong>, <strong>1 broke" in page
    assert page.count('data-change="') == 2  # the unchanged first case is not listed
    assert 'data-change="fixed"' in page and 'data-change="broke"' in page
    assert "Bonjour" in page and "Hallo!!" in page  # both answers of the changed cases
    assert "$0.003000" in page and "$0.006000" in page and "+$0.003000" in page

    broke = client.get(url("comparison-detail", dataset.slug, kept.id), {"show": "broke"})
    assert broke.content.decode().count('data-change="') == 1
    assert 'data-change="broke"' in broke.content.decode()


def test_runs_of_another_dataset_or_unfinished_are_refused_and_nothing_is_kept(
    client, owner, workspace, two_runs
):
    flow, dataset, baseline, candidate = two_runs
    other, frozen = make_dataset(workspace, owner, flow, ["Hello", "Bonjour", "Hallo"], "other")
    elsewhere = finished_run(other, frozen, baseline.flow_version, [("Hello", True, 1, "0")] * 3)
    running = finished_run(
        dataset, baseline.dataset_version, baseline.flow_version, [], status=EvalStatus.RUNNING
    )
    client.force_login(owner)

    for chosen, why in [
        ({"baseline": baseline.id, "candidate": elsewhere.id}, "is not of the dataset Smoke"),
        ({"baseline": baseline.id, "candidate": running.id}, "is running: only finished"),
        ({"baseline": baseline.id, "candidate": baseline.id}, "two different evaluations"),
        ({"baseline": baseline.id}, "Pick the candidate evaluation"),
        ({"baseline": "x", "candidate": candidate.id}, "Pick the baseline evaluation"),
    ]:
        response = client.post(url("comparison-new", dataset.slug), chosen)
        assert response.status_code == 400, chosen
        assert why in response.content.decode()
    assert not EvalComparison.objects.exists()


def test_another_workspaces_runs_and_comparisons_are_missing(
    client, owner, outsider, two_runs, echo_model
):
    flow, dataset, baseline, candidate = two_runs
    kept = EvalComparison.objects.create(
        workspace=dataset.workspace, flow=flow, baseline=baseline, candidate=candidate
    )
    client.force_login(outsider)
    assert client.get(url("comparison-detail", dataset.slug, kept.id)).status_code == 404
    assert client.get(url("comparison-new", dataset.slug)).status_code == 404
    response = client.post(
        url("comparison-new", dataset.slug), {"baseline": baseline.id, "candidate": candidate.id}
    )
    assert response.status_code == 404

    # The outsider's own dataset, naming acme's runs: as good as missing.
    from flows.services import flow_create, flow_publish
    from workspaces.models import Membership

    theirs = Membership.objects.get(user=outsider).workspace
    their_flow = flow_publish(
        flow=flow_create(
            workspace=theirs,
            slug="theirs",
            name="Theirs",
            graph=flow.published_version.graph,
            user=outsider,
        ),
        user=outsider,
    )
    their_dataset, _ = make_dataset(theirs, outsider, their_flow, ["Hi"], "smoke")
    response = client.post(
        url("comparison-new", their_dataset.slug),
        {"baseline": baseline.id, "candidate": candidate.id},
    )
    assert response.status_code == 404
    # Acme's comparison under the outsider's dataset of the same slug: missing too.
    assert client.get(url("comparison-detail", their_dataset.slug, kept.id)).status_code == 404
    assert EvalComparison.objects.count() == 1


def test_a_viewer_reads_a_comparison_but_may_not_make_one(client, viewer, two_runs):
    flow, dataset, baseline, candidate = two_runs
    kept = EvalComparison.objects.create(
        workspace=dataset.workspace, flow=flow, baseline=baseline, candidate=candidate
    )
    client.force_login(viewer)
    assert client.get(url("comparison-detail", dataset.slug, kept.id)).status_code == 200
    assert client.get(url("comparison-new", dataset.slug)).status_code == 403
    response = client.post(
        url("comparison-new", dataset.slug), {"baseline": baseline.id, "candidate": candidate.id}
    )
    assert response.status_code == 403
    assert EvalComparison.objects.count() == 1
    listed = client.get(url("eval-list", dataset.slug)).content.decode()
    assert 'id="compare-form"' not in listed and 'name="baseline"' not in listed


def test_wrong_methods_and_a_bad_filter(client, owner, two_runs):
    flow, dataset, baseline, candidate = two_runs
    kept = EvalComparison.objects.create(
        workspace=dataset.workspace, flow=flow, baseline=baseline, candidate=candidate
    )
    client.force_login(owner)
    detail = url("comparison-detail", dataset.slug, kept.id)
    assert client.post(detail).status_code == 405
    assert client.delete(detail).status_code == 405
    assert client.put(url("comparison-new", dataset.slug)).status_code == 405
    response = client.get(detail, {"show": "<script>"})
    assert response.status_code == 400
    assert "There is no filter" in response.content.decode()
    assert "<script>" not in response.content.decode()
    assert client.get(url("comparison-detail", dataset.slug, kept.id + 999)).status_code == 404


def test_the_publish_page_shows_the_flows_last_comparison(client, owner, two_runs):
    flow, dataset, baseline, candidate = two_runs
    client.force_login(owner)
    page = client.get(reverse("flows:flow-detail", args=[flow.slug])).content.decode()
    assert 'id="last-comparison"' not in page  # none yet

    EvalComparison.objects.create(
        workspace=dataset.workspace, flow=flow, baseline=candidate, candidate=baseline
    )
    kept = EvalComparison.objects.create(
        workspace=dataset.workspace, flow=flow, baseline=baseline, candidate=candidate
    )
    page = client.get(reverse("flows:flow-detail", args=[flow.slug])).content.decode()
    panel = page.split('id="last-comparison"')[1].split("</section>")[0]
    assert "v1 vs v2 on Smoke" in panel
    assert "exact_match 0.67 → 0.67" in panel
    assert "cost $0.003000 → $0.006000" in panel
    assert "1 fixed</strong> / <strong>1 broke" in panel
    assert url("comparison-detail", dataset.slug, kept.id) in panel


def test_two_evaluations_run_on_the_worker_compare_as_their_answers_changed(
    worker, client, workspace, owner, make_flow, echo_model
):
    """Through the real path: v2 of the flow answers with one token only, which breaks a case
    whose expected answer is long and fixes one whose expected answer is the first word."""
    flow = make_flow(echo_model)
    v1 = flow.published_version
    v2 = flow_version_save(
        flow=flow, graph=assistant_graph(model=echo_model.slug, max_tokens=1), user=owner
    )
    dataset = dataset_create(
        workspace=workspace, name="Smoke", slug="smoke", target=flow, actor=owner
    )
    for message, expected in [
        ("Hello", "Hello"),
        ("Hello world", "Hello world"),
        ("Goodbye now", "Goodbye"),
    ]:
        case_add(
            dataset=dataset, data=CaseData(inputs={"message": message}, expected_output=expected)
        )
    baseline = wait_for_eval(
        eval_run_start(dataset=dataset, evaluators=EXACT_ONLY, flow_version=v1, actor=owner)
    )
    candidate = wait_for_eval(
        eval_run_start(
            dataset=dataset,
            evaluators=EXACT_ONLY,
            flow_version=v2,
            version=baseline.dataset_version,
            actor=owner,
        )
    )
    assert (baseline.status, candidate.status) == (EvalStatus.DONE, EvalStatus.DONE)

    client.force_login(owner)
    response = client.post(
        url("comparison-new", dataset.slug), {"baseline": baseline.id, "candidate": candidate.id}
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "v1 vs v2 on Smoke" in page
    assert "1 fixed</strong>, <strong>1 broke</strong>, 2 changed of 3 cases" in page
    broke = page.split('data-change="broke"')[1].split("</tr>")[0]
    assert "Hello world" in broke and "exact_match 0.00 ✗" in broke
    fixed = page.split('data-change="fixed"')[1].split("</tr>")[0]
    assert "Goodbye now" in fixed and "exact_match 1.00 ✓" in fixed
    # Fewer tokens out on the candidate: its token count is better.
    tokens = page.split('data-metric="Tokens"')[1].split("</tr>")[0]
    assert 'data-verdict="better"' in tokens


def test_a_kept_pair_that_does_not_compare_shows_nothing_rather_than_failing(
    client, owner, two_runs
):
    flow, dataset, baseline, candidate = two_runs
    # Stored around the service (which refuses it): the same run on both sides.
    kept = EvalComparison.objects.create(
        workspace=dataset.workspace, flow=flow, baseline=baseline, candidate=baseline
    )
    client.force_login(owner)
    assert client.get(url("comparison-detail", dataset.slug, kept.id)).status_code == 404
    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))
    assert page.status_code == 200 and 'id="last-comparison"' not in page.content.decode()
