"""Reads of the compare playground."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from catalog.models import Model, Status, Task
from studio import access
from workspaces.access import membership


def playground_models(user, workspace_id: int) -> QuerySet[Model]:
    """The chat models ``user`` may use in the workspace (its own and the shared ones), one
    query: what the playground offers."""
    if membership(user, workspace_id) is None:
        return Model.objects.none()  # shared models are for members of some workspace only
    own = access.scope(user, workspace_id, Model.objects.all(), "use")
    return (
        Model.objects.filter(Q(id__in=own.values("id")) | Q(workspace__isnull=True))
        .filter(task=Task.CHAT)
        .exclude(status=Status.UNAVAILABLE)
        .order_by("name", "id")
    )
