"""Rolling a flow back (serve an earlier version again, or restore one into the draft), and
storing an evaluation's variant of a version.

Numbered versions are immutable; no service here changes one. Who may call them is checked by
the caller through ``studio.access`` (``publish`` to serve a version, ``change`` to restore or
to evaluate a variant).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from flows.models import Flow, FlowVersion, VersionKind
from flows.schema import check_graph
from flows.services.flows import flow_publish
from workspaces.audit import audit_record


def _numbered(flow: Flow, version: FlowVersion) -> None:
    if version.flow_id != flow.id or version.kind != VersionKind.VERSION or not version.number:
        raise ValidationError("Only a numbered version of this flow can be rolled back to.")


def flow_version_republish(*, flow: Flow, version: FlowVersion, user=None) -> Flow:
    """Serve ``version`` again: the chat page and the API run it from now on. The draft and the
    later versions stay as they are. Audited as a publish (before and after numbers)."""
    _numbered(flow, version)
    return flow_publish(flow=flow, version=version, user=user)


def flow_version_restore(*, flow: Flow, version: FlowVersion, user=None) -> Flow:
    """Copy ``version``'s graph into the flow's draft, replacing what the draft held. The
    published version keeps serving until someone publishes the draft."""
    _numbered(flow, version)
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(id=flow.id)
        # The replaced draft goes into the audit entry: the one place it can be recovered from.
        replaced = locked.draft
        locked.draft = version.graph
        locked.draft_saved_at = timezone.now()
        locked.draft_saved_by = user
        locked.save(update_fields=["draft", "draft_saved_at", "draft_saved_by", "updated_at"])
        audit_record(
            workspace=flow.workspace_id,
            actor=user,
            action="flow.draft_restore",
            target=locked,
            before={"draft": replaced},
            after={"restored_version": version.number},
        )
    return locked


def flow_variant_create(*, flow: Flow, base: FlowVersion, graph: dict, user=None) -> FlowVersion:
    """Store ``graph`` (``base`` with a model or a prompt swapped in) as an evaluation variant:
    unnumbered, so it is never listed, published, republished, restored or served; only an
    evaluation runs it. ``GraphError`` when the graph fails the check a saved version passes,
    for ``user`` (a model or prompt they may not use included). An identical variant of the
    flow is reused, so evaluating the same swap again does not pile them up."""
    _numbered(flow, base)
    check_graph(graph, flow.workspace, user)
    with transaction.atomic():
        Flow.objects.select_for_update().filter(id=flow.id).first()
        same = flow.versions.filter(kind=VersionKind.VARIANT, graph=graph).first()
        if same is not None:
            return same
        return FlowVersion.objects.create(
            flow=flow,
            kind=VersionKind.VARIANT,
            number=None,
            graph=graph,
            note=f"evaluation variant of version {base.number}"[:500],
            created_by=user,
        )
