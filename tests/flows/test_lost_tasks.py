"""A task lost between the broker and a worker's claim is sent again; one still queued is not."""

from __future__ import annotations

import json
import time

import pytest

from flows.models import NodeResult, NodeStatus, Run, RunSource, RunStatus
from flows.runtime import dispatch, executor
from flows.services import run_create, runs_fail_stale
from studio.celery import app
from tests.flows.helpers import wait_for_run
from workers.queues import FLOWS, INFERENCE

STALE_S = 0.5


@pytest.fixture
def paused(worker, settings):
    """The worker stops taking the executor's and the inference queue's tasks, so that the test
    decides what the broker holds; it takes them again when the test resumes it or ends."""
    settings.STUDIO_DISPATCH_STALE_S = STALE_S
    consuming = set()

    def resume() -> None:
        for queue in sorted(consuming):
            app.control.add_consumer(queue, reply=True, timeout=5, limit=1)
        consuming.clear()

    for queue in (FLOWS, INFERENCE):
        replies = app.control.cancel_consumer(queue, reply=True, timeout=5, limit=1)
        assert replies, "the worker did not answer"
        consuming.add(queue)
    time.sleep(1.5)  # a fetch already waiting on the queue's list (one second at most) ends
    yield resume
    resume()


def redis():
    with app.connection_for_write() as connection:
        return connection.default_channel.client


def queued(queue: str) -> int:
    return redis().llen(queue)


def lose(queue: str) -> None:
    """The broker loses every task waiting in ``queue`` (as when the worker that took them died
    before claiming them)."""
    redis().delete(queue)


def start(flow) -> Run:
    return run_create(
        flow=flow, version=flow.published_version, inputs={"message": "hi"}, source=RunSource.API
    )


def dispatched(flow) -> Run:
    """A run whose model node was dispatched to the inference queue (by a pass made here, so
    that no worker keeps the node for itself); its first task, already passed, is dropped."""
    run = start(flow)
    executor.run_advance(run.id)
    lose(FLOWS)
    assert NodeResult.objects.get(run=run, node_id="llm_1").status == NodeStatus.PENDING
    assert queued(INFERENCE) == 1
    return run


def aged() -> None:
    time.sleep(STALE_S + 0.1)


def test_a_node_whose_task_was_lost_is_sent_again_and_the_run_succeeds(
    paused, echo_model, make_flow
):
    run = dispatched(make_flow(echo_model))
    lose(INFERENCE)
    aged()
    assert runs_fail_stale(run_id=run.id) == 0
    assert queued(INFERENCE) == 1  # sent again
    paused()
    run = wait_for_run(run.id, timeout=30)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "hi"}
    result = NodeResult.objects.get(run=run, node_id="llm_1")
    assert (result.attempts, result.requeues) == (1, 1)


def test_a_node_waiting_in_its_queue_is_not_sent_twice(paused, echo_model, make_flow):
    run = dispatched(make_flow(echo_model))
    aged()
    assert runs_fail_stale(run_id=run.id) == 0
    assert queued(INFERENCE) == 1  # its one task still waits its turn
    assert NodeResult.objects.get(run=run, node_id="llm_1").requeues == 0
    paused()
    run = wait_for_run(run.id, timeout=30)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert NodeResult.objects.get(run=run, node_id="llm_1").attempts == 1


def test_a_node_whose_task_is_lost_too_often_fails_the_run_with_the_reason(
    paused, echo_model, make_flow, settings
):
    settings.STUDIO_NODE_REQUEUES = 1
    run = dispatched(make_flow(echo_model))
    lose(INFERENCE)
    aged()
    assert runs_fail_stale(run_id=run.id) == 0  # sent again once
    lose(INFERENCE)
    aged()
    assert runs_fail_stale(run_id=run.id) == 1
    assert queued(INFERENCE) == 0
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == (
        "task lost: node 'llm_1' on queue 'inference' was sent 2 times and no worker took it "
        f"within {STALE_S:g} s"
    )
    assert NodeResult.objects.get(run=run, node_id="llm_1").status == NodeStatus.FAILED


def test_a_node_taken_by_a_worker_that_died_is_sent_again_without_counting(
    paused, echo_model, make_flow, settings
):
    settings.STUDIO_NODE_REQUEUES = 0
    run = dispatched(make_flow(echo_model))
    # A worker took the task and died before starting it: it stays in the broker's unacked
    # hash (restored only after the visibility timeout) and its queue's list is empty.
    client = redis()
    taken = json.loads(client.rpop(INFERENCE))
    client.hset("unacked", "dead-worker-tag", json.dumps([taken, "", INFERENCE]))
    try:
        aged()
        assert runs_fail_stale(run_id=run.id) == 0  # not counted as lost: the run goes on
        assert queued(INFERENCE) == 1
        paused()
        run = wait_for_run(run.id, timeout=30)
    finally:
        client.hdel("unacked", "dead-worker-tag")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert NodeResult.objects.get(run=run, node_id="llm_1").requeues == 0


def test_a_queued_run_whose_first_task_was_lost_is_started(paused, echo_model, make_flow):
    run = start(make_flow(echo_model))
    assert queued(FLOWS) == 1
    lose(FLOWS)
    aged()
    assert runs_fail_stale(run_id=run.id) == 0
    assert queued(FLOWS) == 1
    assert dispatch.advance_queue() == FLOWS
    paused()
    run = wait_for_run(run.id, timeout=30)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.requeues == 1
