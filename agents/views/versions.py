"""An agent's published versions, and deleting the agent."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from agents import selectors
from agents.access import access_agent
from agents.services import agent_delete
from studio.access import has_perm
from workspaces.access import current_workspace


@login_required
@require_GET
def agent_versions(request: HttpRequest, agent_slug: str) -> HttpResponse:
    agent = access_agent(request.user, current_workspace(request), agent_slug, "view")
    context = {
        "workspace": agent.workspace,
        "agent": agent,
        "versions": selectors.agent_versions(agent),
        # Its conversations, once published, are reviewed by those who may change it.
        "can_review": agent.flow_id is not None and has_perm(request.user, agent, "change"),
    }
    return render(request, "agents/versions.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def agent_remove(request: HttpRequest, agent_slug: str) -> HttpResponse:
    """GET asks for a confirmation; POST deletes the agent with its versions."""
    agent = access_agent(request.user, current_workspace(request), agent_slug, "delete")
    if request.method == "POST":
        agent_delete(agent=agent, actor=request.user)
        messages.success(request, f"Deleted the agent {agent.name}.")
        return redirect("agents:agent-list")
    context = {
        "workspace": agent.workspace,
        "agent": agent,
        "version_count": agent.versions.count(),
    }
    return render(request, "agents/delete.html", context)
