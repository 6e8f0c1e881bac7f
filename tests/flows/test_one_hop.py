"""One hop per run: a worker executes the nodes whose queues it serves itself, on the thread that
made them ready, instead of sending each through the broker; a node for a queue it does not
serve (a GPU pool) is still sent there."""

from __future__ import annotations

import json
import re
import time

from catalog.services import model_create
from flows.models import NodeResult, NodeStatus, RunSource
from flows.services import flow_create, flow_publish, run_create, run_fail
from studio.celery import app
from tests.flows.helpers import logged_events, wait_for_run
from tests.flows.nodes.graphs import edge, graph, node, run_graph

UNSERVED = "gpu.unserved"


def _received(log: str, task: str) -> int:
    return len(re.findall(rf"Task workers\.tasks\.{task}\[[0-9a-f-]+\] received", log))


def _assert_one_hop(worker, before: str) -> None:
    """The worker's log names every task it receives: since ``before``, the run's one task and
    nothing for its nodes."""
    deadline = time.monotonic() + 5
    while _received(worker.log(), "advance_run") == _received(before, "advance_run"):
        assert time.monotonic() < deadline, "the worker never logged the run's task"
        time.sleep(0.05)
    during = worker.log()[len(before) :]
    assert _received(during, "advance_run") == 1
    assert _received(during, "execute_node") == 0


def _llm(node_id: str, model, prompt: str) -> dict:
    return node(node_id, "llm", {"model": model.slug, "prompt": prompt})


def _start(workspace, owner, slug: str, graph_: dict, message: str):
    """Publish ``graph_`` and queue a run of it, without waiting for it."""
    flow = flow_publish(
        flow=flow_create(workspace=workspace, slug=slug, name=slug, graph=graph_, user=owner),
        user=owner,
    )
    return run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": message},
        source=RunSource.STUDIO,
        user=owner,
    )


def test_a_run_of_three_model_nodes_takes_one_hop(worker, workspace, owner, echo_model):
    chain = graph(
        _llm("first", echo_model, "{{input_1.message}}"),
        _llm("second", echo_model, "{{first.text}} two"),
        _llm("third", echo_model, "{{second.text}} three"),
        edges=[edge("third.text", "output_1.text")],
    )
    before = worker.log()

    run = run_graph(workspace=workspace, owner=owner, graph=chain, inputs={"message": "one"})

    assert run.status == "succeeded", run.error
    assert run.outputs == {"text": "one two three"}
    results = {r.node_id: r for r in NodeResult.objects.filter(run=run)}
    for key in ("first", "second", "third"):
        assert results[key].queue == "inference"
        assert results[key].attempts == 1
    _assert_one_hop(worker, before)


def test_a_node_for_a_queue_this_worker_does_not_serve_is_sent_there(
    worker, workspace, owner, echo_model
):
    remote_pool = model_create(
        slug="pooled",
        name="On a GPU pool",
        engine="vllm",
        weights="bundled:smollm2-135m-instruct",
        settings={"queue": UNSERVED},
    )
    split = graph(
        _llm("here", echo_model, "{{input_1.message}}"),
        _llm("there", remote_pool, "{{here.text}}"),
        edges=[edge("there.text", "output_1.text")],
    )
    run = _start(workspace, owner, "split", split, "hi")
    try:
        deadline = time.monotonic() + 30
        while not NodeResult.objects.filter(run=run, node_id="there").exists():
            assert time.monotonic() < deadline, "the second node was never made ready"
            time.sleep(0.05)
        here = NodeResult.objects.get(run=run, node_id="here")
        there = NodeResult.objects.get(run=run, node_id="there")
        assert here.status == NodeStatus.SUCCEEDED
        assert (there.status, there.queue) == (NodeStatus.PENDING, UNSERVED)
        with app.connection_for_write() as connection:
            message = connection.default_channel.basic_get(UNSERVED, no_ack=True)
        assert message is not None, f"nothing was sent to {UNSERVED}"
        assert message.headers["task"] == "workers.tasks.execute_node"
        assert json.loads(message.body)[0] == [str(run.id), "there"]
    finally:
        run_fail(run_id=run.id, reason="test over")
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(UNSERVED)
    assert wait_for_run(run.id).status == "failed"


def test_nodes_kept_on_one_thread_stop_when_the_starter_loses_access(
    worker, workspace, owner, slow_echo_model
):
    from workspaces.models import Membership

    # Each node streams eight tokens 200 ms apart: longer than the worker goes without checking.
    chain = graph(
        _llm("first", slow_echo_model, "{{input_1.message}}"),
        _llm("second", slow_echo_model, "{{first.text}}"),
        edges=[edge("second.text", "output_1.text")],
    )
    run = _start(workspace, owner, "kept", chain, "one two three four five six seven eight")
    deadline = time.monotonic() + 30
    while ("node.started", "first") not in {(e["type"], e["node"]) for e in logged_events(run.id)}:
        assert time.monotonic() < deadline, "the first model node never started"
        time.sleep(0.05)
    Membership.objects.filter(user=owner, workspace=workspace).update(role="viewer")

    run = wait_for_run(run.id)

    assert run.status == "failed"
    assert run.error.startswith("permission revoked: the user who started the run")
    assert not NodeResult.objects.filter(run=run, node_id="second", status="succeeded").exists()


def test_an_iteration_over_a_model_node_takes_one_hop_and_collects_in_order(
    worker, workspace, owner, slow_echo_model
):
    items = [f"item {i}" for i in range(12)]
    each = node("each", "iteration", {"result": "body.text", "parallelism": 4})
    body = _llm("body", slow_echo_model, "{{each.index}} {{each.item}}") | {"parent": "each"}
    over_items = graph(
        each,
        body,
        edges=[edge("input_1.items", "each.items"), edge("each.results", "output_1.results")],
        inputs={"items": "json"},
        outputs={"results": "json"},
    )
    before = worker.log()

    run = run_graph(workspace=workspace, owner=owner, graph=over_items, inputs={"items": items})

    assert run.status == "succeeded", run.error
    assert run.outputs == {"results": [f"{i} item {i}" for i in range(12)]}
    bodies = NodeResult.objects.filter(run=run, node_id__startswith="body[")
    assert sorted(r.node_id for r in bodies) == sorted(f"body[{i}]" for i in range(12))
    assert {r.attempts for r in bodies} == {1}
    # Items of three tokens 200 ms apart: four at a time, on the thread that runs the run.
    starts = sorted(r.started_at for r in bodies)
    ends = sorted(r.finished_at for r in bodies)
    assert starts[3] < ends[0], "the first four items did not run at the same time"
    assert starts[4] >= ends[0], "more than four items ran at once"
    _assert_one_hop(worker, before)
