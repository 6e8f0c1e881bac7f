"""Reads of the catalog."""

from __future__ import annotations

from django.db.models import F, Func, Q, QuerySet, TextField, Value

from catalog.engines import engine_class
from catalog.engines.base import EngineSpec
from catalog.models import Credential, Model
from catalog.secrets import decrypt
from studio import access


def models_for_workspace(workspace_id: int) -> QuerySet[Model]:
    """A workspace's own models and the shared ones."""
    return Model.objects.filter(Q(workspace_id=workspace_id) | Q(workspace__isnull=True))


def models_visible(user, workspace_id: int) -> QuerySet[Model]:
    """The shared models and those of the workspace ``user`` may see."""
    own = access.scope(user, workspace_id, Model.objects.all(), "view")
    return Model.objects.filter(Q(id__in=own.values("id")) | Q(workspace__isnull=True))


def models_filter(
    models: QuerySet[Model],
    *,
    q: str = "",
    task: str = "",
    engine: str = "",
    source: str = "",
    tag: str = "",
    status: str = "",
) -> QuerySet[Model]:
    """``models`` narrowed by the catalog page's filters; an empty filter narrows nothing.

    ``q`` matches text anywhere in the name, slug, description or a tag; ``tag`` is one whole
    tag (tags are stored lowercase).
    """
    if q := q.strip():
        models = models.annotate(
            tag_text=Func(
                F("tags"), Value(" "), function="array_to_string", output_field=TextField()
            )
        ).filter(
            Q(name__icontains=q)
            | Q(slug__icontains=q)
            | Q(description__icontains=q)
            | Q(tag_text__icontains=q)
        )
    exact = {"task": task, "engine": engine, "source": source, "status": status}
    models = models.filter(**{field: value for field, value in exact.items() if value})
    if tag := tag.strip().lower():
        models = models.filter(tags__contains=[tag])
    return models


def model_tags(models: QuerySet[Model]) -> list[str]:
    """The tags used by ``models``, sorted (for the filter's choices)."""
    return sorted({tag for tags in models.values_list("tags", flat=True) for tag in tags})


def model_for_workspace(workspace_id: int, slug: str) -> Model | None:
    # A workspace's own entry wins over a shared one of the same slug.
    return models_for_workspace(workspace_id).filter(slug=slug).order_by("workspace_id").first()


async def amodel_for_workspace(workspace_id: int, slug: str) -> Model | None:
    return await (
        models_for_workspace(workspace_id).filter(slug=slug).order_by("workspace_id").afirst()
    )


def model_queue(model: Model) -> str:
    """The worker queue whose processes keep ``model``'s engine resident."""
    return engine_class(model.engine).queue_for(model.settings)


def engine_spec(model: Model, secret: str = "") -> EngineSpec:
    """What the engine for ``model`` is built from (``secret``: its decrypted credential)."""
    return EngineSpec(
        engine=model.engine,
        weights=model.weights,
        settings=model.settings,
        revision=model.revision,
        quantization=model.quantization,
        dtype=model.dtype,
        context_length=model.context_length,
        credential_id=model.credential_id,
        task=model.task,
        secret=secret,
    )


async def acredential_secret(credential_id: int | None) -> str:
    """The decrypted secret of a credential ("" for none). Only engines call this."""
    if credential_id is None:
        return ""
    ciphertext = (
        await Credential.objects.filter(id=credential_id)
        .values_list("ciphertext", flat=True)
        .afirst()
    )
    return decrypt(ciphertext) if ciphertext is not None else ""
