"""Reads of agents and their versions."""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import reverse

from agents.access import agent_api_name, published_agents
from agents.models import Agent, AgentVersion
from conversations.selectors import ChatApp
from flows.models import Flow, FlowKind
from flows.selectors import published_flows
from studio import access
from workspaces.models import ApiKey, Workspace


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


def agent_chat_apps(user, workspace: Workspace) -> list[ChatApp]:
    """The published agents of ``workspace`` that ``user`` may use, for the Apps page: chat
    opens their backing flow's chat page, open the builder."""
    usable = access.scope(user, workspace.id, published_agents(workspace.id), "use")
    return [
        ChatApp(
            kind="agent",
            name=agent.name,
            slug=agent.slug,
            chat_url=reverse("conversations:chat", args=[agent.flow.slug]),
            open_url=reverse("agents:agent-detail", args=[agent.slug]),
        )
        for agent in usable.order_by("name")
    ]


def agents_for_key(api_key: ApiKey) -> list[tuple[str, Agent]]:
    """The published agents ``api_key`` may run, each with its name on the APIs
    (``agents.access.agent_api_name``), by that name."""
    runnable = access.scope(
        api_key,
        api_key.workspace_id,
        Flow.objects.filter(kind=FlowKind.AGENT, published_version__isnull=False),
        "run",
    )
    agents = published_agents(api_key.workspace_id).filter(flow__in=runnable)
    flow_slugs = set(published_flows(api_key.workspace_id).values_list("slug", flat=True))
    return sorted(
        ((agent_api_name(agent, flow_slugs), agent) for agent in agents), key=lambda p: p[0]
    )
