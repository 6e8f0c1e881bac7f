"""The executor: a state machine over stored ``NodeResult`` rows.

``run_advance`` runs every node whose inputs are ready: cheap nodes inline, engine nodes
dispatched to the queue of their engine's workers (a ``pending`` row, then a task). The worker's
``node_execute`` stores the node's result once and re-enters ``run_advance``; so no task waits
on another, and a node that already has a result is never executed again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows import dispatch
from flows.models import TERMINAL, NodeResult, NodeStatus, Run, RunStatus
from flows.nodes.base import NodeContext, NodeOutput
from flows.schema import CheckedGraph, GraphError, check_graph
from flows.services import run_fail
from studio import events

log = logging.getLogger(__name__)


class Runtime(Protocol):
    """What a worker process lends the executor (``workers/resident.py``)."""

    def submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future: ...

    async def engine_for(self, model: Any) -> Any: ...


def _graph(run: Run) -> CheckedGraph:
    return check_graph(run.flow_version.graph)


def _inputs_of(graph: CheckedGraph, node_id: str, results: dict[str, NodeResult]) -> dict:
    return {
        edge.target_port: results[edge.source].outputs.get(edge.source_port)
        for edge in graph.incoming(node_id)
    }


def _usage(results: list[NodeResult]) -> dict:
    input_tokens = sum(r.input_tokens for r in results)
    output_tokens = sum(r.output_tokens for r in results)
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def run_advance(run_id: Any) -> None:
    """Move a run forward as far as it can go now. Idempotent; safe to call concurrently.

    Holds the run's row lock while it decides, so two deliveries of the same task cannot
    dispatch a node twice. Events and tasks go out after the commit.
    """
    outbox: list[tuple] = []
    to_dispatch: list[tuple[str, str]] = []
    try:
        with transaction.atomic():
            run = Run.objects.select_for_update().select_related("flow_version").get(id=run_id)
            if run.status in TERMINAL:
                return
            if run.status == RunStatus.QUEUED:
                # The claim: only the delivery that moves queued → running starts the run.
                run.status = RunStatus.RUNNING
                run.started_at = timezone.now()
                run.save(update_fields=["status", "started_at"])
                outbox.append((events.RUN_STARTED, None, {"flow": run.flow_id}))
            graph = _graph(run)
            results = {r.node_id: r for r in run.node_results.all()}
            progressed = True
            while progressed:
                progressed = False
                for node_id in graph.order:
                    if node_id in results:
                        continue
                    upstream = [e.source for e in graph.incoming(node_id)]
                    if any(
                        s not in results or results[s].status != NodeStatus.SUCCEEDED
                        for s in upstream
                    ):
                        continue
                    node = graph.nodes[node_id]
                    inputs = _inputs_of(graph, node_id, results)
                    queue = node.kind.queue(node.config, run.workspace_id)
                    if queue is None:
                        results[node_id] = _run_inline(run, node, inputs, outbox)
                        progressed = True
                    else:
                        results[node_id] = NodeResult.objects.create(
                            run=run,
                            node_id=node_id,
                            node_type=node.kind.type,
                            status=NodeStatus.PENDING,
                            queue=queue,
                            inputs=inputs,
                        )
                        to_dispatch.append((node_id, queue))
            outputs_done = [results.get(n.id) for n in graph.of_type("output")]
            if outputs_done and all(r and r.status == NodeStatus.SUCCEEDED for r in outputs_done):
                run.outputs = {k: v for r in outputs_done for k, v in r.outputs.items()}
                run.usage = _usage(list(results.values()))
                run.status = RunStatus.SUCCEEDED
                run.finished_at = timezone.now()
                run.save(update_fields=["outputs", "usage", "status", "finished_at"])
                latency_ms = (run.finished_at - run.created_at).total_seconds() * 1000
                outbox.append(
                    (
                        events.RUN_FINISHED,
                        None,
                        {"outputs": run.outputs, "usage": run.usage, "latency_ms": latency_ms},
                    )
                )
    except (GraphError, ValueError, TypeError) as exc:
        run_fail(run_id=run_id, reason=f"the flow could not run: {exc}")
        return
    for type_, node, data in outbox:
        events.publish_sync(run_id, type_, node, data)
    for node_id, queue in to_dispatch:
        dispatch.execute(run_id, node_id, queue)


def _run_inline(run: Run, node, inputs: dict, outbox: list) -> NodeResult:
    started = time.monotonic()
    output = node.kind.run(node.config, inputs, run.inputs)
    latency_ms = (time.monotonic() - started) * 1000
    now = timezone.now()
    result = NodeResult.objects.create(
        run=run,
        node_id=node.id,
        node_type=node.kind.type,
        status=NodeStatus.SUCCEEDED,
        inputs=inputs,
        outputs=output.outputs,
        latency_ms=latency_ms,
        started_at=now,
        finished_at=now,
    )
    outbox.append((events.NODE_STARTED, node.id, {"type": node.kind.type}))
    outbox.append((events.NODE_FINISHED, node.id, _finished_data(result, output)))
    return result


def _finished_data(result: NodeResult, output: NodeOutput) -> dict:
    return {
        "type": result.node_type,
        "outputs": result.outputs,
        "input_tokens": output.input_tokens,
        "output_tokens": output.output_tokens,
        "latency_ms": result.latency_ms,
        **output.details,
    }


def node_execute(run_id: Any, node_id: str, runtime: Runtime) -> None:
    """Execute one dispatched node on this worker, store its result once, and re-enter.

    Claims the node (``pending`` → ``running``); a second delivery finds nothing to claim.
    While the node runs, it refreshes the node's heartbeat so that ``runs_fail_stale`` can tell
    a slow node from a dead worker, and it gives up at the run's deadline.
    """
    now = timezone.now()
    claimed = NodeResult.objects.filter(
        run_id=run_id, node_id=node_id, status=NodeStatus.PENDING, run__status=RunStatus.RUNNING
    ).update(status=NodeStatus.RUNNING, started_at=now, heartbeat_at=now)
    if not claimed:
        return
    result = NodeResult.objects.select_related("run__flow_version", "run__flow").get(
        run_id=run_id, node_id=node_id
    )
    run = result.run
    node = _graph(run).nodes[node_id]
    events.publish_sync(run_id, events.NODE_STARTED, node_id, {"type": node.kind.type})

    async def emit(type_: str, data: dict) -> None:
        await events.publish(run_id, type_, node_id, data)

    ctx = NodeContext(
        run_id=str(run_id),
        node_id=node_id,
        workspace_id=run.workspace_id,
        emit=emit,
        engine_for=runtime.engine_for,
        flow_id=run.flow_id,
        flow_slug=run.flow.slug,
        api_key_id=run.api_key_id,
        user_id=run.created_by_id,
        response_cache=run.flow.response_cache,
    )
    started = time.monotonic()
    future = runtime.submit(node.kind.arun(ctx, node.config, result.inputs))
    try:
        output = _wait(future, run_id, node_id, run.deadline_at)
    except _Abandoned:
        return
    except Exception as exc:  # the node's own failure: the user reads the reason
        log.warning("node %s of run %s failed: %s", node_id, run_id, exc)
        run_fail(run_id=run_id, node_id=node_id, reason=f"node {node_id!r} failed: {exc}")
        return
    latency_ms = (time.monotonic() - started) * 1000
    stored = NodeResult.objects.filter(
        run_id=run_id, node_id=node_id, status=NodeStatus.RUNNING
    ).update(
        status=NodeStatus.SUCCEEDED,
        outputs=output.outputs,
        details=output.details,
        input_tokens=output.input_tokens,
        output_tokens=output.output_tokens,
        latency_ms=latency_ms,
        finished_at=timezone.now(),
    )
    if not stored:  # the run was failed meanwhile (deadline, reaper): drop the result
        return
    result.refresh_from_db()
    events.publish_sync(run_id, events.NODE_FINISHED, node_id, _finished_data(result, output))
    run_advance(run_id)


class _Abandoned(Exception):
    pass


def _wait(future: concurrent.futures.Future, run_id: Any, node_id: str, deadline_at) -> NodeOutput:
    """Wait for the node, beating its heart; cancel it at the deadline or if the run ended."""
    beat = settings.STUDIO_HEARTBEAT_S
    while True:
        try:
            return future.result(timeout=beat)
        except concurrent.futures.TimeoutError:
            pass
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            raise _Abandoned from None
        alive = NodeResult.objects.filter(
            run_id=run_id, node_id=node_id, status=NodeStatus.RUNNING
        ).update(heartbeat_at=timezone.now())
        if not alive:  # failed from outside (reaper, deadline seen by a client)
            future.cancel()
            raise _Abandoned
        if timezone.now() >= deadline_at:
            future.cancel()
            run_fail(
                run_id=run_id,
                node_id=node_id,
                reason=f"timed out: node {node_id!r} was still running at the run's deadline",
            )
            raise _Abandoned
