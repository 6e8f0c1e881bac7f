"""Executing one dispatched node on a worker: claim it, run it with its heartbeat and timeouts,
store its result once (or retry it, or handle its failure by its policy), and re-enter the
executor."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Collection
from datetime import timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from flows.models import NodeResult, NodeStatus, RunStatus
from flows.nodes.base import NodeContext, NodeOutput
from flows.runtime import dispatch, policy
from flows.runtime.executor import finished_data, graph_of, node_of_key, run_advance
from flows.services import run_fail
from studio import events

log = logging.getLogger(__name__)

LIVE = (RunStatus.RUNNING, RunStatus.WAITING)


class Runtime(Protocol):
    """What a worker process lends the executor (``workers/resident.py``)."""

    def submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future: ...

    async def engine_for(self, model: Any) -> Any: ...


class _Abandoned(Exception):
    """The run ended meanwhile (deadline, reaper): nothing to store."""


class _NodeTimeout(Exception):
    pass


def node_execute(
    run_id: Any, key: str, runtime: Runtime, local: Collection[str] = ()
) -> str | None:
    """Execute one dispatched node (or an instance of one) on this worker.

    Claims it (``pending`` → ``running``); a second delivery finds nothing to claim. While the
    node runs, it refreshes the node's heartbeat so that ``runs_fail_stale`` can tell a slow
    node from a dead worker, and it gives up at the node's timeout or the run's deadline.

    Returns the next node that the executor kept for this worker (``run_advance``'s ``local``),
    if any: the caller executes it next, on the same thread.
    """
    now = timezone.now()
    claimed = NodeResult.objects.filter(
        run_id=run_id, node_id=key, status=NodeStatus.PENDING, run__status__in=LIVE
    ).update(
        status=NodeStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    result = NodeResult.objects.select_related("run__flow_version", "run__flow").get(
        run_id=run_id, node_id=key
    )
    run = result.run
    node = graph_of(run).nodes[node_of_key(key)]
    events.publish_sync(
        run_id, events.NODE_STARTED, key, {"type": node.kind.type, "attempt": result.attempts}
    )

    tokens = events.TokenBuffer(run_id, key)

    async def emit(type_: str, data: dict) -> None:
        if type_ == events.TOKEN and data.keys() == {"text"}:
            await tokens.add(data["text"])
            return
        await tokens.flush()  # the node's tokens so far come before what it reports next
        await events.publish(run_id, type_, key, data)

    ctx = NodeContext(
        run_id=str(run_id),
        node_id=key,
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
    timeout = policy.timeout(node)
    node_deadline = now + timedelta(seconds=timeout) if timeout else None
    future = runtime.submit(_flushed(node.kind.arun(ctx, node.config, result.inputs), tokens))
    try:
        output = _wait(future, run_id, key, run.deadline_at, node_deadline)
    except _Abandoned:
        return None
    except _NodeTimeout:
        error = f"timed out after {timeout:g} s"
    except Exception as exc:  # the node's own failure: its policy decides
        log.warning("node %s of run %s failed: %s", key, run_id, exc)
        error = f"{exc}" or type(exc).__name__
    else:
        output = policy.succeeded(node, output)
        return _store(run_id, key, node, NodeStatus.SUCCEEDED, output, started, local=local)
    return _failed(run_id, key, node, result.attempts, result.queue, error, started, local)


async def _flushed(node_run: Awaitable[NodeOutput], tokens: events.TokenBuffer) -> NodeOutput:
    """The node's run, then its last tokens logged: before ``node.finished`` (or a retry, or a
    failure) is published, every token it streamed is in the log. A cancelled node (timeout, run
    ended) drops the tokens not logged yet."""
    try:
        output = await node_run
    except asyncio.CancelledError:
        tokens.discard()
        raise
    except BaseException:
        await tokens.flush()
        raise
    await tokens.flush()
    return output


def _store(
    run_id: Any,
    key: str,
    node,
    status: str,
    output: NodeOutput,
    started: float,
    error: str = "",
    local: Collection[str] = (),
) -> str | None:
    values = {
        "status": status,
        "outputs": output.outputs,
        "skip": output.skip,
        "details": output.details,
        "error": error[:10_000],
        "input_tokens": output.input_tokens,
        "output_tokens": output.output_tokens,
        "latency_ms": (time.monotonic() - started) * 1000,
        "finished_at": timezone.now(),
    }
    stored = NodeResult.objects.filter(
        run_id=run_id, node_id=key, status=NodeStatus.RUNNING
    ).update(**values)
    if not stored:  # the run was failed meanwhile (deadline, reaper): drop the result
        return None
    result = NodeResult(node_id=key, node_type=node.kind.type, **values)
    events.publish_sync(run_id, events.NODE_FINISHED, key, finished_data(result, output))
    return run_advance(run_id, local)


def _failed(
    run_id: Any,
    key: str,
    node,
    attempts: int,
    queue: str,
    error: str,
    started: float,
    local: Collection[str] = (),
) -> str | None:
    delay = policy.retry_delay(node, attempts)
    if delay is not None:
        moved = NodeResult.objects.filter(
            run_id=run_id, node_id=key, status=NodeStatus.RUNNING
        ).update(status=NodeStatus.PENDING, error=error[:10_000])
        if moved:
            events.publish_sync(
                run_id,
                events.NODE_RETRY,
                key,
                {"attempt": attempts, "error": error, "delay_s": delay},
            )
            dispatch.execute(run_id, key, queue, countdown=delay)
        return None
    handled = policy.handled(node, error)
    if handled is not None:
        return _store(run_id, key, node, NodeStatus.HANDLED, handled, started, error, local)
    failed = NodeResult.objects.filter(
        run_id=run_id, node_id=key, status=NodeStatus.RUNNING
    ).update(status=NodeStatus.FAILED, error=error[:10_000], finished_at=timezone.now())
    if not failed:
        return None
    return run_advance(run_id, local)  # fails the node's container, or the run, with the reason


def _wait(
    future: concurrent.futures.Future, run_id: Any, key: str, deadline_at, node_deadline
) -> NodeOutput:
    """Wait for the node, beating its heart; cancel it at its timeout, at the run's deadline,
    or if the run ended."""
    beat = settings.STUDIO_HEARTBEAT_S
    while True:
        try:
            return future.result(timeout=beat)
        except concurrent.futures.TimeoutError:
            pass
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            raise _Abandoned from None
        alive = NodeResult.objects.filter(
            run_id=run_id, node_id=key, status=NodeStatus.RUNNING
        ).update(heartbeat_at=timezone.now())
        if not alive:  # failed from outside (reaper, deadline seen by a client)
            future.cancel()
            raise _Abandoned
        now = timezone.now()
        if node_deadline is not None and now >= node_deadline:
            future.cancel()
            raise _NodeTimeout
        if now >= deadline_at:
            future.cancel()
            run_fail(
                run_id=run_id,
                node_id=key,
                reason=f"timed out: node {key!r} was still running at the run's deadline",
            )
            raise _Abandoned
