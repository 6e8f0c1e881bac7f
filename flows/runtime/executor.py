"""The executor: a state machine over stored ``NodeResult`` rows.

``run_advance`` runs every node whose inputs are ready: cheap nodes inline; engine nodes kept,
claimed, for the calling worker when it serves their queue, else dispatched to the queue of
their engine's workers (a ``pending`` row, then a task). ``node_execution.node_run`` runs a
worker's claimed nodes, stores their results once and re-enters ``run_advance`` in the same
transaction; so no task waits on another, and a node that already has a result is never
executed again.

Branches: a node fed by an output port that its source skipped (an untaken branch) is skipped
too, unless it ``merges``. Containers: the nodes inside an iteration or a loop run once per item
or round, each instance stored under its own key (``llm_1[3]``); the container collects what
they give back and finishes when its type says so. A node's failure goes by its policy
(``flows/runtime/policy.py``): retried, replaced by a default, sent down the error branch, or it
fails its container, and at the top level the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from flows.history import SYSTEM_HISTORY
from flows.models import SETTLED, TERMINAL, NodeResult, NodeStatus, Run, RunStatus
from flows.nodes.base import NodeOutput
from flows.runtime import dispatch, policy
from flows.schema import CheckedGraph, GraphError, Link, Node
from flows.selectors import version_graph
from flows.services import run_fail
from flows.services.runs import run_tree_count
from flows.variables import CONVERSATION, SYSTEM_VARIABLES, conversation_reads
from studio import events, tracing


def graph_of(run: Run) -> CheckedGraph:
    """The run's checked graph, kept per process (``version_graph``)."""
    return version_graph(run.flow_version_id)


# How many ready nodes one pass keeps for the calling worker to run at once; the others go through
# the broker to other workers.
KEEP_AT_MOST = 16

# The queue each dispatched node of a run goes to, decided at its first instance and kept for the
# run (an iteration's body would otherwise look its model up again on every pass).
_QUEUES: dict[tuple[Any, str], str | None] = {}
_QUEUES_KEPT = 4096
_QUEUES_LOCK = threading.Lock()


def _queue_of(run: Run, node: Node) -> str | None:
    key = (run.id, node.id)
    try:
        return _QUEUES[key]
    except KeyError:
        pass
    queue = node.kind.queue(node.config, run.workspace_id)
    with _QUEUES_LOCK:
        if len(_QUEUES) >= _QUEUES_KEPT:
            del _QUEUES[next(iter(_QUEUES))]
        _QUEUES[key] = queue
    return queue


def instance_key(node_id: str, path: tuple[int, ...]) -> str:
    """The key of a node's result: its id, and the item or round of each container around it."""
    return node_id + "".join(f"[{i}]" for i in path)


def node_of_key(key: str) -> str:
    return key.split("[", 1)[0]


def usage_of(run: Run, results: list[NodeResult] | None = None) -> dict:
    """The run's tokens: from ``results`` when they are all of them, else from the database."""
    if results is None:
        totals = run.node_results.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
        input_tokens, output_tokens = totals["i"] or 0, totals["o"] or 0
    else:
        input_tokens = sum(r.input_tokens for r in results)
        output_tokens = sum(r.output_tokens for r in results)
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


class _NodeFailed(Exception):
    """A node failed and its policy does not handle it: its container (or the run) fails."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


class _RunOver(Exception):
    """The run is past its deadline: it fails, whatever the policies of its containers."""


@dataclass
class _Scope:
    path: tuple[int, ...]
    container: str | None
    # What each enclosing container gives its nodes in this instance: {container: {port: value}}.
    inner: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Advance:
    """One pass of ``run_advance`` over a locked run."""

    def __init__(self, run: Run, graph: CheckedGraph, local: Collection[str] = ()) -> None:
        self.run = run
        self.graph = graph
        self.local = local
        self.kept: list[NodeResult] = []
        # Loaded as needed: the top level now, each container's open instances when it runs,
        # so that a long iteration does not read its finished items again on every pass. A
        # queued run has none: results are only written by passes, the first of which moves
        # the run on from queued in its own transaction.
        fresh = run.status == RunStatus.QUEUED
        self.results = {} if fresh else {r.node_id: r for r in run.node_results.filter(depth=0)}
        self.loaded: set[str] = set()  # the instances whose results were read
        # Without containers the top level is the whole run (at most MAX_NODES results).
        self.executed = len(self.results) if fresh or graph.flat else run.node_results.count()
        # Results made in this pass and not inserted yet: ``flush`` writes them in one statement.
        self.unsaved: list[NodeResult] = []
        # What inline nodes read of the run: its inputs, and its history and conversation
        # variables under system keys.
        self.run_inputs = {
            **run.inputs,
            SYSTEM_HISTORY: run.history,
            SYSTEM_VARIABLES: run.variables,
        }
        self.outbox: list[tuple[str, str | None, dict | None]] = []
        self.to_dispatch: list[tuple[str, str]] = []
        self.created = 0
        # Inline nodes run on this worker thread: past its share, the pass starts nothing more
        # and the run goes on in a fresh task, behind the other runs' tasks.
        self.yield_at = time.monotonic() + settings.STUDIO_RUN_PASS_S
        self.yielded = False

    def _load_instances(self, container: str, path: tuple[int, ...], indices: list[int]) -> None:
        """The results of the nodes inside the given instances of a container (and inside the
        containers in them), read once per pass."""
        keys, prefixes = [], []
        for index in indices:
            instance = instance_key(container, (*path, index))
            if instance in self.loaded:
                continue
            self.loaded.add(instance)
            for child in self.graph.children(container):
                key = instance_key(child, (*path, index))
                keys.append(key)
                if self.graph.nodes[child].kind.container:
                    prefixes.append(key + "[")
        if not keys:
            return
        where = Q(node_id__in=keys)
        for prefix in prefixes:
            where |= Q(node_id__startswith=prefix)
        depth = len(path) + 1
        found = self.run.node_results.defer("inputs").filter(where, depth__gte=depth)
        for result in found:
            self.results.setdefault(result.node_id, result)

    # -- scopes ------------------------------------------------------------------------------

    def scope(self, scope: _Scope) -> None:
        """Run what is ready in one scope (the top level, or one container instance) until
        nothing more can start. Raises ``_NodeFailed`` for an unhandled failure in it."""
        progressed = True
        while progressed:
            progressed = False
            for node_id in self.graph.children(scope.container):
                node = self.graph.nodes[node_id]
                key = instance_key(node_id, scope.path)
                result = self.results.get(key)
                if result is None:
                    progressed |= self._start(node, key, scope)
                elif result.status == NodeStatus.FAILED:
                    raise _NodeFailed(key, result.error)
                elif result.status == NodeStatus.RUNNING and node.kind.container:
                    progressed |= self._container(node, result, scope)
                elif result.status == NodeStatus.WAITING:
                    progressed |= self._resolve(node, result)

    def settled(self, container: str | None, path: tuple[int, ...]) -> bool:
        for node_id in self.graph.children(container):
            result = self.results.get(instance_key(node_id, path))
            if result is None or result.status not in SETTLED:
                return False
        return True

    # -- starting a node ---------------------------------------------------------------------

    def _gather(self, node: Node, scope: _Scope) -> tuple[dict, int, int] | None:
        """The node's inputs, and how many of its links are live and dead; None if a source
        has not settled yet."""
        inputs: dict[str, Any] = {}
        live = dead = 0
        for link in self.graph.incoming(node.id):
            if link.inner:
                value, alive = scope.inner[link.source].get(link.source_port), True
            else:
                found = self._source(link, scope)
                if found is None:
                    return None
                value, alive = found
            if not alive:
                dead += 1
                continue
            live += 1
            if link.target_port != "_trigger":
                inputs[link.target_port] = value
        if CONVERSATION not in self.graph.nodes:  # else ``{{conversation.x}}`` is that node's
            for port, name in conversation_reads(node.inputs).items():
                inputs[port] = self.run.variables.get(name)
        return inputs, live, dead

    def _source(self, link: Link, scope: _Scope) -> tuple[Any, bool] | None:
        depth = len(self.graph.ancestors(link.source))
        source = self.results.get(instance_key(link.source, scope.path[:depth]))
        if source is None or source.status not in SETTLED:
            return None
        if source.status == NodeStatus.SKIPPED or link.source_port in source.skip:
            return None, False
        return source.outputs.get(link.source_port), True

    def _start(self, node: Node, key: str, scope: _Scope) -> bool:
        gathered = self._gather(node, scope)
        if gathered is None:
            return False
        inputs, live, dead = gathered
        if dead and (not node.kind.merges or not live):
            self._store(node, key, NodeStatus.SKIPPED, inputs={})
            self.outbox.append((events.NODE_SKIPPED, key, {"type": node.kind.type}))
            return True
        if self._out_of_time():
            return False
        self._count()
        if node.kind.container:
            return self._container_begin(node, key, inputs, scope)
        if node.kind.waits:
            self._wait(node, key, inputs)
            return True
        queue = _queue_of(self.run, node)
        if queue is None:
            self._inline(node, key, inputs)
        elif queue in self.local and len(self.kept) < KEEP_AT_MOST:
            # Kept for the calling worker, and claimed by it in this transaction: no other
            # delivery can take it, and its heartbeat starts now (a lost worker is seen).
            kept = self._store(
                node,
                key,
                NodeStatus.RUNNING,
                inputs=inputs,
                queue=queue,
                heartbeat_at=timezone.now(),
                attempts=1,
            )
            self.kept.append(kept)
            self.outbox.append((events.NODE_STARTED, key, {"type": node.kind.type, "attempt": 1}))
        else:
            self._store(node, key, NodeStatus.PENDING, inputs=inputs, queue=queue)
            self.to_dispatch.append((key, queue))
        return True

    def _out_of_time(self) -> bool:
        """Whether this pass must leave what is left to a fresh task; ``_RunOver`` once the run
        is past its deadline (the reaper's reason, without waiting for the reaper)."""
        if timezone.now() > self.run.deadline_at:
            limit = (self.run.deadline_at - self.run.created_at).total_seconds()
            raise _RunOver(f"timed out: the run did not finish within {limit:.0f} s")
        # Each pass starts one node at least, so that a run always moves on.
        self.yielded |= self.created > 0 and time.monotonic() > self.yield_at
        return self.yielded

    def _count(self) -> None:
        self.created += 1
        limit = settings.STUDIO_RUN_MAX_NODES
        self.executed += 1
        if self.executed > limit:
            raise _NodeFailed("", f"the run executed more than {limit} nodes (the limit)")

    def _store(
        self, node: Node, key: str, status: str, at_once: bool = False, **fields: Any
    ) -> NodeResult:
        """A new result of the pass, inserted by ``flush`` with the others; ``at_once`` for one
        the pass saves again itself (a container's state, a waiting node that resolves)."""
        now = timezone.now()
        started = {"started_at": now} if status != NodeStatus.PENDING else {}
        finished = {"finished_at": now} if status in SETTLED or status == NodeStatus.FAILED else {}
        result = NodeResult(
            run=self.run,
            node_id=key,
            depth=key.count("["),
            node_type=node.kind.type,
            status=status,
            **started,
            **finished,
            **fields,
        )
        if at_once:
            result.save(force_insert=True)
        else:
            self.unsaved.append(result)
        self.results[key] = result
        return result

    def flush(self) -> None:
        """Insert the results the pass made, before anything reads them from the database."""
        if self.unsaved:
            NodeResult.objects.bulk_create(self.unsaved)
            self.unsaved = []

    def _inline(self, node: Node, key: str, inputs: dict) -> None:
        started = time.monotonic()
        self.outbox.append((events.NODE_STARTED, key, {"type": node.kind.type}))
        error = None
        attributes = {"studio.node.id": key, "studio.node.type": node.kind.type}
        with tracing.span(f"node {key}", self.run.id, **attributes):
            for _attempt in range(node.policy.retries + 1):
                try:
                    output = node.kind.run(node.config, inputs, self.run_inputs)
                    break
                except Exception as exc:  # the node's own failure: its policy decides
                    error = f"{exc}" or type(exc).__name__
            else:
                output = None
        if output is None:
            self._failed(node, key, inputs, error or "failed", time.monotonic() - started)
            return
        if output.wait is not None:
            details = {**output.details, "asked": output.wait}
            self._store(node, key, NodeStatus.WAITING, inputs=inputs, details=details, attempts=1)
            self.outbox.append(run_pause(self.run, key, output.wait))
            return
        output = policy.succeeded(node, output)
        if output.variables is not None:
            self._keep_variables(output.variables)
        latency_ms = (time.monotonic() - started) * 1000
        result = self._store(
            node,
            key,
            NodeStatus.SUCCEEDED,
            inputs=inputs,
            outputs=output.outputs,
            skip=output.skip,
            details=output.details,
            latency_ms=latency_ms,
            attempts=1,
        )
        self.outbox.append((events.NODE_FINISHED, key, finished_data(result, output)))

    def _keep_variables(self, values: dict) -> None:
        """The run's conversation variables as a node left them (checked by the node against
        their limits), for the nodes after it and, once the run ends, its conversation."""
        self.run.variables = values
        self.run_inputs[SYSTEM_VARIABLES] = values
        Run.objects.filter(id=self.run.id).update(variables=values)

    def _failed(self, node: Node, key: str, inputs: dict, reason: str, seconds: float) -> None:
        handled = policy.handled(node, reason)
        if handled is None:
            self._store(
                node, key, NodeStatus.FAILED, inputs=inputs, error=reason[:10_000], attempts=1
            )
            raise _NodeFailed(key, reason)
        result = self._store(
            node,
            key,
            NodeStatus.HANDLED,
            inputs=inputs,
            outputs=handled.outputs,
            skip=handled.skip,
            details=handled.details,
            error=reason[:10_000],
            latency_ms=seconds * 1000,
            attempts=1,
        )
        self.outbox.append((events.NODE_FINISHED, key, finished_data(result, handled)))

    # -- waiting nodes -----------------------------------------------------------------------

    def _wait(self, node: Node, key: str, inputs: dict) -> None:
        self.outbox.append((events.NODE_STARTED, key, {"type": node.kind.type}))
        try:
            details = node.kind.wait_begin(node.config, inputs, self.run, key)
        except ValueError as exc:
            self._failed(node, key, inputs, str(exc), 0.0)
            return
        self._store(
            node, key, NodeStatus.WAITING, at_once=True, inputs=inputs, details=details, attempts=1
        )
        if node.kind.pauses_run:
            self.outbox.append(run_pause(self.run, key, details))

    def _resolve(self, node: Node, result: NodeResult) -> bool:
        outcome = node.kind.wait_resolve(node.config, result.details)
        if outcome is None:
            return False
        result.finished_at = timezone.now()
        result.latency_ms = (result.finished_at - result.started_at).total_seconds() * 1000
        if isinstance(outcome, str):
            handled = policy.handled(node, outcome)
            result.error = outcome[:10_000]
            if handled is None:
                result.status = NodeStatus.FAILED
                result.save(update_fields=["status", "error", "finished_at", "latency_ms"])
                raise _NodeFailed(result.node_id, outcome)
            result.status, outcome = NodeStatus.HANDLED, handled
        else:
            result.status, outcome = NodeStatus.SUCCEEDED, policy.succeeded(node, outcome)
            if outcome.variables is not None:  # a sub-flow's child wrote some
                self._keep_variables(outcome.variables)
        result.outputs, result.skip = outcome.outputs, outcome.skip
        result.input_tokens, result.output_tokens = outcome.input_tokens, outcome.output_tokens
        result.details = {**result.details, **outcome.details}
        result.save()
        self.outbox.append((events.NODE_FINISHED, result.node_id, finished_data(result, outcome)))
        return True

    # -- containers --------------------------------------------------------------------------

    def _container_begin(self, node: Node, key: str, inputs: dict, scope: _Scope) -> bool:
        self.outbox.append((events.NODE_STARTED, key, {"type": node.kind.type}))
        try:
            state = node.kind.begin(node.config, inputs)
        except (ValueError, TypeError) as exc:
            self._failed(node, key, inputs, str(exc), 0.0)
            return True
        result = self._store(
            node,
            key,
            NodeStatus.RUNNING,
            at_once=True,
            inputs=inputs,
            details={"state": state},
            attempts=1,
        )
        self._container(node, result, scope)
        return True

    def _container(self, node: Node, result: NodeResult, scope: _Scope) -> bool:
        """Advance a running container's open instances; finish it when its type says so."""
        kind, config = node.kind, node.config
        state = result.details["state"]
        path = scope.path
        changed = False
        self._load_instances(node.id, path, kind.active(config, state))
        while True:
            opened = kind.open_instances(config, state, result.inputs)
            # An instance opened in this pass has no stored results but those made here.
            self.loaded.update(instance_key(node.id, (*path, index)) for index, _ in opened)
            done_any = False
            for index, inner in opened:
                instance = _Scope(path + (index,), node.id, {**scope.inner, node.id: inner})
                before = self.created
                try:
                    self.scope(instance)
                except _NodeFailed as exc:
                    reason = f"{_which(kind, index)}: {_reason(exc)}"
                    self._container_failed(node, result, reason)
                    return True
                changed |= self.created != before
                if self.settled(node.id, instance.path):
                    collected = {
                        ref: self._collected(ref, instance.path) for ref in kind.collects(config)
                    }
                    try:
                        state = kind.instance_done(config, state, index, collected)
                    except ValueError as exc:  # e.g. a loop's exit check out of time
                        self._container_failed(node, result, f"{_which(kind, index)}: {exc}")
                        return True
                    done_any = changed = True
            if not done_any:
                break
        result.details = {**result.details, "state": state}
        finished = kind.finished(config, state)
        if finished is None:
            if changed:
                result.save(update_fields=["details"])
            return changed
        finished = policy.succeeded(node, finished)
        result.status = NodeStatus.SUCCEEDED
        result.outputs = finished.outputs
        result.skip = finished.skip
        result.finished_at = timezone.now()
        result.latency_ms = (result.finished_at - result.started_at).total_seconds() * 1000
        result.save(
            update_fields=["details", "status", "outputs", "skip", "finished_at", "latency_ms"]
        )
        self.outbox.append((events.NODE_FINISHED, result.node_id, finished_data(result, finished)))
        return True

    def _collected(self, reference: str, path: tuple[int, ...]) -> Any:
        node_id, _, port = reference.partition(".")
        result = self.results.get(instance_key(node_id, path))
        if result is None or result.status == NodeStatus.SKIPPED or port in result.skip:
            return None
        return result.outputs.get(port)

    def _container_failed(self, node: Node, result: NodeResult, reason: str) -> None:
        handled = policy.handled(node, reason)
        result.finished_at = timezone.now()
        result.error = reason[:10_000]
        if handled is None:
            result.status = NodeStatus.FAILED
            result.save(update_fields=["status", "error", "finished_at"])
            raise _NodeFailed(result.node_id, reason)
        result.status = NodeStatus.HANDLED
        result.outputs = handled.outputs
        result.skip = handled.skip
        result.save(update_fields=["status", "error", "finished_at", "outputs", "skip"])
        self.outbox.append((events.NODE_FINISHED, result.node_id, finished_data(result, handled)))


def _which(kind: Any, index: int) -> str:
    return f"{'round' if kind.type == 'loop' else 'item'} {index}"


def _reason(exc: _NodeFailed) -> str:
    return f"node {exc.key!r} failed: {exc.reason}" if exc.key else exc.reason


def finished_data(result: NodeResult, output: NodeOutput) -> dict:
    return {
        "type": result.node_type,
        "status": result.status,
        "outputs": result.outputs,
        "skip": result.skip,
        "error": result.error,
        "input_tokens": output.input_tokens,
        "output_tokens": output.output_tokens,
        "latency_ms": result.latency_ms,
        **output.details,
    }


Event = tuple[str, str | None, dict | None]


def run_pause(run: Run, key: str, asked: dict) -> Event:
    """The locked ``run`` waits for a person to answer node ``key``: its deadline moves by
    ``asked["deadline_s"]``; the ``run.waiting`` event to publish, carrying what is asked."""
    run.status = RunStatus.WAITING
    wait = timedelta(seconds=asked.get("deadline_s", 0))
    run.deadline_at = max(run.deadline_at, timezone.now() + wait)
    run.save(update_fields=["status", "deadline_at"])
    return (events.RUN_WAITING, key, asked)


def run_advance(
    run_id: Any,
    local: Collection[str] = (),
    settle: Callable[[], list[Event]] | None = None,
    check: Callable[[Run], None] | None = None,
    known: Run | None = None,
) -> list[NodeResult]:
    """Move a run forward as far as it can go now. Idempotent; safe to call concurrently.

    Holds the run's row lock while it decides, so two deliveries of the same task cannot
    dispatch a node twice. Events and tasks go out after the commit.

    ``local`` names the queues the calling worker serves: the nodes made ready for those (up to
    ``KEEP_AT_MOST``) are not sent through the broker but stored already claimed (``running``,
    with a heartbeat) and returned, their run attached, for the caller to run on its own thread
    right away (``node_execution.node_run``): a run takes one hop, not one per node, and the
    reaper treats those nodes as any other. ``settle`` stores finished nodes' results in the
    same transaction, once the run is locked, and gives the events to publish before the pass's
    own. ``check`` is the access layer's check of the locked run (its flow read with it): when
    it raises PermissionDenied, the run fails with the reason instead of going on. ``known``:
    the run as an earlier pass of this worker read it; only what passes change is read again.
    """
    failure: str | None = None
    step: _Advance | None = None
    settled: list[Event] = []
    with transaction.atomic():
        run = _locked(run_id, known)
        if run is None or run.status in TERMINAL:
            return []  # deleted, or over
        if settle is not None:
            settled = settle()
        try:
            if check is not None:
                check(run)
            graph = graph_of(run)
        except PermissionDenied as exc:
            failure = f"permission revoked: {exc}"
        except GraphError as exc:
            failure = f"the flow could not run: {exc}"
        else:
            step = _Advance(run, graph, local)
            if run.status == RunStatus.QUEUED:
                # The claim: only the delivery that moves queued → running starts the run.
                run.status = RunStatus.RUNNING
                run.started_at = timezone.now()
                run.save(update_fields=["status", "started_at"])
                step.outbox.append((events.RUN_STARTED, None, {"flow": run.flow_id}))
            try:
                step.scope(_Scope((), None))
            except _NodeFailed as exc:
                failure = _reason(exc)
            except _RunOver as exc:
                failure = str(exc)
            step.flush()
            if failure is None and step.settled(None, ()):
                _succeed(run, graph, step)
            elif failure is None and step.yielded:
                # The run goes on in the task sent after the commit: if that one is lost, the
                # reaper sends it again (``runs._idle``), counting from now.
                Run.objects.filter(id=run.id).update(dispatched_at=timezone.now())
            if step.created and (run.root_id or graph.of_type("subflow")):
                # Sub-flows multiply: the tree's limits too (past one, the tree fails).
                run_tree_count(run=run, nodes=step.created)
    outbox = settled + (step.outbox if step is not None else [])
    if outbox:
        events.publish_many_sync(run_id, outbox)
    if failure is not None:
        run_fail(run_id=run_id, reason=failure)
        return []
    if step is None:
        return []
    for key, queue in step.to_dispatch:
        dispatch.execute(run_id, key, queue)
    if step.yielded:
        dispatch.advance(run_id)
    if step.run.status == RunStatus.SUCCEEDED and step.run.parent_id:
        dispatch.advance(step.run.parent_id)  # its sub-flow node waits for this run
    return step.kept


def _locked(run_id: Any, known: Run | None) -> Run | None:
    """The run, its row locked for the pass; None if it is gone."""
    if known is not None:
        # Passes change only these; the rest of a run (its flow, version, inputs) never does.
        mutable = ("status", "deadline_at", "started_at", "finished_at", "error", "variables")
        row = Run.objects.select_for_update().filter(id=run_id).values(*mutable).first()
        if row is None:
            return None
        for name, value in row.items():
            setattr(known, name, value)
        return known
    # The run's row only: without ``of``, PostgreSQL also locks the joined rows, and every run
    # of one flow would wait for the others' passes. The graph is read once per process
    # (``graph_of``), not on every pass.
    locked = Run.objects.select_for_update(of=("self",)).select_related("flow")
    return locked.filter(id=run_id).first()


def _succeed(run: Run, graph: CheckedGraph, step: _Advance) -> None:
    outputs: dict[str, Any] = {}
    for node in graph.of_type("output"):
        result = step.results[node.id]
        if result.status == NodeStatus.SUCCEEDED:
            outputs.update(result.outputs)
    run.outputs = outputs
    run.usage = usage_of(run, list(step.results.values()) if graph.flat else None)
    run.status = RunStatus.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["outputs", "usage", "status", "finished_at"])
    latency_ms = (run.finished_at - run.created_at).total_seconds() * 1000
    tracing.run_finished(
        run.id,
        f"run {run.flow.slug}",
        run.created_at.timestamp(),
        run.finished_at.timestamp(),
        ok=True,
        **{"studio.run.id": str(run.id), "studio.flow.slug": run.flow.slug},
        **{"gen_ai.usage.input_tokens": run.usage["input_tokens"]},
        **{"gen_ai.usage.output_tokens": run.usage["output_tokens"]},
    )
    step.outbox.append(
        (
            events.RUN_FINISHED,
            None,
            {"outputs": run.outputs, "usage": run.usage, "latency_ms": latency_ms},
        )
    )
