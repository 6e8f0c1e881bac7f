"""The chat page of a published flow."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from flows import selectors
from flows.access import access_flow
from flows.models import RunSource
from flows.services import run_create
from workspaces.access import current_workspace


@login_required
@require_GET
def chat(request: HttpRequest, slug: str) -> HttpResponse:
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "run")
    return render(request, "flows/chat.html", {"flow": flow, "workspace": workspace})


@login_required
@require_POST
def chat_send(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a run of the published version with the typed message; render its two bubbles."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "run")
    message = request.POST.get("message", "").strip()
    context = {"flow": flow, "message": message}
    if flow.published_version is None:
        context["error"] = "This flow has no published version yet."
    elif not message:
        context["error"] = "Type a message first."
    else:
        try:
            binding = selectors.chat_binding(flow.published_version)
            context["run"] = run_create(
                flow=flow,
                version=flow.published_version,
                inputs={binding.input: message},
                source=RunSource.CHAT,
                user=request.user,
            )
            context["answer_nodes"] = ",".join(sorted(binding.answer_nodes))
        except ValidationError as exc:
            context["error"] = "; ".join(exc.messages)
    status = 400 if "error" in context else 200
    return render(request, "flows/chat.html#exchange", context, status=status)
