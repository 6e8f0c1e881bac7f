"""Reads of routes."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from catalog.models import Model, Route, RouteTarget
from catalog.selectors.models import models_visible
from studio import access


def routes_visible(user, workspace_id: int) -> QuerySet[Route]:
    targets = RouteTarget.objects.select_related("model")
    return access.scope(user, workspace_id, Route.objects.all(), "view").prefetch_related(
        Prefetch("targets", queryset=targets)
    )


def route_models_offered(user, workspace_id: int) -> list[Model]:
    """The chat models ``user`` may use in the workspace: what a route may be made of."""
    models = models_visible(user, workspace_id).filter(task="chat")
    return [m for m in models if access.has_perm(user, m, "use")]


def route_for_workspace(workspace_id: int, slug: str) -> Route | None:
    """The workspace's route of that slug (routes are never shared between workspaces)."""
    return Route.objects.filter(workspace_id=workspace_id, slug=slug).first()


async def aroute_for_workspace(workspace_id: int, slug: str) -> Route | None:
    return await Route.objects.filter(workspace_id=workspace_id, slug=slug).afirst()
