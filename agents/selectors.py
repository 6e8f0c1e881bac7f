"""Reads of agents and their versions."""

from __future__ import annotations

from django.db.models import QuerySet

from agents.models import Agent, AgentVersion
from studio import access


def agents_visible(user, workspace_id: int) -> QuerySet[Agent]:
    """The workspace's agents ``user`` may see, with their published version."""
    return access.scope(user, workspace_id, Agent.objects.all(), "view").select_related(
        "published_version"
    )


def agent_versions(agent: Agent) -> QuerySet[AgentVersion]:
    """The agent's versions, newest first, with who published them."""
    return agent.versions.select_related("created_by").order_by("-number")


def agent_latest_version(agent: Agent) -> AgentVersion | None:
    return agent.versions.order_by("-number").first()
