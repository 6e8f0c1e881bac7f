"""An agent's conversations, for those who may change the agent: the flows' review pages
(``conversations.views.review``), read only, over the flow that serves the agent."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from agents.access import access_agent
from agents.models import Agent
from conversations.views.review import Reviewed, review_detail_page, review_list_page
from workspaces.access import current_workspace


def _reviewed(request: HttpRequest, agent_slug: str) -> tuple[Agent, Reviewed]:
    """The agent if the member may change it (its conversations are theirs to review); Http404
    for an agent never published (no flow serves it, so no one has talked with it)."""
    agent = access_agent(request.user, current_workspace(request), agent_slug, "change")
    if agent.flow is None:
        raise Http404
    return agent, Reviewed(
        name=agent.name,
        slug=agent.slug,
        back_url=reverse("agents:agent-detail", args=[agent.slug]),
        back_label="Agent",
        list_route="agents:agent-conversations",
        detail_route="agents:agent-conversation",
    )


@login_required
@require_GET
def agent_conversations(request: HttpRequest, agent_slug: str) -> HttpResponse:
    agent, reviewed = _reviewed(request, agent_slug)
    return review_list_page(request, agent.flow, reviewed)


@login_required
@require_GET
def agent_conversation(request: HttpRequest, agent_slug: str, conversation_id) -> HttpResponse:
    agent, reviewed = _reviewed(request, agent_slug)
    return review_detail_page(request, agent.flow, conversation_id, reviewed)
