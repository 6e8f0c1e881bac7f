"""Pages of flows: the list, the chat page of a published flow, and a run's trace."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from flows import selectors
from flows.models import RunSource
from flows.services import run_create
from studio import access


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("flow-list")


@login_required
@require_GET
def flow_list(request: HttpRequest) -> HttpResponse:
    workspace = access.current_workspace(request)
    flows = selectors.flows_for_workspace(workspace.id)
    return render(request, "flows/list.html", {"workspace": workspace, "flows": flows})


@login_required
@require_GET
def chat(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = access.current_workspace(request)
    flow = access.access_flow(request.user, workspace, slug, "run")
    return render(request, "flows/chat.html", {"flow": flow, "workspace": workspace})


@login_required
@require_POST
def chat_send(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a run of the published version with the typed message; render its two bubbles."""
    workspace = access.current_workspace(request)
    flow = access.access_flow(request.user, workspace, slug, "run")
    message = request.POST.get("message", "").strip()
    context = {"flow": flow, "message": message}
    if flow.published_version is None:
        context["error"] = "This flow has no published version yet."
    elif not message:
        context["error"] = "Type a message first."
    else:
        try:
            context["run"] = run_create(
                flow=flow,
                version=flow.published_version,
                inputs={"message": message},
                source=RunSource.CHAT,
                user=request.user,
            )
        except ValidationError as exc:
            context["error"] = "; ".join(exc.messages)
    status = 400 if "error" in context else 200
    return render(request, "flows/chat.html#exchange", context, status=status)


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    run = access.access_run(request.user, run_id, "view")
    context = {"run": run, "nodes": selectors.run_nodes(run)}
    template = "flows/run.html#trace" if request.htmx else "flows/run.html"
    return render(request, template, context)
