"""Reads of the catalog."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from catalog.engines import engine_class
from catalog.models import Model
from studio import access


def models_for_workspace(workspace_id: int) -> QuerySet[Model]:
    """A workspace's own models and the shared ones."""
    return Model.objects.filter(Q(workspace_id=workspace_id) | Q(workspace__isnull=True))


def models_visible(user, workspace_id: int) -> QuerySet[Model]:
    """The shared models and those of the workspace ``user`` may see."""
    own = access.scope(user, workspace_id, Model.objects.all(), "view")
    return Model.objects.filter(Q(id__in=own.values("id")) | Q(workspace__isnull=True))


def model_for_workspace(workspace_id: int, slug: str) -> Model | None:
    # A workspace's own entry wins over a shared one of the same slug.
    return models_for_workspace(workspace_id).filter(slug=slug).order_by("workspace_id").first()


async def amodel_for_workspace(workspace_id: int, slug: str) -> Model | None:
    return await (
        models_for_workspace(workspace_id).filter(slug=slug).order_by("workspace_id").afirst()
    )


def model_queue(model: Model) -> str:
    """The worker queue whose processes keep ``model``'s engine resident."""
    return engine_class(model.engine).queue
