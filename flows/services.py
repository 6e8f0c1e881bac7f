"""Writes of flows and runs: create, version, publish, delete, start, fail. Changes to flows are
audited; who may make them is checked by the caller through ``studio.access``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from flows import dispatch
from flows.models import TERMINAL, Flow, FlowVersion, NodeResult, NodeStatus, Run, RunStatus
from flows.schema import CheckedGraph, check_graph
from studio import events
from studio.audit import audit_record
from studio.models import ApiKey, Workspace
from studio.sharing import creator_grant


def _published(flow: Flow) -> dict:
    version = flow.published_version
    return {"published_version": version.number if version else None}


def flow_create(*, workspace: Workspace, slug: str, name: str, graph: dict, user=None) -> Flow:
    """Create a flow with its first version (validated against the workspace's catalog).

    A limited member sees only what is shared with them, so they are granted what they create.
    """
    check_graph(graph, workspace, user)
    with transaction.atomic():
        flow = Flow.objects.create(workspace=workspace, slug=slug, name=name, created_by=user)
        audit_record(
            workspace=workspace,
            actor=user,
            action="flow.create",
            target=flow,
            after={"slug": slug, "name": name},
        )
        flow_version_save(flow=flow, graph=graph, user=user)
        creator_grant(obj=flow, user=user)
    return flow


def flow_version_save(*, flow: Flow, graph: dict, user=None) -> FlowVersion:
    """Save ``graph`` as the flow's next version; ``GraphError`` names each bad node."""
    check_graph(graph, flow.workspace, user)
    with transaction.atomic():
        Flow.objects.select_for_update().filter(id=flow.id).first()
        number = (flow.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = FlowVersion.objects.create(flow=flow, number=number, graph=graph, created_by=user)
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.version_create",
            target=flow,
            before={"version": number - 1 or None},
            after={"version": number, "graph": graph},
        )
    return version


def flow_publish(*, flow: Flow, version: FlowVersion | None = None, user=None) -> Flow:
    """Publish ``version`` (default: the latest): the API and chat run only this version."""
    version = version or flow.versions.order_by("-number").first()
    if version is None or version.flow_id != flow.id:
        raise ValidationError("There is no version of this flow to publish.")
    with transaction.atomic():
        before = _published(flow)
        flow.published_version = version
        flow.save(update_fields=["published_version", "updated_at"])
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.publish",
            target=flow,
            before=before,
            after=_published(flow),
        )
    return flow


def flow_settings_change(*, flow: Flow, response_cache: bool, user=None) -> Flow:
    """Switch the flow's use of the workspace's response cache."""
    with transaction.atomic():
        before = {"response_cache": flow.response_cache}
        flow.response_cache = response_cache
        flow.save(update_fields=["response_cache", "updated_at"])
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.settings",
            target=flow,
            before=before,
            after={"response_cache": flow.response_cache},
        )
    return flow


def flow_delete(*, flow: Flow, user=None) -> None:
    """Delete a flow with its versions, runs and grants."""
    with transaction.atomic():
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.delete",
            target=flow,
            before={"slug": flow.slug, "name": flow.name, **_published(flow)},
        )
        # Runs hold their version with PROTECT (a version that ran stays); the flow goes whole.
        flow.runs.all().delete()
        flow.delete()


def run_inputs_clean(graph: CheckedGraph, inputs: Any) -> dict:
    """The run's inputs checked against the input node's fields; ValidationError if wrong."""
    if not isinstance(inputs, dict):
        raise ValidationError("inputs must be a JSON object")
    expected = {f.name: f for node in graph.of_type("input") for f in node.config.fields}
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise ValidationError(f"unknown inputs: {', '.join(unknown)}")
    cleaned: dict[str, Any] = {}
    for name, spec in expected.items():
        value = inputs.get(name)
        if value is None:
            if spec.required:
                raise ValidationError(f"input {name!r} is required")
            continue
        ok = {
            "text": isinstance(value, str),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
        }.get(spec.type, True)
        if not ok:
            raise ValidationError(f"input {name!r} must be {spec.type}")
        if spec.type == "text" and len(value) > 200_000:
            raise ValidationError(f"input {name!r} is longer than 200,000 characters")
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
) -> Run:
    """A queued run of ``version``; the executor is enqueued once the row is committed."""
    cleaned = run_inputs_clean(check_graph(version.graph), inputs)
    run = Run.objects.create(
        workspace_id=flow.workspace_id,
        flow=flow,
        flow_version=version,
        inputs=cleaned,
        source=source,
        created_by=user if user is not None and user.is_authenticated else None,
        api_key=api_key,
        deadline_at=timezone.now() + timedelta(seconds=settings.STUDIO_RUN_TIMEOUT_S),
    )
    transaction.on_commit(lambda: dispatch.advance(run.id))
    return run


def run_fail(*, run_id: Any, reason: str, node_id: str | None = None) -> bool:
    """End a run as failed (and its unfinished nodes). False if it had already ended."""
    now = timezone.now()
    with transaction.atomic():
        ended = (
            Run.objects.filter(id=run_id)
            .exclude(status__in=TERMINAL)
            .update(status=RunStatus.FAILED, error=reason[:10_000], finished_at=now)
        )
        if not ended:
            return False
        NodeResult.objects.filter(
            run_id=run_id, status__in=[NodeStatus.PENDING, NodeStatus.RUNNING]
        ).update(status=NodeStatus.FAILED, error=reason[:10_000], finished_at=now)
        transaction.on_commit(
            lambda: events.publish_sync(run_id, events.RUN_FAILED, node_id, {"reason": reason})
        )
    return True


def runs_fail_stale(*, run_id: Any = None) -> int:
    """Fail runs past their deadline and runs whose node lost its worker. Returns how many.

    Called periodically by the worker's beat and by clients waiting on a run, so a killed worker
    or a lost task never leaves a run hanging.
    """
    now = timezone.now()
    runs = Run.objects.exclude(status__in=TERMINAL)
    nodes = NodeResult.objects.filter(
        status=NodeStatus.RUNNING,
        heartbeat_at__lt=now - timedelta(seconds=settings.STUDIO_HEARTBEAT_STALE_S),
    )
    if run_id is not None:
        runs = runs.filter(id=run_id)
        nodes = nodes.filter(run_id=run_id)
    failed = 0
    for stale in nodes.exclude(run__status__in=TERMINAL).values("run_id", "node_id", "queue"):
        failed += run_fail(
            run_id=stale["run_id"],
            node_id=stale["node_id"],
            reason=(
                f"worker lost: node {stale['node_id']!r} on queue {stale['queue']!r} stopped "
                f"sending heartbeats for {settings.STUDIO_HEARTBEAT_STALE_S:g} s"
            ),
        )
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
