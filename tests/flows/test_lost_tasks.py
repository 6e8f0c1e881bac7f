"""A task lost between the broker and a worker's claim is sent again; one still queued is not,
nor is a run that legitimately waits (on a sub-flow's run, on a person)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection, transaction

from flows.models import NodeResult, NodeStatus, Run, RunSource, RunStatus
from flows.runtime import dispatch, executor
from flows.services import run_answer, run_create, runs_fail_stale
from studio.celery import app
from tests.flows.helpers import wait_for_run
from tests.flows.test_waiting_nodes import approval_graph, child_graph, parent_graph, publish
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


def continued(flow, settings) -> Run:
    """A run whose first pass (made here, its own task dropped) left the rest to a fresh task,
    which the broker then lost."""
    settings.STUDIO_RUN_PASS_S = 0  # the pass starts one node, then yields
    run = start(flow)
    executor.run_advance(run.id)
    assert queued(FLOWS) == 2  # the first task, and the continuation
    lose(FLOWS)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.dispatched_at is not None
    assert not NodeResult.objects.filter(run=run, node_id="llm_1").exists()
    return run


def test_a_running_run_whose_next_pass_was_lost_goes_on(paused, echo_model, make_flow, settings):
    run = continued(make_flow(echo_model), settings)
    assert runs_fail_stale(run_id=run.id) == 0
    assert queued(FLOWS) == 0  # too soon: its task may still be on its way
    aged()
    assert runs_fail_stale(run_id=run.id) == 0
    assert queued(FLOWS) == 1  # sent again
    paused()
    run = wait_for_run(run.id, timeout=30)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "hi"}
    assert run.requeues == 1


def test_a_running_run_whose_next_pass_is_lost_too_often_fails_with_the_reason(
    paused, echo_model, make_flow, settings
):
    settings.STUDIO_NODE_REQUEUES = 1
    run = continued(make_flow(echo_model), settings)
    aged()
    assert runs_fail_stale(run_id=run.id) == 0  # sent again once
    lose(FLOWS)
    aged()
    assert runs_fail_stale(run_id=run.id) == 1
    assert queued(FLOWS) == 0
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == (
        "task lost: the run's next step was sent 2 times and no worker took it within "
        f"{STALE_S:g} s"
    )


def test_a_run_in_a_pass_is_not_sent_again(paused, echo_model, make_flow, settings):
    """A pass holds the run's row (its task already taken from the broker) while its inline
    nodes run, however long: the reaper leaves that run alone."""
    run = continued(make_flow(echo_model), settings)
    aged()
    locked, release = threading.Event(), threading.Event()

    def pass_in_progress() -> None:
        try:
            with transaction.atomic():
                Run.objects.select_for_update().get(id=run.id)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=pass_in_progress)
    holder.start()
    try:
        assert locked.wait(10)
        assert runs_fail_stale(run_id=run.id) == 0
        assert queued(FLOWS) == 0
    finally:
        release.set()
        holder.join()
    run.refresh_from_db()
    assert run.requeues == 0
    assert runs_fail_stale(run_id=run.id) == 0  # once the pass is over: lost, sent again
    assert queued(FLOWS) == 1


def test_a_parent_waiting_on_a_running_sub_flow_is_not_sent_again(
    paused, echo_model, make_flow, workspace, owner, settings
):
    settings.STUDIO_NODE_REQUEUES = 0
    make_flow(echo_model, slug="child")
    parent = start(publish(workspace, owner, parent_graph(), "parent"))
    executor.run_advance(parent.id)  # its sub-flow node starts the child run
    (child,) = Run.objects.filter(parent=parent)
    executor.run_advance(child.id)  # the child's model node waits on the inference queue
    lose(FLOWS)
    aged()
    assert runs_fail_stale(run_id=parent.id) == 0
    assert runs_fail_stale(run_id=child.id) == 0
    assert queued(FLOWS) == 0  # neither is sent again
    assert queued(INFERENCE) == 1
    parent.refresh_from_db()
    assert (parent.status, parent.requeues) == (RunStatus.RUNNING, 0)
    paused()
    parent = wait_for_run(parent.id, timeout=30)  # the child's end wakes it
    assert parent.status == RunStatus.SUCCEEDED, parent.error
    assert parent.outputs == {"text": "hi"}
    assert parent.requeues == 0


def test_a_parent_whose_sub_flow_ended_and_whose_wake_was_lost_goes_on(
    paused, workspace, owner, settings
):
    publish(workspace, owner, child_graph(), "child")
    parent = start(publish(workspace, owner, parent_graph(), "parent"))
    executor.run_advance(parent.id)
    (child,) = Run.objects.filter(parent=parent)
    aged()  # the parent's own pass is long over: the child's end is what woke it last
    executor.run_advance(child.id)  # inline nodes only: it ends, and wakes its parent
    child.refresh_from_db()
    assert child.status == RunStatus.SUCCEEDED
    lose(FLOWS)
    assert runs_fail_stale(run_id=parent.id) == 0
    assert queued(FLOWS) == 0  # the child ended just now: its wake may be on its way
    aged()
    assert runs_fail_stale(run_id=parent.id) == 0
    assert queued(FLOWS) == 1
    paused()
    parent = wait_for_run(parent.id, timeout=30)
    assert parent.status == RunStatus.SUCCEEDED, parent.error
    assert parent.outputs == {"text": "child says hi"}
    assert parent.requeues == 1


def test_a_run_waiting_for_a_person_is_left_alone_and_goes_on_after_the_answer(
    paused, workspace, owner, settings
):
    settings.STUDIO_NODE_REQUEUES = 0
    run = start(publish(workspace, owner, approval_graph(), "review"))
    executor.run_advance(run.id)
    lose(FLOWS)
    aged()
    assert runs_fail_stale(run_id=run.id) == 0
    assert queued(FLOWS) == 0
    run.refresh_from_db()
    assert (run.status, run.requeues) == (RunStatus.WAITING, 0)
    # The answer's own task is lost too: it is sent again, and the run ends.
    settings.STUDIO_NODE_REQUEUES = 1
    run_answer(run=run, node_key="review", values={"approved": True}, user=owner)
    lose(FLOWS)
    aged()
    assert runs_fail_stale(run_id=run.id) == 0
    assert queued(FLOWS) == 1
    paused()
    run = wait_for_run(run.id, timeout=30)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["approved"] is True
    assert run.requeues == 1
