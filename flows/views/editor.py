"""The flow editor: the canvas page, its draft autosave, the node settings panel (htmx), test
runs of the draft, and publishing it.

The canvas is a JavaScript island (built from ``frontend/`` into ``static/flows/editor/``); the
settings panel is rendered here from the node type's config schema (``flows/editor/node_forms.py``,
``flows/editor/node_panel.py``).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event
from pydantic import BaseModel, ConfigDict, Field

from flows.access import access_flow, access_run
from flows.editor import node_forms, node_panel
from flows.editor.palette import palette
from flows.editor.redaction import graph_redacted
from flows.models import Flow
from flows.schema import MAX_BYTES, GraphError, graph_report
from flows.services.drafts import (
    flow_draft_current,
    flow_draft_run,
    flow_draft_save,
    flow_publish_draft,
)
from studio import access
from studio.json_api import BodyRefused, read_body
from workspaces.access import current_workspace
from workspaces.quotas import workspace_admit

# The graph's own limit, and room for the envelope around it.
MAX_BODY = MAX_BYTES + 100_000
# A config larger than this travels in the panel's HTML rather than in a response header.
MAX_HEADER_PAYLOAD = 32_000
RUN_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


class DraftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    graph: Any


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=500)


def _body(request: HttpRequest, schema: type[BaseModel]) -> BaseModel | JsonResponse:
    """The editor's JSON body, or its refusal in the editor's error shape."""
    too_large = f"The request is larger than {MAX_BODY:,} bytes."
    try:
        return read_body(request, schema, limit=MAX_BODY, too_large=too_large)
    except BodyRefused as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)


def _problems(exc: GraphError) -> list[dict]:
    return [p.as_dict() for p in exc.problems]


def _refused(what: str, exc: GraphError, flow: Flow, request: HttpRequest) -> JsonResponse:
    """A draft that failed the strict check: its problems by node, and the editor's report."""
    report = graph_report(flow_draft_current(flow), flow.workspace, request.user)
    return JsonResponse(
        {
            "error": f"{what}: fix the problems marked on the nodes.",
            "problems": _problems(exc),
            "report": report.as_dict(),
        },
        status=400,
    )


def _can(user, flow: Flow) -> dict[str, bool]:
    actions = access.object_actions(user, flow)
    return {action: action in actions for action in ("change", "run", "publish")}


def _editor_data(request: HttpRequest, flow: Flow, can: dict[str, bool]) -> dict:
    """Everything the canvas island starts from (the page embeds it with ``json_script``)."""
    workspace, user = flow.workspace, request.user
    graph = flow_draft_current(flow)
    choices = node_panel.catalog_choices(user, workspace)
    prefill = {name: options[0][0] for name, options in choices.items() if options}
    prefill.pop("route", None)  # a new LLM node names a model; a route is a deliberate choice
    run_nodes = reverse("flows:flow-editor-run-nodes", args=[flow.slug, RUN_PLACEHOLDER])
    return {
        "flow": {"slug": flow.slug, "name": flow.name},
        # A draft saved before typed-in secrets were refused shows them masked.
        "graph": graph_redacted(graph),
        "report": graph_report(graph, workspace, user).as_dict(),
        "palette": palette(prefill),
        "can": can,
        "draft": {
            "saved_at": flow.draft_saved_at.isoformat() if flow.draft_saved_at else None,
            "saved_by": flow.draft_saved_by.get_username() if flow.draft_saved_by else None,
        },
        "urls": {
            "draft": reverse("flows:flow-editor-draft", args=[flow.slug]),
            "panel": reverse("flows:flow-editor-panel", args=[flow.slug]),
            "run": reverse("flows:flow-editor-run", args=[flow.slug]),
            "publish": reverse("flows:flow-editor-publish", args=[flow.slug]),
            "runNodes": run_nodes.replace(RUN_PLACEHOLDER, "RUN_ID"),
        },
    }


@login_required
@require_GET
def flow_editor(request: HttpRequest, slug: str) -> HttpResponse:
    """The editor page: the draft (else the latest version) on a canvas; read-only without
    ``change``."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "view")
    can = _can(request.user, flow)
    editor = _editor_data(request, flow, can)
    context = {"workspace": workspace, "flow": flow, "editor": editor, "can": can}
    return render(request, "flows/editor.html", context)


@login_required
@require_POST
def editor_draft_save(request: HttpRequest, slug: str) -> JsonResponse:
    """Autosave: store the posted graph as the draft, answer with its report. A body that is
    not a graph of the schema answers 400 and leaves the stored draft as it was."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "change")
    body = _body(request, DraftBody)
    if isinstance(body, JsonResponse):
        return body
    try:
        report = flow_draft_save(flow=flow, graph=body.graph, user=request.user)
    except GraphError as exc:
        return JsonResponse(
            {
                "error": "This is not a flow graph: " + "; ".join(exc.errors),
                "problems": _problems(exc),
            },
            status=400,
        )
    return JsonResponse(
        {
            "saved_at": flow.draft_saved_at.isoformat(),
            "saved_by": request.user.get_username(),
            "report": report.as_dict(),
        }
    )


# --- the settings panel ---------------------------------------------------------------------


def _posted_graph(request: HttpRequest) -> dict:
    """The canvas's graph the panel's requests carry; only read, never stored."""
    text = request.POST.get("graph") or "{}"
    try:
        graph = json.loads(text) if len(text) <= MAX_BODY else {}
    except ValueError:
        graph = {}
    return graph if isinstance(graph, dict) else {}


def _render_panel(
    request: HttpRequest, flow: Flow, panel: node_panel.Panel, settings_in_page: bool = False
) -> HttpResponse:
    context = {
        "flow": flow,
        "can_change": _can(request.user, flow)["change"],
        "panel": panel,
        "settings_in_page": settings_in_page,
    }
    status = 200 if panel.form is not None else 400
    return render(request, "flows/editor.html#node-panel", context, status=status)


@login_required
@require_POST
def editor_node_panel(request: HttpRequest, slug: str) -> HttpResponse:
    """The settings of the posted graph's node ``node``; read-only without ``change``."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "view")
    panel = node_panel.node_panel(
        graph=_posted_graph(request),
        node_id=request.POST.get("node", ""),
        workspace=workspace,
        user=request.user,
    )
    return _render_panel(request, flow, panel)


@login_required
@require_POST
def editor_node_apply(request: HttpRequest, slug: str) -> HttpResponse:
    """A node's posted settings: checked, shown again with errors inline, and sent to the canvas
    (the ``studio:node-config`` event) even when they have errors, so no typing is lost; the
    draft keeps problems until they are fixed. ``_action`` adds or removes a list row."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "change")
    graph = _posted_graph(request)
    node_id = request.POST.get("node", "")
    kind = node_panel.node_kind(graph, node_id)
    parsed = node_forms.parse_form(kind, request.POST) if kind else None
    action = request.POST.get("_action", "")
    if parsed and action:
        node_forms.apply_action(kind, parsed.config, action)
    panel = node_panel.node_panel(
        graph=graph, node_id=node_id, workspace=workspace, user=request.user, parsed=parsed
    )
    if panel.settings is None or action.startswith("add:"):
        return _render_panel(request, flow, panel)  # an empty row is not a change yet
    if len(json.dumps(panel.settings)) > MAX_HEADER_PAYLOAD:
        # Too large for a response header: the panel carries it, applied once swapped in.
        return _render_panel(request, flow, panel, settings_in_page=True)
    return trigger_client_event(
        _render_panel(request, flow, panel), "studio:node-config", panel.settings
    )


# --- test runs and publishing ---------------------------------------------------------------


@login_required
@require_POST
def editor_run(request: HttpRequest, slug: str) -> JsonResponse:
    """Run the draft with test inputs; its problems (by node) or the inputs' answer 400."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "run")
    body = _body(request, RunBody)
    if isinstance(body, JsonResponse):
        return body
    if refusal := workspace_admit(workspace):
        response = JsonResponse({"error": refusal.message}, status=429)
        response["Retry-After"] = str(refusal.retry_after)
        return response
    try:
        run = flow_draft_run(flow=flow, inputs=body.inputs, user=request.user)
    except GraphError as exc:
        return _refused("The draft cannot run", exc, flow, request)
    except ValidationError as exc:
        return JsonResponse({"error": "; ".join(exc.messages)}, status=400)
    return JsonResponse(
        {
            "run": str(run.id),
            "version": run.flow_version_id,
            "trace_url": reverse("flows:run-detail", args=[run.id]),
        },
        status=201,
    )


@login_required
@require_GET
def editor_run_nodes(request: HttpRequest, slug: str, run_id) -> JsonResponse:
    """What each node of a run received and gave (the run panel fills in its inputs)."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "view")
    run = access_run(request.user, run_id, "view")
    if run.flow_id != flow.id:
        raise Http404
    nodes = [
        {
            "node_id": result.node_id,
            "type": result.node_type,
            "status": result.status,
            "inputs": result.inputs,
            "outputs": result.outputs,
            "error": result.error,
            "latency_ms": result.latency_ms,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
        }
        for result in run.node_results.order_by("started_at", "id")
    ]
    return JsonResponse({"run": str(run.id), "status": run.status, "nodes": nodes})


@login_required
@require_POST
def editor_publish(request: HttpRequest, slug: str) -> JsonResponse:
    """Publish the draft as the next version; a draft with problems publishes nothing (400)."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "publish")
    body = _body(request, PublishBody)
    if isinstance(body, JsonResponse):
        return body
    try:
        version = flow_publish_draft(flow=flow, user=request.user, note=body.note)
    except GraphError as exc:
        return _refused("Not published", exc, flow, request)
    return JsonResponse({"version": version.number, "note": version.note})
