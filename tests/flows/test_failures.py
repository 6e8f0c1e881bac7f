"""Runs that cannot finish end as failed with a reason; nothing hangs."""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone

from catalog.services import model_create
from flows.models import NodeResult, NodeStatus, Run, RunSource, RunStatus
from flows.services import run_create, runs_fail_stale
from tests.flows.helpers import logged_events, wait_for_event, wait_for_run


def start(flow, message: str = "a b c d e f g h i j k l m n o p q r s t u v w x y z") -> Run:
    return run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": message},
        source=RunSource.STUDIO,
    )


def test_a_model_that_cannot_load_fails_the_run_with_the_reason(worker, make_flow):
    broken = model_create(slug="broken", name="Broken", engine="cpu", weights="/nonexistent")
    run = wait_for_run(start(make_flow(broken)).id)
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("node 'llm_1' failed: could not load model weights '/nonexistent'")
    assert NodeResult.objects.get(run=run, node_id="llm_1").status == NodeStatus.FAILED
    assert logged_events(run.id)[-1]["type"] == "run.failed"
    assert logged_events(run.id)[-1]["data"]["reason"] == run.error


def test_a_run_past_its_deadline_is_stopped(worker, slow_echo_model, make_flow, settings):
    settings.STUDIO_RUN_TIMEOUT_S = 2  # the deadline is fixed when the run is created
    run = wait_for_run(start(make_flow(slow_echo_model)).id, timeout=30)
    assert run.status == RunStatus.FAILED
    # Whichever notices first ends it: the worker waiting on the node, or the reaper.
    assert run.error in (
        "timed out: node 'llm_1' was still running at the run's deadline",
        "timed out: the run did not finish within 2 s",
    )
    tokens = [e for e in logged_events(run.id) if e["type"] == "token"]
    assert 0 < len(tokens) < 26


def test_a_worker_killed_mid_run_is_resumed_by_the_next_worker(worker, slow_echo_model, make_flow):
    flow = make_flow(slow_echo_model)
    run = start(flow)
    wait_for_event(run.id, "token")
    worker.kill()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # nobody has noticed yet

    worker.start()  # its reaper finds the node whose heartbeat stopped and dispatches it again
    run = wait_for_run(run.id, timeout=60)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "a b c d e f g h i j k l m n o p q r s t u v w x y z"}
    result = NodeResult.objects.get(run=run, node_id="llm_1")
    assert result.attempts == 2
    retry = [e for e in logged_events(run.id) if e["type"] == "node.retry"]
    assert [(e["node"], e["data"]["error"]) for e in retry] == [("llm_1", "worker lost")]
    # Each node's result is stored once: the input node did not run again.
    assert NodeResult.objects.filter(run=run).count() == 3


def test_a_node_whose_workers_keep_dying_fails_the_run_with_the_reason(
    worker, slow_echo_model, make_flow, settings
):
    settings.STUDIO_NODE_REQUEUES = 0  # this process's reaper gives up at once
    run = start(make_flow(slow_echo_model))
    wait_for_event(run.id, "token")
    worker.kill()
    stale_after = settings.STUDIO_HEARTBEAT_STALE_S + 1
    deadline = timezone.now() + timedelta(seconds=stale_after + 10)
    while not runs_fail_stale(run_id=run.id) and timezone.now() < deadline:
        time.sleep(0.5)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("worker lost: node 'llm_1' on queue 'inference' stopped")
    assert run.error.endswith("(1 attempts)")
    worker.start()
    wait_for_event(run.id, "run.failed")
    assert wait_for_run(
        start(make_flow(slow_echo_model, slug="next"), "still alive").id
    ).outputs == {"text": "still alive"}


def test_a_run_no_worker_picks_up_times_out(db, echo_model, make_flow):
    # Not transactional: on_commit never fires, so no task is sent, as if no worker existed.
    run = start(make_flow(echo_model))
    ago = timezone.now() - timedelta(seconds=601)  # created 601 s ago with a 600 s limit
    Run.objects.filter(id=run.id).update(created_at=ago, deadline_at=ago + timedelta(seconds=600))
    assert runs_fail_stale() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "timed out: the run did not finish within 600 s (no worker picked it up)"
    assert runs_fail_stale() == 0  # already ended: nothing to do twice


def test_a_slow_node_times_out_is_retried_then_gives_its_default(
    worker, slow_echo_model, workspace, owner
):
    from flows.demo import assistant_graph
    from flows.services import flow_create, flow_publish

    graph = assistant_graph(model=slow_echo_model.slug)
    graph["nodes"][1]["policy"] = {
        "timeout_s": 1,
        "retries": 1,
        "retry_backoff_s": 0.2,
        "on_error": "default",
        "default": {"text": "the model is busy"},
    }
    flow = flow_create(workspace=workspace, slug="patient", name="Patient", graph=graph, user=owner)
    run = wait_for_run(start(flow_publish(flow=flow, user=owner)).id)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "the model is busy"}
    result = NodeResult.objects.get(run=run, node_id="llm_1")
    assert (result.status, result.attempts, result.error) == (
        NodeStatus.HANDLED,
        2,
        "timed out after 1 s",
    )
    retries = [e["data"] for e in logged_events(run.id) if e["type"] == "node.retry"]
    assert retries == [{"attempt": 1, "error": "timed out after 1 s", "delay_s": 0.2}]
