"""The editor's draft of a flow: autosaved (possibly invalid, never served), run with test inputs
as an unnumbered snapshot, and published as the next numbered version.

Who may do each is checked by the caller through ``studio.access``: saving needs ``change``,
running ``run``, publishing ``publish``.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from flows.models import Flow, FlowVersion, Run, RunSource, VersionKind
from flows.schema import (
    GraphError,
    GraphReport,
    GraphSpec,
    Problem,
    check_graph,
    graph_report,
    graph_size_problem,
)
from flows.services.flows import flow_publish, flow_version_save
from flows.services.runs import run_create

EMPTY_GRAPH: dict = {"nodes": [], "edges": []}


def flow_draft_current(flow: Flow) -> dict:
    """What the editor opens: the draft, else the latest numbered version's graph."""
    if flow.draft is not None:
        return flow.draft
    latest = _latest_version(flow)
    return latest.graph if latest else dict(EMPTY_GRAPH)


def _parse(graph: Any) -> dict:
    """``graph`` as the schema stores it (defaults filled in); GraphError if it is not one."""
    too_big = graph_size_problem(graph)
    if too_big:
        raise GraphError([too_big])
    try:
        spec = GraphSpec.model_validate(graph)
    except ValidationError as exc:
        raise GraphError(
            [
                Problem(None, f"{'.'.join(str(p) for p in e['loc']) or 'graph'}: {e['msg']}")
                for e in exc.errors()
            ]
        ) from None
    return spec.model_dump(mode="json")


def flow_draft_save(*, flow: Flow, graph: Any, user=None) -> GraphReport:
    """Store ``graph`` as the flow's draft and return its report (problems and ports).

    The draft may have problems (the user's work is kept), but it must be a graph of the schema
    within its size limits: otherwise GraphError, and the stored draft is left as it was. Drafts
    are autosaved every few seconds while someone edits, so they are not audited; publishing is.
    Two people editing one flow: the last save wins.
    """
    stored = _parse(graph)
    saved_at = timezone.now()
    Flow.objects.filter(id=flow.id).update(
        draft=stored, draft_saved_at=saved_at, draft_saved_by=user, updated_at=saved_at
    )
    flow.draft, flow.draft_saved_at, flow.draft_saved_by = stored, saved_at, user
    return graph_report(stored, flow.workspace, user)


def flow_draft_snapshot(*, flow: Flow, user=None) -> FlowVersion:
    """The draft as an unnumbered snapshot a run can hold on to; the latest snapshot is reused
    when its graph is the same, so running again and again does not pile them up."""
    graph = flow_draft_current(flow)
    with transaction.atomic():
        Flow.objects.select_for_update().filter(id=flow.id).first()
        latest = flow.versions.filter(kind=VersionKind.DRAFT).order_by("-created_at", "-id").first()
        if latest is not None and latest.graph == graph:
            return latest
        return FlowVersion.objects.create(
            flow=flow, kind=VersionKind.DRAFT, number=None, graph=graph, created_by=user
        )


def flow_draft_run(*, flow: Flow, inputs: Any, user=None) -> Run:
    """Run the draft with test inputs. GraphError (each problem naming its node) when the draft
    cannot run; ValidationError when the inputs do not fit the input node's fields."""
    check_graph(flow_draft_current(flow), flow.workspace, user)
    snapshot = flow_draft_snapshot(flow=flow, user=user)
    return run_create(
        flow=flow, version=snapshot, inputs=inputs, source=RunSource.STUDIO, user=user
    )


def _latest_version(flow: Flow) -> FlowVersion | None:
    return (
        flow.versions.filter(kind=VersionKind.VERSION, number__isnull=False)
        .order_by("-number")
        .first()
    )


def _comparable(graph: Any) -> dict | None:
    try:
        return GraphSpec.model_validate(graph).model_dump(mode="json")
    except ValidationError:
        return None


def draft_changed(flow: Flow, latest: FlowVersion | None = None) -> bool:
    """Whether the editor's draft holds changes that no numbered version has. The draft is
    stored with the schema's defaults filled in, so both sides are compared in that form."""
    latest = latest or _latest_version(flow)
    if flow.draft is None or latest is None:
        return False
    return _comparable(flow.draft) != _comparable(latest.graph)


def flow_publish_draft(*, flow: Flow, user=None, note: str = "") -> FlowVersion:
    """Publish the draft, audited: as the next numbered version when it changed, else the latest
    version as it is (so a new flow published unchanged is version 1). GraphError (nothing
    saved, nothing published) when the draft does not pass the graph check. The API and chat
    keep serving the published version while the draft changes afterwards."""
    graph = flow_draft_current(flow)
    with transaction.atomic():
        latest = _latest_version(flow)
        if latest is not None and not draft_changed(flow, latest):
            version = latest
        else:
            version = flow_version_save(flow=flow, graph=graph, user=user, note=note)
        flow_publish(flow=flow, version=version, user=user)
    return version
