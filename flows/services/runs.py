"""Writes of runs: start, fail, and reap the stale ones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from flows.history import history_clean
from flows.models import (
    TERMINAL,
    Flow,
    FlowVersion,
    NodeResult,
    NodeStatus,
    Run,
    RunStatus,
    RunTree,
)
from flows.nodes.base import NodeOutput
from flows.nodes.fields import FieldSpec
from flows.runtime import dispatch
from flows.schema import CheckedGraph
from flows.selectors import people_waiting_types, version_graph
from flows.variables import variables_clean
from studio import events, tracing
from workspaces.models import ApiKey

# The longest text input a run takes (a chat message is one: conversations/limits.py).
MAX_TEXT_CHARS = 200_000


def run_inputs_clean(graph: CheckedGraph, inputs: Any) -> dict:
    """The run's inputs checked against the input node's fields; ValidationError if wrong."""
    fields = [f for node in graph.of_type("input") for f in node.config.fields]
    return fields_clean(fields, inputs, "input")


def fields_clean(fields: list[FieldSpec], values: Any, what: str) -> dict:
    """``values`` checked against typed fields (a run's inputs, a person's answer)."""
    if not isinstance(values, dict):
        raise ValidationError(f"{what}s must be a JSON object")
    expected = {f.name: f for f in fields}
    unknown = sorted(set(values) - set(expected))
    if unknown:
        raise ValidationError(f"unknown {what}s: {', '.join(unknown)}")
    cleaned: dict[str, Any] = {}
    for name, spec in expected.items():
        value = values.get(name)
        if value is None:
            if spec.required:
                raise ValidationError(f"{what} {name!r} is required")
            continue
        ok = {
            "text": isinstance(value, str),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }.get(spec.type, True)
        if not ok:
            raise ValidationError(f"{what} {name!r} must be {spec.type}")
        if spec.type == "text" and len(value) > MAX_TEXT_CHARS:
            raise ValidationError(f"{what} {name!r} is longer than {MAX_TEXT_CHARS:,} characters")
        cleaned[name] = value
    return cleaned


def run_create(
    *,
    flow: Flow,
    version: FlowVersion,
    inputs: dict,
    source: str,
    user=None,
    api_key: ApiKey | None = None,
    parent: Run | None = None,
    parent_node: str = "",
    history: list | None = None,
    variables: dict | None = None,
    idempotency_key: str = "",
    arm: str = "",
) -> Run:
    """A queued run of ``version``; the executor is enqueued once the row is committed.
    ``parent``: the run whose sub-flow node ``parent_node`` waits for this one; ValidationError
    (and the tree fails) when its tree has started as many runs as it may. ``history``: the
    conversation's turns before this message (ValidationError when malformed or too long).
    ``variables``: the conversation's variables (``flows/variables.py``; ValidationError past
    their limits). ``arm``: the A/B arm that chose ``version`` (``flows.experiments``)."""
    graph = version_graph(version.id, version.graph)
    cleaned = run_inputs_clean(graph, inputs)
    run = Run.objects.create(
        workspace_id=flow.workspace_id,
        flow=flow,
        flow_version=version,
        inputs=cleaned,
        history=history_clean(history),
        variables=variables_clean(variables),
        idempotency_key=idempotency_key,
        arm=arm,
        source=source,
        created_by=user if user is not None and user.is_authenticated else None,
        api_key=api_key,
        parent=parent,
        parent_node=parent_node,
        depth=parent.depth + 1 if parent else 0,
        root_id=(parent.root_id or parent.id) if parent else None,
        deadline_at=timezone.now() + timedelta(seconds=settings.STUDIO_RUN_TIMEOUT_S),
    )
    if parent is None and graph.of_type("subflow"):
        RunTree.objects.create(root=run)
    elif parent is not None:
        # Counted after the insert, whose foreign key to the top run waits for that run's pass:
        # a pass must never wait for the top run while it holds the tree's row (the top run's
        # pass counts its nodes there last). Refused: the row goes again.
        refused = run_tree_count(run=parent, runs=1)
        if refused:
            run.delete()
            raise ValidationError(refused)
    transaction.on_commit(lambda: dispatch.advance(run.id))
    return run


def run_tree_count(*, run: Run, runs: int = 0, nodes: int = 0) -> str | None:
    """Count ``runs`` new sub-flow runs and ``nodes`` node executions against the tree ``run``
    belongs to. Past a tree limit nothing is counted, the top run (and so every run under it)
    fails once the caller's transaction commits, and the reason is returned. A run in no tree
    (no sub-flow nodes, no parent) counts nothing.

    One conditional UPDATE: the tree's row stays locked until the caller's transaction ends, so
    concurrent passes of runs in the tree count one after the other and never overshoot. Lock
    order: a transaction holding the tree's row must not wait for a run's row after it."""
    root_id = run.root_id or run.id
    max_runs, max_nodes = settings.STUDIO_RUN_TREE_MAX_RUNS, settings.STUDIO_RUN_TREE_MAX_NODES
    tree = RunTree.objects.filter(root_id=root_id)
    counted = tree.filter(runs__lte=max_runs - runs, nodes__lte=max_nodes - nodes).update(
        runs=F("runs") + runs, nodes=F("nodes") + nodes
    )
    if counted or not tree.exists():
        return None
    reason = (
        f"the run and its sub-flows started more than {max_runs} runs (the limit)"
        if runs
        else f"the run and its sub-flows executed more than {max_nodes} nodes (the limit)"
    )
    transaction.on_commit(lambda: run_fail(run_id=root_id, reason=reason))
    return reason


def run_fail(*, run_id: Any, reason: str, node_id: str | None = None) -> bool:
    """End a run as failed (and its unfinished nodes, and its sub-flows' runs). False if it had
    already ended. A sub-flow's run wakes its parent, whose node then fails by its policy."""
    now = timezone.now()
    with transaction.atomic():
        ended = (
            Run.objects.filter(id=run_id)
            .exclude(status__in=TERMINAL)
            .update(status=RunStatus.FAILED, error=reason[:10_000], finished_at=now)
        )
        if not ended:
            return False
        if tracing.ENABLED:
            _trace_failed(run_id, reason)
        NodeResult.objects.filter(
            run_id=run_id,
            status__in=[NodeStatus.PENDING, NodeStatus.RUNNING, NodeStatus.WAITING],
        ).update(status=NodeStatus.FAILED, error=reason[:10_000], finished_at=now)
        transaction.on_commit(
            lambda: events.publish_sync(run_id, events.RUN_FAILED, node_id, {"reason": reason})
        )
        parent_id = Run.objects.filter(id=run_id).values_list("parent_id", flat=True).first()
        if parent_id is not None:
            transaction.on_commit(lambda: dispatch.advance(parent_id))
        children = Run.objects.filter(parent_id=run_id).exclude(status__in=TERMINAL)
        for child_id in children.values_list("id", flat=True):
            run_fail(run_id=child_id, reason=f"its parent run failed: {reason}")
    return True


def _trace_failed(run_id: Any, reason: str) -> None:
    run = Run.objects.select_related("flow").only("created_at", "finished_at", "flow__slug")
    run = run.get(id=run_id)
    tracing.run_finished(
        run.id,
        f"run {run.flow.slug}",
        run.created_at.timestamp(),
        run.finished_at.timestamp(),
        ok=False,
        **{"studio.run.id": str(run.id), "studio.flow.slug": run.flow.slug},
        **{"error.type": reason[:200]},
    )


def run_answer(*, run: Run, node_key: str, values: Any, user=None) -> NodeResult:
    """A person's answer to a node that waits for one (human input, an agent's tool call to
    approve), checked by the node's type (``NodeType.answer_check``): the node ends with the
    outputs it gives, or is queued again to resume with the answer; the run goes on.

    ValidationError if the run is not waiting for that node; with code ``"conflict"`` when the
    node was answered already, or the answer is to an earlier question (stale). The run's and
    the node's rows are locked: of two answers at once, one wins and the other is refused."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(id=run.id)
        result = NodeResult.objects.select_for_update().filter(run=run, node_id=node_key).first()
        asks = people_waiting_types()
        if result is None or result.node_type not in asks:
            raise ValidationError("This run is not waiting for that answer.")
        if result.status != NodeStatus.WAITING or run.status in TERMINAL:
            raise ValidationError(
                "This node is not waiting for an answer now (it was answered already, or the "
                "run ended).",
                code="conflict",
            )
        node = version_graph(run.flow_version_id).nodes[node_key.split("[", 1)[0]]
        checked = node.kind.answer_check(node.config, result.details, values, user)
        if isinstance(checked, NodeOutput):
            data = _answer_ends(result, checked)
            transaction.on_commit(
                lambda: events.publish_sync(run.id, events.NODE_FINISHED, node_key, data)
            )
        else:
            _answer_resumes(result, checked)
            queue = result.queue
            transaction.on_commit(lambda: dispatch.execute(run.id, node_key, queue))
        now = timezone.now()
        waiting = run.node_results.filter(status=NodeStatus.WAITING, node_type__in=asks)
        if run.status == RunStatus.WAITING and not waiting.exists():
            run.status = RunStatus.RUNNING
        run.deadline_at = max(
            run.deadline_at, now + timedelta(seconds=settings.STUDIO_RUN_TIMEOUT_S)
        )
        # The pass the answer asks for: sent again by the reaper if its task is lost.
        run.dispatched_at = now
        run.save(update_fields=["status", "deadline_at", "dispatched_at"])
        transaction.on_commit(lambda: dispatch.advance(run.id))
    return result


def _answer_ends(result: NodeResult, output: NodeOutput) -> dict:
    """The waiting node succeeds with the answer's outputs; the ``node.finished`` event's data."""
    now = timezone.now()
    result.status = NodeStatus.SUCCEEDED
    result.outputs = output.outputs
    result.finished_at = now
    result.latency_ms = (now - result.started_at).total_seconds() * 1000
    result.save(update_fields=["status", "outputs", "finished_at", "latency_ms"])
    return {"type": result.node_type, "status": result.status, "outputs": result.outputs}


def _answer_resumes(result: NodeResult, answer: dict) -> None:
    """The waiting node goes back to its queue with the answer beside its state. A node with no
    queue runs inline and must end its wait with outputs instead."""
    if not result.queue:
        raise ValueError(f"node {result.node_id!r} runs inline: its answer must give outputs")
    details = {k: v for k, v in result.details.items() if k != "asked"}
    result.status = NodeStatus.PENDING
    result.details = {**details, "answer": answer}
    # Each answer starts the node's attempts afresh: a worker lost after it is requeued.
    result.attempts = 0
    result.dispatched_at = timezone.now()
    result.save(update_fields=["status", "details", "attempts", "dispatched_at"])


def runs_fail_stale(*, run_id: Any = None) -> int:
    """Resume or fail runs whose node lost its worker or its task, and fail runs past their
    deadline. Returns how many runs ended.

    A node whose heartbeat stopped is dispatched again (its result was never stored, so it has
    not run to the end) up to ``STUDIO_NODE_REQUEUES`` times; then the run fails with the
    reason. So is a pending node (or a queued run, or a running run waiting on nothing but its
    next pass, ``_idle``) whose task the broker has not held for ``STUDIO_DISPATCH_STALE_S``
    (``_lost_resend``). Called periodically by the worker's beat and
    by clients waiting on a run, so a killed worker or a lost task never leaves a run hanging.
    """
    now = timezone.now()
    runs = Run.objects.exclude(status__in=TERMINAL)
    stale_at = now - timedelta(seconds=settings.STUDIO_HEARTBEAT_STALE_S)
    sent_before = now - timedelta(seconds=settings.STUDIO_DISPATCH_STALE_S)
    # One scan of the results for both kinds of stale node.
    nodes = NodeResult.objects.filter(
        Q(status=NodeStatus.RUNNING, heartbeat_at__lt=stale_at)
        | Q(status=NodeStatus.PENDING) & _sent_before(sent_before)
    )
    if run_id is not None:
        runs = runs.filter(id=run_id)
        nodes = nodes.filter(run_id=run_id)
    failed = 0
    pending: list[dict] = []
    for stale in nodes.exclude(run__status__in=TERMINAL).values(
        "run_id", "node_id", "queue", "attempts", "status", "requeues"
    ):
        if stale["status"] == NodeStatus.PENDING:
            if stale["queue"]:  # a node with no queue runs inline, never from a task
                pending.append(stale)
        elif stale["attempts"] <= settings.STUDIO_NODE_REQUEUES:
            failed += _node_requeue(stale, stale_at)
        else:
            failed += run_fail(
                run_id=stale["run_id"],
                node_id=stale["node_id"],
                reason=(
                    f"worker lost: node {stale['node_id']!r} on queue {stale['queue']!r} "
                    f"stopped sending heartbeats for {settings.STUDIO_HEARTBEAT_STALE_S:g} s "
                    f"({stale['attempts']} attempts)"
                ),
            )
    queued = runs.filter(_sent_before(sent_before), status=RunStatus.QUEUED)
    queued = list(queued.values("id", "requeues"))
    idle = list(_idle(runs, sent_before).values("id", "requeues"))
    if pending or queued or idle:
        failed += _lost_resend(pending, queued, idle, sent_before)
    for run_id_, status, created_at, deadline_at in runs.filter(deadline_at__lt=now).values_list(
        "id", "status", "created_at", "deadline_at"
    ):
        limit = (deadline_at - created_at).total_seconds()
        failed += run_fail(
            run_id=run_id_,
            reason=f"timed out: the run did not finish within {limit:.0f} s"
            + (" (no worker picked it up)" if status == RunStatus.QUEUED else ""),
        )
    return failed


def _node_requeue(stale: dict, stale_at) -> int:
    """Dispatch a node whose worker was lost again (once, even if two reapers see it)."""
    moved = NodeResult.objects.filter(
        run_id=stale["run_id"],
        node_id=stale["node_id"],
        status=NodeStatus.RUNNING,
        heartbeat_at__lt=stale_at,
    ).update(
        status=NodeStatus.PENDING, error="worker lost; started again", dispatched_at=timezone.now()
    )
    if moved:
        events.publish_sync(
            stale["run_id"],
            events.NODE_RETRY,
            stale["node_id"],
            {"attempt": stale["attempts"], "error": "worker lost", "delay_s": 0},
        )
        dispatch.execute(stale["run_id"], stale["node_id"], stale["queue"])
    return 0


def _idle(runs: QuerySet, sent_before: datetime) -> QuerySet:
    """Running runs that only a lost ``advance_run`` can move on, woken last before
    ``sent_before``.

    Nothing else of such a run is under way: no node on a worker (its heartbeat covers it) or
    pending (its task, or its resend, re-enters a pass when it ends; so does a retry waiting out
    its countdown), no sub-flow run still going (it wakes its parent when it ends), and it does
    not wait for a person (that run is ``waiting``). A pass that ends so, with the run not over,
    has sent that task: it left the rest to a fresh one (``dispatched_at``, as does a person's
    answer), or what it waits for ended since (a sub-flow run's ``finished_at``). A running
    container (an iteration, a loop) has no queue: its instances' nodes are the ones looked at.
    """
    in_flight = NodeResult.objects.filter(
        Q(status=NodeStatus.PENDING) | Q(status=NodeStatus.RUNNING) & ~Q(queue=""),
        run_id=OuterRef("id"),
    )
    children = Run.objects.filter(parent_id=OuterRef("id")).filter(
        ~Q(status__in=TERMINAL) | Q(finished_at__gte=sent_before)
    )
    return (
        runs.filter(status=RunStatus.RUNNING, started_at__lt=sent_before)
        .filter(Q(dispatched_at=None) | Q(dispatched_at__lt=sent_before))
        .exclude(Exists(in_flight))
        .exclude(Exists(children))
    )


def _lost_resend(
    pending: list[dict], queued: list[dict], idle: list[dict], sent_before: datetime
) -> int:
    """Send again the tasks of pending nodes, queued runs and idle running runs (``_idle``)
    that the broker no longer holds. Returns how many runs failed.

    A task still in its queue's list waits its turn: nothing is sent. One a worker took but has
    not started (``dispatch.Held.reserved``) is sent again without counting, since that worker
    may have been killed and its prefetched tasks would come back only after the broker's
    visibility timeout; one held nowhere was lost outright (its worker died between taking it
    and claiming it) and counts against ``STUDIO_NODE_REQUEUES``, past which the run fails.
    A second delivery is harmless: ``node_claim`` and the executor's pass claim with a
    conditional UPDATE, so the first to arrive runs it and the other does nothing."""
    held = dispatch.held(
        [p["queue"] for p in pending] + ([dispatch.advance_queue()] if queued or idle else [])
    )
    failed = 0
    for node in pending:
        task = (dispatch.EXECUTE_NODE, (str(node["run_id"]), node["node_id"]))
        if not held.waiting(node["queue"], task):
            failed += _lost_send(
                NodeResult.objects.filter(
                    run_id=node["run_id"], node_id=node["node_id"], status=NodeStatus.PENDING
                ),
                node,
                task in held.reserved,
                sent_before,
                lambda n=node: dispatch.execute(n["run_id"], n["node_id"], n["queue"]),
                run_id=node["run_id"],
                what=f"node {node['node_id']!r} on queue {node['queue']!r}",
            )
    for run in queued:
        task = (dispatch.ADVANCE_RUN, (str(run["id"]),))
        if not held.waiting(dispatch.advance_queue(), task):
            failed += _lost_send(
                Run.objects.filter(id=run["id"], status=RunStatus.QUEUED),
                run,
                task in held.reserved,
                sent_before,
                lambda r=run: dispatch.advance(r["id"]),
                run_id=run["id"],
                what="the run's first step",
            )
    for run in idle:
        task = (dispatch.ADVANCE_RUN, (str(run["id"]),))
        if held.waiting(dispatch.advance_queue(), task):
            continue
        with transaction.atomic():
            # Locked, and looked at again: a pass holds the run's row while it runs (its own
            # task already taken from the broker, and its inline nodes may outlast the wait),
            # and one that ended since may have changed what the run waits for.
            rows = _idle(Run.objects.filter(id=run["id"]), sent_before)
            if not rows.select_for_update(skip_locked=True).exists():
                continue
            failed += _lost_send(
                rows,
                run,
                task in held.reserved,
                sent_before,
                lambda r=run: dispatch.advance(r["id"]),
                run_id=run["id"],
                what="the run's next step",
            )
    return failed


def _sent_before(moment: datetime) -> Q:
    """Rows whose task was last sent before ``moment`` (never sent again: when created)."""
    return Q(dispatched_at__lt=moment) | Q(dispatched_at=None, created_at__lt=moment)


def _lost_send(
    rows: QuerySet,
    row: dict,
    reserved: bool,
    sent_before: datetime,
    send: Callable[[], None],
    *,
    run_id: Any,
    what: str,
) -> int:
    """Send one lost task again (once, even if two reapers see it), or fail its run once it was
    lost too often. Returns 1 if the run failed."""
    lost = 0 if reserved else 1
    if row["requeues"] + lost > settings.STUDIO_NODE_REQUEUES:
        return int(
            run_fail(
                run_id=run_id,
                reason=(
                    f"task lost: {what} was sent {row['requeues'] + 1} times and no worker "
                    f"took it within {settings.STUDIO_DISPATCH_STALE_S:g} s"
                ),
            )
        )
    if rows.filter(_sent_before(sent_before)).update(
        dispatched_at=timezone.now(), requeues=F("requeues") + lost
    ):
        send()
    return 0
