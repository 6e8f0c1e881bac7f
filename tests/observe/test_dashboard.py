"""The dashboard: its figures on known runs, calls and ratings; who sees which; bad input."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Usage
from conversations.models import Conversation, Message
from flows.models import Flow, Run

pytestmark = pytest.mark.django_db


def _run(flow: Flow, *, ms: float | None, status: str = "succeeded", days_ago: int = 0) -> Run:
    run = Run.objects.create(
        workspace=flow.workspace,
        flow=flow,
        flow_version=flow.published_version,
        status=status,
        deadline_at=timezone.now() + timedelta(hours=1),
    )
    created = timezone.now() - timedelta(days=days_ago)
    finished = None if ms is None else created + timedelta(milliseconds=ms)
    Run.objects.filter(pk=run.pk).update(
        created_at=created, started_at=created, finished_at=finished
    )
    return run


def _call(flow: Flow | None, *, tokens: tuple[int, int], cost: str, ttft=None, **fields) -> Usage:
    return Usage.objects.create(
        workspace=fields.pop("workspace", None) or flow.workspace,
        model_slug=fields.pop("model_slug", "echo"),
        flow_id=flow.id if flow else None,
        flow_slug=flow.slug if flow else "",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost=Decimal(cost),
        ttft_ms=ttft,
        **fields,
    )


def _rate(run: Run, rating: int) -> None:
    conversation = Conversation.objects.create(workspace=run.workspace, flow=run.flow)
    Message.objects.create(conversation=conversation, role="assistant", run=run, feedback=rating)


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model, slug="assistant")


@pytest.fixture
def data(flow, workspace, owner):
    """Four runs of 100 to 400 ms, one failed, and a run 40 days ago (outside 30 days); three
    calls of the flow (one a cache hit) and one of the playground; two thumbs up, one down."""
    runs = [_run(flow, ms=ms) for ms in (100, 200, 300)]
    runs.append(_run(flow, ms=400, status="failed"))
    _run(flow, ms=5000, days_ago=40)
    _call(flow, tokens=(10, 5), cost="0.001", ttft=50)
    _call(flow, tokens=(20, 10), cost="0.002", ttft=150)
    _call(flow, tokens=(1, 1), cost="0", ttft=1, cache_hit=True)
    _call(None, workspace=workspace, tokens=(100, 100), cost="0.1", ttft=90, user=owner)
    _rate(runs[0], 1)
    _rate(runs[1], 1)
    _rate(runs[2], -1)
    return runs


def test_the_figures_are_right_on_known_data(
    client, owner, data, flow, django_assert_max_num_queries
):
    client.force_login(owner)
    with django_assert_max_num_queries(30):
        page = client.get(reverse("observe:dashboard"))
    assert page.status_code == 200
    totals = page.context["report"]["totals"]
    assert totals["runs"] == 4
    assert totals["errors"] == 1
    assert totals["error_rate"] == 0.25
    assert totals["duration_p50"] == pytest.approx(250)
    assert totals["duration_p95"] == pytest.approx(385)
    assert totals["calls"] == 4  # the flow's three and the playground's
    assert totals["tokens"] == 15 + 30 + 2 + 200
    assert totals["total_cost"] == Decimal("0.103")
    assert totals["cache_hit_rate"] == 0.25
    # Time to first token over the calls a model served: 50, 90, 150.
    assert totals["ttft_p50"] == pytest.approx(90)
    assert totals["feedback_up"] == 2 and totals["feedback_down"] == 1
    assert totals["feedback_ratio"] == pytest.approx(2 / 3)

    report = page.context["report"]
    today = report["by_day"][-1]
    assert len(report["by_day"]) == 30
    assert (today["runs"], today["errors"], today["tokens"]) == (4, 1, 247)
    assert report["by_day"][0]["runs"] == 0
    [row] = report["by_flow"]
    assert (row["flow__name"], row["runs"], row["tokens"], row["calls"]) == (flow.name, 4, 47, 3)
    assert row["total_cost"] == Decimal("0.003")
    [version] = report["by_version"]
    assert version["runs"] == 4
    [model] = report["by_model"]
    assert (model["model_slug"], model["calls"], model["cache_hit_rate"]) == ("echo", 4, 0.25)
    series = page.context["series"]
    assert series["runs"][-1] == 4 and len(series["labels"]) == 30
    for canvas in ("chart-runs", "chart-latency", "chart-tokens"):
        assert f'id="{canvas}"' in page.content.decode()

    # 90 days take in the old run; one flow leaves the playground's call out.
    wide = client.get(reverse("observe:dashboard"), {"days": 90, "flow": flow.id})
    assert wide.context["report"]["totals"]["runs"] == 5
    assert wide.context["report"]["totals"]["calls"] == 3


def test_the_number_of_queries_does_not_grow_with_the_data(
    client, owner, data, flow, make_flow, echo_model, django_assert_max_num_queries
):
    client.force_login(owner)
    with django_assert_max_num_queries(30) as few:
        client.get(reverse("observe:dashboard"))
    other = make_flow(echo_model, slug="other")
    for _ in range(5):
        _rate(_run(other, ms=10), 1)
        _call(other, tokens=(1, 1), cost="0.1", ttft=5, model_slug="other")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(reverse("observe:dashboard"))
    assert len(page.context["report"]["by_flow"]) == 2


def test_a_limited_member_sees_only_shared_flows_and_another_workspace_nothing(
    client, owner, make_member, data, flow, make_flow, echo_model, outsider
):
    from workspaces.sharing import object_grant

    hidden = make_flow(echo_model, slug="hidden")
    _run(hidden, ms=10, status="failed")
    _call(hidden, tokens=(1000, 1000), cost="5")
    limited = make_member("viewer", limited=True)
    object_grant(obj=flow, subject=limited, level="view", actor=owner)

    client.force_login(limited)
    page = client.get(reverse("observe:dashboard"))
    assert page.status_code == 200
    totals = page.context["report"]["totals"]
    # The shared flow's runs and calls; not the hidden flow's, nor the owner's playground call.
    assert (totals["runs"], totals["errors"], totals["calls"]) == (4, 1, 3)
    assert [row["flow__name"] for row in page.context["report"]["by_flow"]] == [flow.name]
    # A hidden flow is not a choice: the form says so.
    assert client.get(reverse("observe:dashboard"), {"flow": hidden.id}).status_code == 400

    client.force_login(owner)
    assert client.get(reverse("observe:dashboard")).context["report"]["totals"]["runs"] == 5

    client.force_login(outsider)
    page = client.get(reverse("observe:dashboard"))
    assert page.status_code == 200
    totals = page.context["report"]["totals"]
    assert (totals["runs"], totals["calls"], totals["feedback_up"]) == (0, 0, 0)
    assert client.get(reverse("observe:dashboard"), {"flow": flow.id}).status_code == 400


@pytest.mark.parametrize("query", [{"days": "14"}, {"days": "x"}, {"flow": "abc"}])
def test_a_bad_period_or_flow_is_a_400_without_figures(client, owner, query):
    client.force_login(owner)
    page = client.get(reverse("observe:dashboard"), query)
    assert page.status_code == 400
    assert "report" not in page.context


def test_the_dashboard_answers_only_get(client, owner):
    client.force_login(owner)
    assert client.post(reverse("observe:dashboard")).status_code == 405
