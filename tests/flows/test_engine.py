"""The executor's semantics, run in this process on inline nodes: branches that are not taken
are skipped, branches merge again, iterations and loops run their nodes per item and round,
failures go by each node's policy, and a run stops at its node limit."""

from __future__ import annotations

import pytest

from flows.models import NodeResult, NodeStatus, RunSource, RunStatus
from flows.runtime import executor
from flows.schema import GraphError, check_graph
from flows.services import flow_create, flow_publish, run_create
from tests.flows.helpers import logged_events


def node(id_, type_, config=None, parent=None, **policy):
    spec = {"id": id_, "type": type_, "config": config or {}}
    if parent:
        spec["parent"] = parent
    if policy:
        spec["policy"] = policy
    return spec


def edge(source, source_port, target, target_port):
    return {
        "source": source,
        "source_port": source_port,
        "target": target,
        "target_port": target_port,
    }


def text_input(name="message", type_="text"):
    return node("input_1", "input", {"fields": [{"name": name, "type": type_}]})


def output(*fields):
    return node("output_1", "output", {"fields": [{"name": f, "type": "any"} for f in fields]})


def assign(id_, value, parent=None, type_="text", **policy):
    config = {"variables": [{"name": "value", "type": type_, "value": value}]}
    return node(id_, "variable_assigner", config, parent, **policy)


@pytest.fixture
def run_graph(workspace, owner, django_capture_on_commit_callbacks):
    def run_it(graph, inputs, slug="engine"):
        flow = flow_create(workspace=workspace, slug=slug, name=slug, graph=graph, user=owner)
        flow = flow_publish(flow=flow, user=owner)
        run = run_create(
            flow=flow, version=flow.published_version, inputs=inputs, source=RunSource.STUDIO
        )
        # Inline nodes only: one pass runs the whole flow (the failure event goes on commit).
        with django_capture_on_commit_callbacks(execute=True):
            executor.run_advance(run.id)
        run.refresh_from_db()
        return run

    return run_it


def statuses(run) -> dict[str, str]:
    return dict(NodeResult.objects.filter(run=run).values_list("node_id", "status"))


def routing_graph():
    """input → if/else → one of two assigners (hung off the branch ports) → aggregator → out."""
    condition = {"variable": "input_1.message", "operator": "contains", "value": "invoice"}
    return {
        "nodes": [
            text_input(),
            node("route", "if_else", {"cases": [{"id": "billing", "conditions": [condition]}]}),
            assign("billing", "billing: {{input_1.message}}"),
            assign("other", "other: {{input_1.message}}"),
            node(
                "merge",
                "variable_aggregator",
                {"variables": ["billing.value", "other.value"], "type": "text"},
            ),
            output("text"),
        ],
        "edges": [
            edge("route", "billing", "billing", "_trigger"),
            edge("route", "else", "other", "_trigger"),
            edge("merge", "output", "output_1", "text"),
        ],
    }


def test_the_untaken_branch_is_skipped_and_the_branches_merge(run_graph):
    run = run_graph(routing_graph(), {"message": "my invoice is wrong"})
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "billing: my invoice is wrong"}
    assert statuses(run) | {} == {
        "input_1": NodeStatus.SUCCEEDED,
        "route": NodeStatus.SUCCEEDED,
        "billing": NodeStatus.SUCCEEDED,
        "other": NodeStatus.SKIPPED,
        "merge": NodeStatus.SUCCEEDED,
        "output_1": NodeStatus.SUCCEEDED,
    }
    skipped = [e for e in logged_events(run.id) if e["type"] == "node.skipped"]
    assert [e["node"] for e in skipped] == ["other"]

    run = run_graph(routing_graph(), {"message": "hello"}, slug="engine-2")
    assert run.outputs == {"text": "other: hello"}
    assert statuses(run)["billing"] == NodeStatus.SKIPPED


def test_a_node_fed_by_a_skipped_node_is_skipped_too(run_graph):
    graph = routing_graph()
    graph["nodes"].append(assign("after_other", "{{other.value}}!"))
    graph["nodes"][-2] = output("text", "extra")
    graph["edges"].append(edge("after_other", "value", "output_1", "extra"))
    run = run_graph(graph, {"message": "invoice"})
    # The output node reads a skipped node too: it is skipped, and the run has no outputs.
    assert statuses(run)["after_other"] == NodeStatus.SKIPPED
    assert statuses(run)["output_1"] == NodeStatus.SKIPPED
    assert run.status == RunStatus.SUCCEEDED
    assert run.outputs == {}


def iteration_over_items(body: dict, result: str) -> dict:
    """An iteration ``each`` over the ``items`` input around ``body`` (whose parent is
    ``each``), collecting ``result`` into the output's ``results``."""
    return {
        "nodes": [
            text_input("items", "json"),
            node("each", "iteration", {"result": result}),
            body,
            output("results"),
        ],
        "edges": [
            edge("input_1", "items", "each", "items"),
            edge("each", "results", "output_1", "results"),
        ],
    }


def iteration_graph(parallelism=1, body_policy=None):
    body = assign("shout", "{{loop_it.index}}:{{loop_it.item}}!", parent="loop_it")
    if body_policy:
        body["policy"] = body_policy
    return {
        "nodes": [
            text_input("items", "json"),
            node("loop_it", "iteration", {"result": "{{shout.value}}", "parallelism": parallelism}),
            body,
            output("results", "count"),
        ],
        "edges": [
            edge("input_1", "items", "loop_it", "items"),
            edge("loop_it", "results", "output_1", "results"),
            edge("loop_it", "count", "output_1", "count"),
        ],
    }


@pytest.mark.parametrize("parallelism", [1, 3])
def test_an_iteration_runs_its_nodes_per_item_and_collects_in_order(run_graph, parallelism):
    items = ["a", "b", "c", "d", "e"]
    run = run_graph(iteration_graph(parallelism), {"items": items})
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"results": [f"{i}:{x}!" for i, x in enumerate(items)], "count": 5}
    assert {k for k in statuses(run) if k.startswith("shout")} == {f"shout[{i}]" for i in range(5)}


def test_an_empty_iteration_gives_an_empty_list(run_graph):
    run = run_graph(iteration_graph(), {"items": []})
    assert run.outputs == {"results": [], "count": 0}


def test_an_iteration_over_something_else_than_a_list_fails_with_the_reason(run_graph):
    run = run_graph(iteration_graph(), {"items": {"a": 1}})
    assert run.status == RunStatus.FAILED
    assert run.error == "node 'loop_it' failed: items must be a list, not dict"


def test_a_failed_item_fails_the_iteration_whose_policy_decides(run_graph):
    graph = iteration_graph()
    # The second item is not a number: the assigner fails on it.
    graph["nodes"][2] = assign("shout", "{{loop_it.item}}", parent="loop_it", type_="number")
    run = run_graph(graph, {"items": ["1", "two", "3"]})
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("node 'loop_it' failed: item 1: node 'shout[1]' failed:")

    graph["nodes"][1]["policy"] = {"on_error": "default", "default": {"results": [], "count": 0}}
    run = run_graph(graph, {"items": ["1", "two", "3"]}, slug="engine-2")
    assert run.status == RunStatus.SUCCEEDED
    assert run.outputs == {"results": [], "count": 0}
    assert statuses(run)["loop_it"] == NodeStatus.HANDLED


def loop_graph(max_rounds=10):
    return {
        "nodes": [
            text_input("start", "text"),
            node(
                "repeat",
                "loop",
                {
                    "variables": [{"name": "text", "type": "text", "initial": "{{input_1.start}}"}],
                    "updates": {"text": "{{grow.value}}"},
                    "exit": {
                        "conditions": [{"variable": "text", "operator": "contains", "value": "xxx"}]
                    },
                    "max_rounds": max_rounds,
                },
            ),
            assign("grow", "{{repeat.text}}x", parent="repeat"),
            output("text", "rounds"),
        ],
        "edges": [
            edge("repeat", "text", "output_1", "text"),
            edge("repeat", "rounds", "output_1", "rounds"),
        ],
    }


def test_a_loop_carries_its_variables_until_the_exit_condition_holds(run_graph):
    run = run_graph(loop_graph(), {"start": "a"})
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "axxx", "rounds": 3}
    assert {k for k in statuses(run) if k.startswith("grow")} == {"grow[0]", "grow[1]", "grow[2]"}


def test_a_loop_stops_at_its_maximum_rounds(run_graph):
    run = run_graph(loop_graph(max_rounds=2), {"start": "a"})
    assert run.outputs == {"text": "axx", "rounds": 2}


def failing_graph(**policy):
    """An assigner that cannot convert its value to a number fails."""
    bad = assign("bad", "{{input_1.message}}", type_="number", **policy)
    graph = {
        "nodes": [text_input(), bad, output("text")],
        "edges": [edge("bad", "value", "output_1", "text")],
    }
    return graph


def test_a_failure_with_no_policy_fails_the_run_naming_the_node(run_graph):
    run = run_graph(failing_graph(), {"message": "not a number"})
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("node 'bad' failed: ")
    assert statuses(run)["bad"] == NodeStatus.FAILED
    assert logged_events(run.id)[-1]["type"] == "run.failed"


def test_a_failure_can_give_default_outputs(run_graph):
    graph = failing_graph(on_error="default", default={"value": 0})
    run = run_graph(graph, {"message": "not a number"})
    assert run.status == RunStatus.SUCCEEDED
    assert run.outputs == {"text": 0}
    result = NodeResult.objects.get(run=run, node_id="bad")
    assert result.status == NodeStatus.HANDLED and result.error


def test_a_failure_can_take_the_error_branch(run_graph):
    graph = failing_graph(on_error="branch")
    graph["nodes"][-1] = output("text", "problem")
    graph["nodes"].append(assign("fallback", "sorry"))
    graph["edges"] = [
        edge("bad", "error", "fallback", "_trigger"),
        edge("bad", "error", "output_1", "problem"),
        edge("fallback", "value", "output_1", "text"),
    ]
    run = run_graph(graph, {"message": "not a number"})
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "sorry"
    assert "not a number" in run.outputs["problem"]

    # When the node succeeds, the error branch is the one skipped.
    run = run_graph(graph, {"message": "42"}, slug="engine-2")
    assert statuses(run)["fallback"] == NodeStatus.SKIPPED
    assert statuses(run)["output_1"] == NodeStatus.SKIPPED


def test_a_run_stops_at_its_node_limit(run_graph, settings):
    settings.STUDIO_RUN_MAX_NODES = 10
    run = run_graph(iteration_graph(), {"items": list(range(20))})
    assert run.status == RunStatus.FAILED
    assert "more than 10 nodes" in run.error


def test_advancing_a_finished_run_again_changes_nothing(run_graph):
    run = run_graph(iteration_graph(), {"items": ["a", "b"]})
    before = (statuses(run), len(logged_events(run.id)))
    executor.run_advance(run.id)
    assert (statuses(run), len(logged_events(run.id))) == before


def test_iterations_nest(run_graph):
    graph = {
        "nodes": [
            text_input("rows", "json"),
            node("rows", "iteration", {"result": "cells.results"}),
            node("cells", "iteration", {"result": "cell.value", "parallelism": 2}, parent="rows"),
            assign("cell", "{{rows.index}}.{{cells.index}}={{cells.item}}", parent="cells"),
            output("table"),
        ],
        "edges": [
            edge("input_1", "rows", "rows", "items"),
            edge("rows", "item", "cells", "items"),
            edge("rows", "results", "output_1", "table"),
        ],
    }
    run = run_graph(graph, {"rows": [["a", "b"], [], ["c"]]})
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"table": [["0.0=a", "0.1=b"], [], ["2.0=c"]]}
    assert {k for k in statuses(run) if k.startswith("cell[")} == {
        "cell[0][0]",
        "cell[0][1]",
        "cell[2][0]",
    }
    depths = dict(NodeResult.objects.filter(run=run).values_list("node_id", "depth"))
    assert (depths["rows"], depths["cells[1]"], depths["cell[2][0]"]) == (0, 1, 2)


def test_a_node_outside_a_container_cannot_read_inside_it():
    graph = iteration_graph()
    graph["nodes"].append(assign("peek", "{{shout.value}}"))
    with pytest.raises(GraphError) as caught:
        check_graph(graph)
    assert caught.value.errors == [
        "node 'peek': {{shout.value}}: node 'shout' is inside 'loop_it', where this node cannot "
        "read it (use the container's outputs)"
    ]
