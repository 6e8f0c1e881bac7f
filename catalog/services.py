"""Writes of the catalog."""

from __future__ import annotations

from catalog.engines import engine_class
from catalog.models import Model
from studio.models import Workspace


def model_create(
    *,
    slug: str,
    name: str,
    engine: str,
    weights: str = "",
    settings: dict | None = None,
    workspace: Workspace | None = None,
    task: str = "chat",
    context_length: int = 2048,
) -> Model:
    """A catalog entry; its engine settings are validated by the engine's own schema."""
    settings = (
        engine_class(engine)
        .Settings.model_validate(settings or {})
        .model_dump(exclude_defaults=True)
    )
    return Model.objects.create(
        slug=slug,
        name=name,
        engine=engine,
        weights=weights,
        settings=settings,
        workspace=workspace,
        task=task,
        context_length=context_length,
    )
