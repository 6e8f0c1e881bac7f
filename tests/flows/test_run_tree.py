"""A run and its sub-flow runs are bounded together: an iteration that calls a sub-flow that
itself iterates multiplies work, so the limits hold for the whole tree, not only per run. With
the real worker, restarted with small tree limits (it reads them from its environment)."""

from __future__ import annotations

import pytest

from flows.models import Run, RunTree
from tests.flows.helpers import wait_for_run
from tests.flows.test_engine import edge, iteration_over_items, node, output, text_input
from tests.flows.test_waiting_nodes import child_graph, publish, start

TREE_LIMITS = {"STUDIO_RUN_TREE_MAX_RUNS": "4", "STUDIO_RUN_TREE_MAX_NODES": "60"}


@pytest.fixture(scope="module")
def small_tree_worker(worker_process):
    worker_process.stop()
    worker_process.env.update(TREE_LIMITS)
    try:
        worker_process.start()
        yield worker_process
    finally:
        for name in TREE_LIMITS:
            worker_process.env.pop(name, None)
        worker_process.stop()  # the `worker` fixture of later tests starts it with the defaults


@pytest.fixture
def worker(small_tree_worker, transactional_db):
    small_tree_worker.ensure_running()
    return small_tree_worker


def fan_out_graph(flow: str, input_name: str = "message") -> dict:
    """An iteration over the input's items that calls ``flow`` once per item."""
    call = node(
        "call",
        "subflow",
        {"flow": flow, "inputs": {input_name: "{{each.item}}"}, "outputs": [{"name": "text"}]},
        parent="each",
    )
    return iteration_over_items(call, "{{call.text}}")


def busy_graph() -> dict:
    """A sub-flow that iterates over its own items (each item one node execution)."""
    return {
        "nodes": [
            text_input("items", "json"),
            node("inner", "iteration", {"result": "{{step.value}}"}),
            node(
                "step",
                "variable_assigner",
                {"variables": [{"name": "value", "type": "text", "value": "{{inner.item}}"}]},
                parent="inner",
            ),
            node("done", "variable_assigner", {"variables": [{"name": "text", "value": "ok"}]}),
            output("text"),
        ],
        "edges": [
            edge("input_1", "items", "inner", "items"),
            edge("inner", "results", "done", "_trigger"),
            edge("done", "text", "output_1", "text"),
        ],
    }


def test_a_fan_out_of_sub_flows_stops_at_the_tree_run_limit(worker, workspace, owner):
    publish(workspace, owner, child_graph(), "leaf")
    parent = publish(workspace, owner, fan_out_graph("leaf"), "fan-out")
    run = wait_for_run(start(parent, {"items": [f"item {i}" for i in range(10)]}, owner).id)
    assert run.status == "failed"
    assert run.error == "the run and its sub-flows started more than 4 runs (the limit)"
    assert Run.objects.filter(root=run).count() == 3  # with the top run: 4
    assert RunTree.objects.get(root=run).runs == 4
    assert set(Run.objects.filter(root=run).values_list("status", flat=True)) <= {
        "succeeded",
        "failed",
    }


def test_sub_flows_that_iterate_stop_at_the_tree_node_limit(worker, workspace, owner):
    """Each run stays far below its own node limit; together they pass the tree's."""
    publish(workspace, owner, busy_graph(), "busy")
    parent = publish(workspace, owner, fan_out_graph("busy", "items"), "fan-out")
    items = [[str(j) for j in range(25)] for _ in range(3)]
    run = wait_for_run(start(parent, {"items": items}, owner).id)
    assert run.status == "failed"
    assert run.error == "the run and its sub-flows executed more than 60 nodes (the limit)"
    assert RunTree.objects.get(root=run).nodes <= 60
    assert not Run.objects.filter(root=run, status__in=["queued", "running", "waiting"]).exists()
