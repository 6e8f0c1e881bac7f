"""The run life cycle through a real worker: queued → running → succeeded, events in order."""

from __future__ import annotations

from flows.models import NodeResult, NodeStatus, RunSource, RunStatus
from flows.runtime import executor, node_execution
from flows.services import run_create
from tests.flows.helpers import logged_events, wait_for_run


def test_a_run_goes_through_the_worker_and_streams_every_token(worker, slow_echo_model, make_flow):
    # A token every 200 ms, as a model makes them: each is an event of its own (tokens made
    # within a few milliseconds share one: tests/flows/test_token_batches.py).
    flow = make_flow(slow_echo_model)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "one two three four"},
        source=RunSource.STUDIO,
    )
    assert run.status == RunStatus.QUEUED

    run = wait_for_run(run.id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "one two three four"}
    # The system prompt (7 words) counts as input too.
    assert run.usage == {"input_tokens": 11, "output_tokens": 4, "total_tokens": 15}
    assert run.started_at and run.finished_at
    nodes = {r.node_id: r for r in NodeResult.objects.filter(run=run)}
    assert {n: r.status for n, r in nodes.items()} == dict.fromkeys(
        ["input_1", "llm_1", "output_1"], NodeStatus.SUCCEEDED
    )
    assert nodes["llm_1"].queue == "inference"
    assert nodes["llm_1"].output_tokens == 4
    log = logged_events(run.id)
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert [(e["type"], e["node"]) for e in log] == [
        ("run.started", None),
        ("node.started", "input_1"),
        ("node.finished", "input_1"),
        ("node.started", "llm_1"),
        ("token", "llm_1"),
        ("token", "llm_1"),
        ("token", "llm_1"),
        ("token", "llm_1"),
        ("node.finished", "llm_1"),
        ("node.started", "output_1"),
        ("node.finished", "output_1"),
        ("run.finished", None),
    ]
    assert "".join(e["data"]["text"] for e in log if e["type"] == "token") == "one two three four"
    llm_finished = log[8]["data"]
    assert llm_finished["output_tokens"] == 4 and llm_finished["latency_ms"] > 0
    assert log[-1]["data"]["outputs"] == {"text": "one two three four"}


def test_a_run_is_never_executed_twice(worker, echo_model, make_flow):
    flow = make_flow(echo_model)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "once only"},
        source=RunSource.STUDIO,
    )
    run = wait_for_run(run.id)
    events_before = logged_events(run.id)

    # Celery delivers at least once: replay both tasks by hand, in this process.
    executor.run_advance(run.id)
    node_execution.node_execute(run.id, "llm_1", runtime=None)

    assert logged_events(run.id) == events_before
    assert NodeResult.objects.filter(run=run).count() == 3


def test_inputs_are_checked_before_a_run_is_queued(db, echo_model, make_flow):
    import pytest
    from django.core.exceptions import ValidationError

    flow = make_flow(echo_model)
    for inputs, message in [
        ({}, "input 'message' is required"),
        ({"message": 3}, "input 'message' must be text"),
        ({"message": "hi", "extra": 1}, "unknown inputs: extra"),
    ]:
        with pytest.raises(ValidationError) as caught:
            run_create(flow=flow, version=flow.published_version, inputs=inputs, source="api")
        assert caught.value.messages == [message]
    assert flow.runs.count() == 0


def test_independent_branches_run_at_the_same_time(worker, slow_echo_model, workspace, owner):
    from flows.services import flow_create, flow_publish

    def llm(id_):
        config = {"model": slow_echo_model.slug, "prompt": "{{input_1.message}}"}
        return {"id": id_, "type": "llm", "config": config}

    graph = {
        "nodes": [
            {"id": "input_1", "type": "input", "config": {}},
            llm("left"),
            llm("right"),
            {
                "id": "output_1",
                "type": "output",
                "config": {"fields": [{"name": "a"}, {"name": "b"}]},
            },
        ],
        "edges": [
            {"source": "left", "source_port": "text", "target": "output_1", "target_port": "a"},
            {"source": "right", "source_port": "text", "target": "output_1", "target_port": "b"},
        ],
    }
    flow = flow_publish(
        flow=flow_create(workspace=workspace, slug="fork", name="Fork", graph=graph)
    )
    run = wait_for_run(
        run_create(
            flow=flow,
            version=flow.published_version,
            inputs={"message": "one two three four five"},
            source=RunSource.STUDIO,
        ).id
    )
    assert run.outputs == {"a": "one two three four five", "b": "one two three four five"}
    left, right = (NodeResult.objects.get(run=run, node_id=n) for n in ("left", "right"))
    # Each takes about a second (5 tokens, 200 ms apart): they overlap, neither waits for the other.
    assert left.started_at < right.finished_at and right.started_at < left.finished_at
