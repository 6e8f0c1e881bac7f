"""Writes of the catalog."""

from __future__ import annotations

from django.db import transaction

from catalog.engines import engine_class
from catalog.models import Model
from studio.audit import audit_record, snapshot
from studio.models import Workspace

MODEL_FIELDS = ("slug", "name", "task", "engine", "weights", "settings", "context_length", "status")


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
    actor=None,
) -> Model:
    """A catalog entry; its engine settings are validated by the engine's own schema."""
    settings = (
        engine_class(engine)
        .Settings.model_validate(settings or {})
        .model_dump(exclude_defaults=True)
    )
    with transaction.atomic():
        model = Model.objects.create(
            slug=slug,
            name=name,
            engine=engine,
            weights=weights,
            settings=settings,
            workspace=workspace,
            task=task,
            context_length=context_length,
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            action="model.create",
            target=model,
            after=snapshot(model, MODEL_FIELDS),
        )
    return model


def model_update(*, model: Model, actor=None, **changes) -> Model:
    """Change fields of a catalog entry (settings validated by its engine's schema)."""
    unknown = set(changes) - set(MODEL_FIELDS) - {"description"}
    if unknown:
        raise TypeError(f"not catalog fields: {', '.join(sorted(unknown))}")
    engine = changes.get("engine", model.engine)
    if "settings" in changes or "engine" in changes:
        changes["settings"] = (
            engine_class(engine)
            .Settings.model_validate(changes.get("settings", model.settings))
            .model_dump(exclude_defaults=True)
        )
    with transaction.atomic():
        before = snapshot(model, MODEL_FIELDS)
        for name, value in changes.items():
            setattr(model, name, value)
        model.save()
        audit_record(
            workspace=model.workspace_id,
            actor=actor,
            action="model.change",
            target=model,
            before=before,
            after=snapshot(model, MODEL_FIELDS),
        )
    return model


def model_delete(*, model: Model, actor=None) -> None:
    with transaction.atomic():
        audit_record(
            workspace=model.workspace_id,
            actor=actor,
            action="model.delete",
            target=model,
            before=snapshot(model, MODEL_FIELDS),
        )
        model.delete()
