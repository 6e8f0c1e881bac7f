"""What an agent remembers: all its facts for the agent's editors, and an end user's own facts
for them; each deletable."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from agents.access import access_agent
from agents.memory import fact_delete, facts_by_subject, facts_of, subject_labels, user_subject
from agents.models import Agent
from workspaces.access import current_workspace


def _fact_id(request: HttpRequest) -> int | None:
    # ASCII digits that fit a bigint: anything else names no fact (and never reaches SQL).
    value = request.POST.get("fact", "")
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _deleted(request: HttpRequest, agent: Agent, subject: str | None) -> None:
    fact_id = _fact_id(request)
    done = fact_id is not None and fact_delete(
        agent=agent, fact_id=fact_id, actor=request.user, subject=subject
    )
    if done:
        messages.success(request, "The fact is forgotten.")
    else:
        messages.error(request, "That fact is not there (deleted already?).")


@login_required
@require_http_methods(["GET", "POST"])
def agent_memory(request: HttpRequest, agent_slug: str) -> HttpResponse:
    """Every end user's facts, for those who may change the agent; POST ``fact`` deletes one."""
    agent = access_agent(request.user, current_workspace(request), agent_slug, "change")
    if request.method == "POST":
        _deleted(request, agent, subject=None)
        return redirect("agents:agent-memory", agent.slug)
    grouped = facts_by_subject(agent)
    labels = subject_labels([subject for subject, _ in grouped])
    context = {
        "workspace": agent.workspace,
        "agent": agent,
        "subjects": [(subject, labels[subject], facts) for subject, facts in grouped],
        "editor": True,
    }
    return render(request, "agents/memory.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def my_memory(request: HttpRequest, agent_slug: str) -> HttpResponse:
    """The signed-in user's own facts of an agent they may see; POST ``fact`` deletes one."""
    agent = access_agent(request.user, current_workspace(request), agent_slug, "view")
    subject = user_subject(request.user.id)
    if request.method == "POST":
        _deleted(request, agent, subject=subject)
        return redirect("agents:my-memory", agent.slug)
    context = {
        "workspace": agent.workspace,
        "agent": agent,
        "facts": facts_of(agent=agent, subject=subject),
        "editor": False,
    }
    return render(request, "agents/memory.html", context)
