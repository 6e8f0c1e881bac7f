"""Access to agents, for people; built on ``studio.access``."""

from __future__ import annotations

from agents.models import Agent
from studio.access import check, fetch
from workspaces.models import Workspace


def access_agent(user, workspace: Workspace, slug: str, action: str) -> Agent:
    """An agent of ``workspace`` by slug; ``action``: view, use, change, publish, delete,
    share. Http404 when it is not there or hidden from ``user``, PermissionDenied when they may
    see it but not take ``action``."""
    agent = fetch(Agent, "published_version", workspace=workspace, slug=slug)
    return check(user, agent, action)
