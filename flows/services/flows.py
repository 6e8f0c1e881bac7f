"""Writes of flows: create, version, publish, change settings, delete. Each change is
audited; who may make them is checked by the caller through ``studio.access``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from flows.models import Flow, FlowVersion, VersionKind
from flows.schema import check_graph
from workspaces.audit import audit_record
from workspaces.models import Workspace
from workspaces.sharing import creator_grant

# A flow's online A/B experiment (``flows.services.experiments``).
EXPERIMENT_FIELDS = ("experiment_version", "experiment_weight", "experiment_started_at")


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


def flow_version_save(*, flow: Flow, graph: dict, user=None, note: str = "") -> FlowVersion:
    """Save ``graph`` as the flow's next version (``note``: what changed); ``GraphError`` names
    each bad node."""
    check_graph(graph, flow.workspace, user)
    with transaction.atomic():
        Flow.objects.select_for_update().filter(id=flow.id).first()
        number = (flow.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = FlowVersion.objects.create(
            flow=flow, number=number, graph=graph, note=note[:500], created_by=user
        )
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.version_create",
            target=flow,
            before={"version": number - 1 or None},
            after={"version": number, "graph": graph, **({"note": note} if note else {})},
        )
    return version


def flow_publish(*, flow: Flow, version: FlowVersion | None = None, user=None) -> Flow:
    """Publish ``version`` (default: the latest): the API and chat run only this version."""
    # Draft snapshots (the editor's test runs) have no number and are never published.
    version = version or flow.versions.filter(number__isnull=False).order_by("-number").first()
    if version is None or version.flow_id != flow.id:
        raise ValidationError("There is no version of this flow to publish.")
    if version.kind != VersionKind.VERSION or not version.number:
        # A draft snapshot or an evaluation variant is never served.
        raise ValidationError("Only a numbered version of this flow can be published.")
    with transaction.atomic():
        before = _published(flow)
        flow.published_version = version
        # Publishing ends a running A/B experiment (``flows.experiments``): its arm a, the
        # version published until now, is no longer served, so every request gets ``version``.
        ended = flow.experiment_version_id is not None
        flow.experiment_version, flow.experiment_weight, flow.experiment_started_at = None, 0, None
        flow.save(update_fields=["published_version", *EXPERIMENT_FIELDS, "updated_at"])
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.publish",
            target=flow,
            before=before,
            after={**_published(flow), **({"experiment_ended": True} if ended else {})},
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
