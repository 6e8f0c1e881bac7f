"""Access to agents, for people and API keys; built on ``studio.access``.

A published agent is served by its backing flow (``Agent.flow``, kind ``agent``), whose access
is the agent's: ``FLOW_DELEGATE``, registered from ``agents.apps``, makes every check on that
flow a check on the agent (``use`` gives the flow's ``view`` and ``run``, ``view`` its
``view``, nothing else), for members and, through the member who made it, for API keys.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404

from agents.models import Agent
from flows.models import Flow, FlowKind
from studio.access import Delegate, check, fetch
from workspaces.access import key_kind_check
from workspaces.models import ApiKey, Workspace

# An agent's name on the APIs (``/v1/chat/completions``' model, an MCP tool) is its slug, or
# ``agent.<slug>`` when a published flow of the workspace has that slug: flows keep their names,
# and the prefixed name always names the agent (a flow's slug has no dot).
AGENT_PREFIX = "agent."


def _agent_of(flow: Flow) -> Agent | None:
    return Agent.objects.filter(flow=flow).first()


FLOW_DELEGATE = Delegate(
    delegates=lambda flow: flow.kind == FlowKind.AGENT,
    resolve=_agent_of,
    rows=Q(kind=FlowKind.AGENT),
    link="agent",
    target="agents.Agent",
    actions={"view": ("view",), "use": ("view", "run")},
)


def access_agent(user, workspace: Workspace, slug: str, action: str) -> Agent:
    """An agent of ``workspace`` by slug; ``action``: view, use, change, publish, delete,
    share. Http404 when it is not there or hidden from ``user``, PermissionDenied when they may
    see it but not take ``action``."""
    agent = fetch(Agent, "published_version", "flow", workspace=workspace, slug=slug)
    return check(user, agent, action)


def published_agents(workspace_id: int):
    """The workspace's published agents, each with its backing flow and the flow's version."""
    return Agent.objects.filter(
        workspace_id=workspace_id, flow__published_version__isnull=False
    ).select_related("flow", "flow__published_version")


def access_published_agent(api_key: ApiKey, slug: str) -> Flow:
    """The backing flow of the published agent ``slug`` if the key may run it, as
    ``flows.access.access_published_flow`` answers for a flow: Http404 for an agent that is not
    there, not published or out of the key's reach, PermissionDenied when the key has no flow
    access at all or its creator may not use the agent."""
    key_kind_check(api_key, "flows.Flow")
    agent = published_agents(api_key.workspace_id).filter(slug=slug).first()
    if agent is None:
        raise Http404
    try:
        return check(api_key, agent.flow, "run")
    except PermissionDenied:
        raise PermissionDenied("This API key may not run this agent.") from None


def agent_api_name(agent: Agent, flow_slugs: set[str]) -> str:
    """The agent's name on the APIs, given the slugs of the workspace's published flows."""
    return f"{AGENT_PREFIX}{agent.slug}" if agent.slug in flow_slugs else agent.slug


def agent_by_api_name(api_key: ApiKey, name: str) -> Flow | None:
    """The backing flow an API name runs if it names an agent (None: it names none, so it may
    be a flow's), checked as ``access_published_agent`` checks it."""
    if name.startswith(AGENT_PREFIX):
        return access_published_agent(api_key, name.removeprefix(AGENT_PREFIX))
    flows = Flow.objects.filter(workspace_id=api_key.workspace_id, kind=FlowKind.FLOW)
    if flows.filter(slug=name, published_version__isnull=False).exists():
        return None
    if not published_agents(api_key.workspace_id).filter(slug=name).exists():
        return None
    return access_published_agent(api_key, name)
