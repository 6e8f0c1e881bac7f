"""Running dispatched nodes on a worker: claim one, run it on the process's event loop with its
heartbeat and timeouts, store its result once (or retry it, or handle its failure by its policy),
and re-enter the executor.

The nodes the executor keeps for this worker after it (``run_advance``'s ``local``) run on the
same thread, several at once when they are ready together (an iteration's items, parallel
branches): each finished batch is stored, and the run moved on, in one transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.services.usage import usage_record_many
from flows.models import NodeResult, NodeStatus, Run, RunStatus
from flows.nodes.base import NodeContext, NodeOutput
from flows.runtime import dispatch, policy
from flows.runtime.executor import (
    Event,
    finished_data,
    graph_of,
    node_of_key,
    run_advance,
    run_pause,
)
from flows.schema import Node
from flows.services import run_fail
from studio import events, tracing

log = logging.getLogger(__name__)

LIVE = (RunStatus.RUNNING, RunStatus.WAITING)


class Runtime(Protocol):
    """What a worker process lends the executor (``workers/resident.py``)."""

    def submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future: ...

    async def engine_for(self, model: Any) -> Any: ...

    def must_load(self, model: Any) -> bool: ...


@dataclass
class _Flight:
    """A node running on the event loop for this thread."""

    result: NodeResult
    node: Node
    future: concurrent.futures.Future
    metered: list  # the usage rows of its model calls, written with its result
    started: float  # monotonic
    timeout: float | None
    deadline: datetime | None  # the node's own timeout, as a time


@dataclass
class _Outcome:
    flight: _Flight
    output: NodeOutput | None  # None: it failed with ``error``
    error: str = ""


def node_execute(run_id: Any, key: str, runtime: Runtime, local: Collection[str] = ()) -> None:
    """Execute one dispatched node (or an instance of one) on this worker: ``node_claim``, then
    ``node_run``."""
    result = node_claim(run_id, key)
    if result is not None:
        node_run([result], runtime, local)


def node_claim(run_id: Any, key: str) -> NodeResult | None:
    """The node, claimed for this worker (``pending`` → ``running``), its run attached; None if
    it was not pending (another delivery took it) or its run is over."""
    now = timezone.now()
    claimed = NodeResult.objects.filter(
        run_id=run_id, node_id=key, status=NodeStatus.PENDING, run__status__in=LIVE
    ).update(
        status=NodeStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    result = NodeResult.objects.select_related("run__flow").get(run_id=run_id, node_id=key)
    node = graph_of(result.run).nodes[node_of_key(key)]
    events.publish_sync(
        run_id, events.NODE_STARTED, key, {"type": node.kind.type, "attempt": result.attempts}
    )
    return result


def node_run(
    claimed: list[NodeResult],
    runtime: Runtime,
    local: Collection[str] = (),
    may_go_on: Callable[[], bool] = lambda: True,
) -> None:
    """Run nodes of one run claimed by this worker, and those the executor keeps for it as the
    run goes on, until none is left.

    While nodes run, their heartbeat is refreshed every ``STUDIO_HEARTBEAT_S`` so that
    ``runs_fail_stale`` can tell a slow node from a dead worker; each gives up at its timeout,
    all at the run's deadline or when the run ended elsewhere. ``may_go_on`` is asked before
    nodes kept after the first batch start; once it says no, the run is left as it is.
    """
    run = claimed[0].run
    flights: dict[str, _Flight] = {}
    ready = claimed
    beat = settings.STUDIO_HEARTBEAT_S
    last_beat = time.monotonic()
    while ready or flights:
        for result in ready:
            flights[result.node_id] = _launch(result, run, runtime)
        wait = max(0.0, beat - (time.monotonic() - last_beat))
        done, _ = concurrent.futures.wait(
            [flight.future for flight in flights.values()],
            timeout=wait,
            return_when=concurrent.futures.FIRST_COMPLETED,
        )
        outcomes = [_outcome(flights.pop(f.result.node_id)) for f in _of(flights, done)]
        if time.monotonic() - last_beat >= beat and flights:
            last_beat = time.monotonic()
            if not _beat(run, flights, outcomes):
                return  # the run is over: what was running is abandoned
        found = [outcome for outcome in outcomes if outcome is not None]
        ready = _settle(run, found, local) if found else []
        if ready:
            run = ready[0].run  # as the pass left it (a waiting node may move the deadline)
        if ready and not may_go_on():
            for flight in flights.values():
                flight.future.cancel()
            return


def _of(flights: dict[str, _Flight], done: set) -> list[_Flight]:
    return [flight for flight in flights.values() if flight.future in done]


def _launch(result: NodeResult, run: Run, runtime: Runtime) -> _Flight:
    key = result.node_id
    node = graph_of(run).nodes[node_of_key(key)]
    tokens = events.TokenBuffer(run.id, key)
    metered: list = []

    async def emit(type_: str, data: dict) -> None:
        if type_ == events.TOKEN and data.keys() == {"text"}:
            await tokens.add(data["text"])
            return
        await tokens.flush()  # the node's tokens so far come before what it reports next
        await events.publish(run.id, type_, key, data)

    ctx = NodeContext(
        run_id=str(run.id),
        node_id=key,
        workspace_id=run.workspace_id,
        emit=emit,
        engine_for=runtime.engine_for,
        engine_loads=runtime.must_load,
        flow_id=run.flow_id,
        flow_slug=run.flow.slug,
        api_key_id=run.api_key_id,
        user_id=run.created_by_id,
        response_cache=run.flow.response_cache,
        history=run.history,
        metered=metered,
    )
    timeout = policy.timeout(node)
    began = result.started_at or timezone.now()
    running = node.kind.arun(ctx, node.config, result.inputs)
    if tracing.ENABLED:
        running = _in_span(running, run.id, key, node.kind.type)
    future = runtime.submit(_flushed(running, tokens))
    return _Flight(
        result=result,
        node=node,
        future=future,
        metered=metered,
        started=time.monotonic(),
        timeout=timeout,
        deadline=began + timedelta(seconds=timeout) if timeout else None,
    )


def _outcome(flight: _Flight) -> _Outcome | None:
    """What a finished node gave; None if it was cancelled (the run ended meanwhile)."""
    try:
        return _Outcome(flight, flight.future.result())
    except (asyncio.CancelledError, concurrent.futures.CancelledError):
        return None
    except Exception as exc:  # the node's own failure: its policy decides
        result = flight.result
        log.warning("node %s of run %s failed: %s", result.node_id, result.run_id, exc)
        return _Outcome(flight, None, f"{exc}" or type(exc).__name__)


async def _in_span(running: Awaitable[NodeOutput], run_id: Any, key: str, type_: str) -> NodeOutput:
    """The node's span, in the task that runs it: the model calls it makes are its children."""
    with tracing.span(f"node {key}", run_id, **{"studio.node.id": key, "studio.node.type": type_}):
        return await running


async def _flushed(running: Awaitable[NodeOutput], tokens: events.TokenBuffer) -> NodeOutput:
    """The node's run, then its last tokens logged: before ``node.finished`` (or a retry, or a
    failure) is published, every token it streamed is in the log. A cancelled node (timeout, run
    ended) drops the tokens not logged yet."""
    try:
        output = await running
    except asyncio.CancelledError:
        tokens.discard()
        raise
    except BaseException:
        await tokens.flush()
        raise
    await tokens.flush()
    return output


def _beat(run: Run, flights: dict[str, _Flight], outcomes: list[_Outcome | None]) -> bool:
    """Refresh the running nodes' heartbeat. A node failed from outside (reaper, a client that
    saw the deadline) is cancelled and forgotten; one past its timeout is cancelled and fails
    (added to ``outcomes``). False once the run is past its deadline: then it fails."""
    now = timezone.now()
    running = NodeResult.objects.filter(run_id=run.id, status=NodeStatus.RUNNING)
    alive = running.filter(node_id__in=list(flights)).update(heartbeat_at=now)
    if alive < len(flights):
        still = set(running.filter(node_id__in=list(flights)).values_list("node_id", flat=True))
        for key in [key for key in flights if key not in still]:
            flights.pop(key).future.cancel()
    if now >= run.deadline_at:
        for flight in flights.values():
            flight.future.cancel()
        if flights:
            key = next(iter(flights))
            run_fail(
                run_id=run.id,
                node_id=key,
                reason=f"timed out: node {key!r} was still running at the run's deadline",
            )
        return False
    for key, flight in list(flights.items()):
        if flight.deadline is not None and now >= flight.deadline:
            flight.future.cancel()
            del flights[key]
            outcomes.append(_Outcome(flight, None, f"timed out after {flight.timeout:g} s"))
    return True


def _settle(run: Run, outcomes: list[_Outcome], local: Collection[str]) -> list[NodeResult]:
    """Store what the finished nodes gave and move the run on, in one transaction under the
    run's lock; the nodes it keeps for this worker, claimed already. The usage rows of their
    model calls are written in that transaction too, or alone when the run has ended."""
    metered = [row for outcome in outcomes for row in outcome.flight.metered]
    written = False

    def settle() -> list[Event]:
        nonlocal written
        usage_record_many(metered)
        written = True
        published: list[Event] = []
        for outcome in outcomes:
            published += _stored(run, outcome)
        return published

    ready = run_advance(run.id, local, settle, known=run)
    if not written:
        usage_record_many(metered)  # the calls were made, whatever became of the run
    return ready


def _stored(run: Run, outcome: _Outcome) -> list[Event]:
    """Store one node's outcome (inside the run's transaction): its result, a retry later, the
    result its policy gives a failure, or the failure, which the pass then raises. Nothing if
    the node is no longer running (the run was failed meanwhile): the result is dropped."""
    flight, error = outcome.flight, outcome.error
    node, key, attempts = flight.node, flight.result.node_id, flight.result.attempts
    running = NodeResult.objects.filter(run_id=run.id, node_id=key, status=NodeStatus.RUNNING)
    if outcome.output is not None and outcome.output.wait is not None:
        return _asked(run, flight, outcome.output)
    if outcome.output is not None:
        status, output = NodeStatus.SUCCEEDED, policy.succeeded(node, outcome.output)
    else:
        delay = policy.retry_delay(node, attempts)
        if delay is not None:
            # Sent with a countdown: its task is due, and may be missed, only then.
            due = timezone.now() + timedelta(seconds=delay)
            if not running.update(
                status=NodeStatus.PENDING, error=error[:10_000], dispatched_at=due
            ):
                return []
            queue = flight.result.queue
            transaction.on_commit(lambda: dispatch.execute(run.id, key, queue, countdown=delay))
            data = {"attempt": attempts, "error": error, "delay_s": delay}
            return [(events.NODE_RETRY, key, data)]
        handled = policy.handled(node, error)
        if handled is None:
            running.update(
                status=NodeStatus.FAILED, error=error[:10_000], finished_at=timezone.now()
            )
            return []  # the pass fails the node's container, or the run, with the reason
        status, output = NodeStatus.HANDLED, handled
    values = {
        "status": status,
        "outputs": output.outputs,
        "skip": output.skip,
        "details": output.details,
        "error": error[:10_000],
        "input_tokens": output.input_tokens,
        "output_tokens": output.output_tokens,
        "latency_ms": (time.monotonic() - flight.started) * 1000,
        "finished_at": timezone.now(),
    }
    if not running.update(**values):
        return []
    result = NodeResult(node_id=key, node_type=node.kind.type, **values)
    return [(events.NODE_FINISHED, key, finished_data(result, output))]


def _asked(run: Run, flight: _Flight, output: NodeOutput) -> list[Event]:
    """A node that asks a person before it goes on (``NodeOutput.wait``): stored ``waiting``
    with its state and the question, and the run waits (inside the run's transaction). An
    answer queues it again (``flows.services.runs.run_answer``)."""
    key = flight.result.node_id
    running = NodeResult.objects.filter(run_id=run.id, node_id=key, status=NodeStatus.RUNNING)
    asked = output.wait or {}
    waiting = running.update(
        status=NodeStatus.WAITING,
        details={**output.details, "asked": asked},
        latency_ms=(time.monotonic() - flight.started) * 1000,
    )
    return [run_pause(run, key, asked)] if waiting else []
