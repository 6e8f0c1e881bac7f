"""The list of agents and the new agent page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from agents import selectors
from agents.forms import AgentNewForm
from agents.services import agent_create
from workspaces.access import access_workspace, current_workspace, workspace_perms

ADD_AGENT = "agents.add_agent"


@login_required
@require_GET
def agent_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    context = {
        "workspace": workspace,
        "agents": selectors.agents_visible(request.user, workspace.id),
        "can_add": ADD_AGENT in workspace_perms(request.user, workspace.id),
    }
    return render(request, "agents/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def agent_new(request: HttpRequest) -> HttpResponse:
    """Name first (the slug is made from it); the builder opens on the new agent."""
    workspace = access_workspace(request.user, current_workspace(request).id, ADD_AGENT)
    data = request.POST if request.method == "POST" else None
    form = AgentNewForm(data, workspace_id=workspace.id)
    if form.is_bound and form.is_valid():
        try:
            agent = agent_create(
                workspace=workspace,
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                description=form.cleaned_data["description"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Created {agent.name}: choose its model and tools.")
            return redirect("agents:agent-detail", agent_slug=agent.slug)
    status = 400 if form.is_bound else 200
    return render(request, "agents/new.html", {"workspace": workspace, "form": form}, status=status)
