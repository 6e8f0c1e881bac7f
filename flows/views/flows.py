"""Pages of flows: the list, and a flow's page with its versions, settings and runs."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from flows import selectors
from flows.access import access_flow
from flows.editor.redaction import graph_redacted
from flows.graph_picture import graph_svg
from flows.models import Flow
from flows.panels import panels
from flows.schema import GraphError
from flows.services import (
    flow_delete,
    flow_settings_change,
    flow_version_save,
)
from flows.services.drafts import draft_changed, flow_publish_draft
from flows.views.api_panel import api_snippets
from studio import access
from workspaces.access import current_workspace


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    # The home page lists every app's things, so the app that may use all of them serves it.
    return redirect("conversations:home")


@login_required
@require_GET
def flow_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    flows = access.scope(request.user, workspace.id, selectors.flows_for_workspace(workspace.id))
    return render(request, "flows/list.html", {"workspace": workspace, "flows": flows})


def _graph_json(graph: dict) -> str:
    # PostgreSQL's jsonb sorts keys by length ("edges" first); nodes first reads better.
    graph = graph_redacted(graph)
    return json.dumps({"nodes": graph.get("nodes"), **graph}, indent=2)


def _render_detail(
    request: HttpRequest,
    flow: Flow,
    *,
    graph_text: str | None = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    """The detail page; after a refused save it keeps what the user typed and lists why."""
    # Numbered versions only: the editor's draft snapshots are not versions of the flow.
    versions = list(flow.versions.filter(number__isnull=False).select_related("created_by"))
    latest = versions[0] if versions else None
    actions = access.object_actions(request.user, flow)
    if graph_text is None:
        graph_text = _graph_json(latest.graph) if latest else ""
    context = {
        "workspace": flow.workspace,
        "flow": flow,
        "versions": versions,
        "latest": latest,
        "runs": selectors.runs_for_flow(flow, limit=20),
        "can_change": "change" in actions,
        "can_publish": "publish" in actions,
        "can_run": "run" in actions,
        "can_delete": "delete" in actions,
        "can_share": "share" in actions,
        "graph_text": graph_text,
        "published_graph": (
            _graph_json(flow.published_version.graph) if flow.published_version else ""
        ),
        "published_picture": (
            graph_svg(flow.published_version.graph, title=f"The graph of {flow.name}")
            if flow.published_version
            else ""
        ),
        "errors": errors or [],
        "api_snippets": api_snippets(request, flow),
        "draft_changed": draft_changed(flow, latest),
        "panels": panels("publish", request, flow, actions),
    }
    return render(request, "flows/detail.html", context, status=status)


@login_required
@require_GET
def flow_detail(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "view")
    return _render_detail(request, flow)


@login_required
@require_POST
def flow_version_create(request: HttpRequest, slug: str) -> HttpResponse:
    """Save the posted graph JSON as the flow's next version; a refused graph answers 400."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "change")
    graph_text = request.POST.get("graph", "")
    try:
        version = flow_version_save(flow=flow, graph=json.loads(graph_text), user=request.user)
    except json.JSONDecodeError as exc:
        errors = [f"graph: this is not valid JSON ({exc})"]
    except GraphError as exc:
        errors = exc.errors
    else:
        messages.success(request, f"Saved version {version.number}.")
        return redirect("flows:flow-detail", slug=flow.slug)
    return _render_detail(request, flow, graph_text=graph_text, errors=errors, status=400)


@login_required
@require_POST
def flow_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """The flow's switches (the response cache); changing them needs ``change``."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "change")
    flow_settings_change(
        flow=flow, response_cache=request.POST.get("response_cache") == "on", user=request.user
    )
    messages.success(request, "Saved the flow's settings.")
    return redirect("flows:flow-detail", slug=flow.slug)


@login_required
@require_POST
def flow_publish_latest(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "publish")
    try:
        # What the user sees as the flow is the editor's draft: a changed draft is published as
        # the next version, an unchanged one publishes the latest (a new flow's is version 1).
        flow_publish_draft(flow=flow, user=request.user)
        flow.refresh_from_db()
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    except GraphError as exc:
        messages.error(request, "The draft was not published: " + "; ".join(exc.errors))
    else:
        messages.success(request, f"Published version {flow.published_version.number}.")
    return redirect("flows:flow-detail", slug=flow.slug)


@login_required
@require_POST
def flow_remove(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "delete")
    flow_delete(flow=flow, user=request.user)
    messages.success(request, f"Deleted the flow {flow.name}.")
    return redirect("flows:flow-list")
