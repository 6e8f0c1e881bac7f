"""Routes, the response cache and usage metering, through the real worker and the pages."""

from __future__ import annotations

import copy
from collections import Counter
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from catalog.models import Route, Usage
from catalog.router import order_candidates, route_candidates
from catalog.services import model_create
from catalog.services.routes import TargetSpec, route_create
from flows.demo import assistant_graph
from flows.models import NodeResult, RunStatus
from flows.schema import GraphError, check_graph
from flows.services import flow_create, flow_publish, flow_settings_change, run_create
from tests.flows.helpers import logged_events, wait_for_run
from workspaces.models import AuditEvent
from workspaces.sharing import object_grant


def _route_graph(route: str, **llm) -> dict:
    graph = assistant_graph()
    config = graph["nodes"][1]["config"]
    del config["model"]
    config.update(route=route, **llm)
    return graph


def _run(flow, message: str = "alpha beta gamma"):
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": message}, source="studio"
    )
    return wait_for_run(run.id)


def _publish(workspace, owner, graph: dict, slug: str = "routed"):
    flow = flow_create(workspace=workspace, slug=slug, name=slug, graph=graph, user=owner)
    return flow_publish(flow=flow, user=owner)


def _model(workspace, slug: str, engine: str = "echo", **fields):
    return model_create(slug=slug, name=slug, engine=engine, workspace=workspace, **fields)


# --- the order of candidates ------------------------------------------------------------------


class _M:
    def __init__(self, id: int, price: str = "0"):
        self.id, self.slug = id, f"m{id}"
        self.price_input = self.price_output = Decimal(price)


def test_a_fallback_chain_keeps_its_order():
    a, b, c = _M(1), _M(2), _M(3)
    order = order_candidates("fallback", [(a, 1), (b, 1), (c, 1)], seed="x")
    assert [x.model for x in order] == [a, b, c]
    assert order[0].reason == "fallback chain: first"


def test_an_ab_split_follows_the_weights_and_repeats_a_draw_for_one_seed():
    a, b = _M(1), _M(2)
    firsts = Counter(
        order_candidates("ab", [(a, 3), (b, 1)], seed=f"run-{i}:llm_1")[0].model.id
        for i in range(2000)
    )
    assert 0.70 < firsts[1] / 2000 < 0.80
    once = order_candidates("ab", [(a, 3), (b, 1)], seed="run-7:llm_1")
    again = order_candidates("ab", [(a, 3), (b, 1)], seed="run-7:llm_1")
    assert [c.model for c in once] == [c.model for c in again]
    assert len(once) == 2  # the other model stays as a fallback
    assert "weight" in once[0].reason


def test_cheapest_orders_by_price_and_fastest_by_measured_latency():
    dear, cheap, free = _M(1, "5"), _M(2, "1"), _M(3, "0")
    assert [
        c.model for c in order_candidates("cheapest", [(dear, 1), (cheap, 1), (free, 1)], seed="")
    ] == [free, cheap, dear]
    fastest = order_candidates(
        "fastest", [(dear, 1), (cheap, 1), (free, 1)], seed="", latency={1: 80.0, 2: 300.0}
    )
    assert [c.model for c in fastest] == [dear, cheap, free]
    assert fastest[2].reason == "fastest: not measured yet"


def test_fastest_measures_latency_from_recorded_usage(workspace, owner):
    slow, quick = _model(workspace, "slow"), _model(workspace, "quick")
    for latency in (900, 1000, 1100):
        Usage.objects.create(workspace=workspace, model=slow, model_slug="slow", latency_ms=latency)
    for latency in (40, 50, 60):
        Usage.objects.create(
            workspace=workspace, model=quick, model_slug="quick", latency_ms=latency
        )
    # A cache hit or a failure says nothing about the model's speed.
    Usage.objects.create(
        workspace=workspace, model=quick, model_slug="quick", latency_ms=1, cache_hit=True
    )
    route = route_create(
        workspace=workspace,
        slug="speedy",
        name="Speedy",
        strategy="fastest",
        targets=[TargetSpec(slow), TargetSpec(quick)],
        actor=owner,
    )
    order = route_candidates(route, seed="s")
    assert [c.model.slug for c in order] == ["quick", "slow"]
    assert order[0].reason == "fastest: median latency 50 ms"


# --- through the worker ---------------------------------------------------------------------


def test_a_route_falls_back_when_a_model_fails_and_records_why(worker, workspace, owner):
    broken = _model(workspace, "broken", engine="cpu", weights="/nowhere/such-weights")
    echo = _model(workspace, "backup", price_input=Decimal("2"), price_output=Decimal("4"))
    route_create(
        workspace=workspace,
        slug="safe",
        name="Safe",
        strategy="fallback",
        targets=[TargetSpec(broken), TargetSpec(echo)],
        actor=owner,
    )
    run = _run(_publish(workspace, owner, _route_graph("safe")))

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "alpha beta gamma"}
    details = NodeResult.objects.get(run=run, node_id="llm_1").details
    assert details["model"] == "backup" and details["route"] == "safe"
    assert "after broken failed" in details["reason"]
    assert details["attempts"][0]["model"] == "broken"
    assert "could not load model weights" in details["attempts"][0]["error"]
    rows = {u.model_slug: u for u in Usage.objects.filter(run_id=run.id)}
    assert rows["broken"].ok is False and rows["broken"].cost == 0
    served = rows["backup"]
    assert served.ok and served.route_slug == "safe" and served.flow_slug == "routed"
    assert served.node_id == "llm_1" and served.user_id is None
    assert (served.input_tokens, served.output_tokens) == (10, 3)
    # 10 input tokens at 2 per million and 3 output tokens at 4 per million.
    assert served.cost == Decimal("0.000032")


def test_a_route_moves_on_when_the_first_token_is_too_slow(worker, workspace, owner):
    sleepy = _model(workspace, "sleepy", settings={"delay_ms": 5000})
    quick = _model(workspace, "quick")
    route_create(
        workspace=workspace,
        slug="impatient",
        name="Impatient",
        strategy="fallback",
        timeout_s=0.5,
        targets=[TargetSpec(sleepy), TargetSpec(quick)],
        actor=owner,
    )
    run = _run(_publish(workspace, owner, _route_graph("impatient")))

    assert run.status == RunStatus.SUCCEEDED, run.error
    details = NodeResult.objects.get(run=run, node_id="llm_1").details
    assert details["model"] == "quick"
    assert details["attempts"] == [{"model": "sleepy", "error": "no first token within 0.5 s"}]
    assert NodeResult.objects.get(run=run, node_id="llm_1").latency_ms < 4000


def test_when_every_model_of_a_route_fails_the_run_says_why(worker, workspace, owner):
    broken = _model(workspace, "broken", engine="cpu", weights="/nowhere/a")
    also = _model(workspace, "also-broken", engine="cpu", weights="/nowhere/b")
    route_create(
        workspace=workspace,
        slug="doomed",
        name="Doomed",
        strategy="fallback",
        targets=[TargetSpec(broken), TargetSpec(also)],
        actor=owner,
    )
    run = _run(_publish(workspace, owner, _route_graph("doomed")))
    assert run.status == RunStatus.FAILED
    assert "no model could serve the call (broken: could not load model weights" in run.error
    assert "; also-broken: could not load model weights '/nowhere/b'" in run.error


def test_identical_calls_are_served_from_the_cache_and_the_trace_shows_it(worker, workspace, owner):
    echo = _model(workspace, "echo-priced", price_input=Decimal("1"), price_output=Decimal("1"))
    graph = assistant_graph(model=echo.slug)
    flow = _publish(workspace, owner, graph, slug="cached")
    first, second = _run(flow, "same words here"), _run(flow, "same words here")

    assert first.outputs == second.outputs == {"text": "same words here"}
    trace = [NodeResult.objects.get(run=r, node_id="llm_1").details for r in (first, second)]
    assert [t["cache"] for t in trace] == ["miss", "hit"]
    tokens = [e for e in logged_events(second.id) if e["type"] == "token"]
    assert "".join(e["data"]["text"] for e in tokens) == "same words here"
    rows = list(Usage.objects.filter(flow_slug="cached").order_by("created_at"))
    assert [r.cache_hit for r in rows] == [False, True]
    assert rows[0].cost > 0 and rows[1].cost == 0
    assert rows[1].input_tokens == rows[0].input_tokens  # a hit reports what it saved

    # Another question misses; the flow's switch turns the cache off.
    assert (
        NodeResult.objects.get(run=_run(flow, "other words"), node_id="llm_1").details["cache"]
        == "miss"
    )
    flow_settings_change(flow=flow, response_cache=False, user=owner)
    assert (
        NodeResult.objects.get(run=_run(flow, "same words here"), node_id="llm_1").details["cache"]
        == "miss"
    )


def test_a_call_with_a_temperature_is_never_cached(worker, workspace, owner):
    echo = _model(workspace, "warm")
    graph = assistant_graph(model=echo.slug)
    graph["nodes"][1]["config"]["temperature"] = 0.7
    flow = _publish(workspace, owner, graph, slug="warm")
    runs = [_run(flow, "again and again") for _ in range(2)]
    assert [NodeResult.objects.get(run=r, node_id="llm_1").details["cache"] for r in runs] == [
        "miss",
        "miss",
    ]


def test_the_cache_never_crosses_workspaces(worker, workspace, owner, outsider):
    from workspaces.models import Workspace

    other = Workspace.objects.get(memberships__user=outsider)
    shared = model_create(slug="shared-echo", name="Shared echo", engine="echo")
    for ws, user in ((workspace, owner), (other, outsider)):
        flow = _publish(ws, user, assistant_graph(model=shared.slug), slug="twin")
        run = _run(flow, "private question")
        assert NodeResult.objects.get(run=run, node_id="llm_1").details["cache"] == "miss"


# --- the node and the pages -----------------------------------------------------------------


def test_a_node_names_a_model_or_a_route_never_both(workspace, owner, echo_model):
    graph = assistant_graph(model=echo_model.slug)
    graph["nodes"][1]["config"]["route"] = "safe"
    with pytest.raises(GraphError) as caught:
        check_graph(graph, workspace)
    assert "name either a model or a route" in str(caught.value.errors)
    missing = _route_graph("nowhere")
    with pytest.raises(GraphError) as caught:
        check_graph(missing, workspace)
    assert "route 'nowhere' is not in this workspace" in str(caught.value.errors)


def test_a_limited_member_uses_only_routes_shared_with_them(workspace, owner, make_member):
    echo = _model(workspace, "echo-a")
    route = route_create(
        workspace=workspace, slug="r", name="R", strategy="fallback", targets=[TargetSpec(echo)]
    )
    limited = make_member("editor", limited=True)
    with pytest.raises(GraphError) as caught:
        check_graph(_route_graph("r"), workspace, limited)
    assert "route 'r' is not in this workspace" in str(caught.value.errors)
    object_grant(obj=route, subject=limited, level="use", actor=owner)
    check_graph(_route_graph("r"), workspace, limited)


def _form(slug: str, *models, strategy: str = "fallback", **extra) -> dict:
    data = {"slug": slug, "name": slug.title(), "strategy": strategy, "timeout_s": "5"}
    for i, (model, weight) in enumerate(models, start=1):
        data[f"model_{i}"] = str(model.id)
        data[f"weight_{i}"] = str(weight)
    return data | extra


def test_an_admin_creates_and_edits_a_route_on_the_page(client, workspace, owner):
    a, b = _model(workspace, "model-a"), _model(workspace, "model-b")
    client.force_login(owner)
    response = client.post(
        reverse("catalog:route-create"), _form("split", (a, 3), (b, 1), strategy="ab")
    )
    assert response.status_code == 302
    route = Route.objects.get(workspace=workspace, slug="split")
    assert [(t.model.slug, t.weight) for t in route.targets.all()] == [
        ("model-a", 3),
        ("model-b", 1),
    ]
    response = client.post(reverse("catalog:route-edit", args=[route.id]), _form("split", (b, 1)))
    assert response.status_code == 302
    assert [t.model.slug for t in route.targets.all()] == ["model-b"]
    page = client.get(reverse("catalog:route-list")).content.decode()
    assert "split" in page and "model-b" in page
    assert AuditEvent.objects.filter(action__in=["route.create", "route.change"]).count() == 2
    change = AuditEvent.objects.get(action="route.change")
    assert change.before["targets"] == [
        {"model": "model-a", "weight": 3},
        {"model": "model-b", "weight": 1},
    ]


def test_a_bad_route_is_refused_with_the_reason_and_nothing_is_saved(client, workspace, owner):
    a = _model(workspace, "model-a")
    embedder = _model(workspace, "embedder", task="embedding")
    client.force_login(owner)
    # Only chat models are offered; the service refuses others from any caller.
    response = client.post(reverse("catalog:route-create"), _form("bad", (a, 1), (embedder, 1)))
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    with pytest.raises(ValidationError) as caught:
        route_create(
            workspace=workspace,
            slug="bad",
            name="Bad",
            strategy="fallback",
            targets=[TargetSpec(a), TargetSpec(embedder)],
        )
    assert "embedder is a embedding model, not a chat model" in caught.value.messages
    response = client.post(reverse("catalog:route-create"), _form("dup", (a, 1), (a, 2)))
    assert response.status_code == 400 and "a model appears twice" in response.content.decode()
    response = client.post(reverse("catalog:route-create"), _form("none"))
    assert response.status_code == 400 and "Choose at least one model" in response.content.decode()
    assert not Route.objects.exists()


def test_viewers_see_routes_but_cannot_change_them(client, workspace, owner, viewer):
    a = _model(workspace, "model-a")
    route = route_create(
        workspace=workspace, slug="r", name="R", strategy="fallback", targets=[TargetSpec(a)]
    )
    before = copy.deepcopy(list(route.targets.values_list("model_id", "weight")))
    client.force_login(viewer)
    assert client.get(reverse("catalog:route-list")).status_code == 200
    assert client.get(reverse("catalog:route-create")).status_code == 403
    assert (
        client.post(reverse("catalog:route-edit", args=[route.id]), _form("r", (a, 9))).status_code
        == 403
    )
    assert client.post(reverse("catalog:route-delete", args=[route.id])).status_code == 403
    assert client.get(reverse("catalog:route-delete", args=[route.id])).status_code == 405
    assert list(route.targets.values_list("model_id", "weight")) == before


def test_a_route_of_another_workspace_is_not_found(client, workspace, owner, outsider):
    a = _model(workspace, "model-a")
    route = route_create(
        workspace=workspace, slug="r", name="R", strategy="fallback", targets=[TargetSpec(a)]
    )
    client.force_login(outsider)
    assert client.get(reverse("catalog:route-edit", args=[route.id])).status_code == 404
    assert client.post(reverse("catalog:route-delete", args=[route.id])).status_code == 404
    assert Route.objects.filter(id=route.id).exists()
    assert "model-a" not in client.get(reverse("catalog:route-list")).content.decode()
