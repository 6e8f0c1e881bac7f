"""Writes of knowledge bases: create, change settings, delete."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from pydantic import ValidationError as SchemaError

from catalog.models import Model
from catalog.selectors.models import models_for_workspace
from catalog.services.models import embedding_model_default
from knowledge.chunking import ChunkSettings
from knowledge.models import KnowledgeBase, SearchMode
from studio import access
from workspaces.audit import audit_record
from workspaces.models import Workspace
from workspaces.sharing import creator_grant

SETTINGS_FIELDS = (
    "name",
    "description",
    "splitter",
    "chunk_size",
    "chunk_overlap",
    "search_mode",
    "top_k",
    "score_threshold",
    "rerank",
)


@dataclass
class BaseSettings:
    """What a person sets on a knowledge base (forms and the API fill it)."""

    name: str
    description: str = ""
    embedding_model: Model | None = None
    splitter: str = "sentence"
    chunk_size: int = 200
    chunk_overlap: int = 20
    search_mode: str = SearchMode.HYBRID
    top_k: int = 5
    score_threshold: float = 0.0
    rerank: bool = False
    reranker: Model | None = None


def _snapshot(base: KnowledgeBase) -> dict:
    snap = {name: getattr(base, name) for name in SETTINGS_FIELDS}
    snap["slug"] = base.slug
    snap["embedding_model"] = base.embedding_model.slug
    snap["reranker"] = base.reranker.slug if base.reranker_id else None
    return snap


def _clean(workspace_id: int, values: BaseSettings, actor) -> None:
    errors: list[str] = []
    try:
        ChunkSettings(
            splitter=values.splitter,
            chunk_size=values.chunk_size,
            chunk_overlap=values.chunk_overlap,
        )
    except SchemaError as exc:
        errors += [e["msg"].removeprefix("Value error, ") for e in exc.errors()]
    if values.search_mode not in SearchMode.values:
        errors.append(f"unknown search mode {values.search_mode!r}")
    if not 1 <= values.top_k <= 100:
        errors.append("top k is between 1 and 100")
    if not -1.0 <= values.score_threshold <= 1000.0:
        errors.append("the score threshold is between -1 and 1000")
    visible = models_for_workspace(workspace_id)
    for model, task, label in (
        (values.embedding_model, "embedding", "embedding model"),
        (values.reranker, "rerank", "reranker"),
    ):
        if model is None:
            continue
        # One answer for a model that is not there and one the actor may not use (checked
        # before its task, which would tell that it exists): no probing for private slugs.
        if not visible.filter(id=model.id).exists() or (
            actor is not None and not access.has_perm(actor, model, "use")
        ):
            errors.append(f"the {label} {model.slug!r} is not in this workspace's catalog")
        elif model.task != task:
            errors.append(f"{model.slug} is a {model.task} model, not a {task} model")
    if values.rerank and values.reranker is None:
        errors.append("choose a reranker to turn reranking on")
    if errors:
        raise ValidationError(errors)


def kb_create(
    *, workspace: Workspace, slug: str, values: BaseSettings, actor=None
) -> KnowledgeBase:
    """A new knowledge base; its embedding model defaults to the bundled all-MiniLM-L6-v2."""
    if values.embedding_model is None:
        values.embedding_model = embedding_model_default()
    _clean(workspace.id, values, actor)
    with transaction.atomic():
        if KnowledgeBase.objects.filter(workspace=workspace, slug=slug).exists():
            raise ValidationError(f"a knowledge base named {slug!r} already exists")
        base = KnowledgeBase.objects.create(
            workspace=workspace,
            slug=slug,
            embedding_model=values.embedding_model,
            reranker=values.reranker,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            **{name: getattr(values, name) for name in SETTINGS_FIELDS},
        )
        creator_grant(obj=base, user=actor)
        audit_record(
            workspace=workspace,
            actor=actor,
            action="kb.create",
            target=base,
            after=_snapshot(base),
        )
    return base


def kb_update(*, knowledge_base: KnowledgeBase, values: BaseSettings, actor=None) -> KnowledgeBase:
    """Change the settings. Chunking applies to documents ingested from now on; the embedding
    model can change only while the base has no documents."""
    if values.embedding_model is None:
        values.embedding_model = knowledge_base.embedding_model
    _clean(knowledge_base.workspace_id, values, actor)
    with transaction.atomic():
        base = KnowledgeBase.objects.select_for_update().get(id=knowledge_base.id)
        if values.embedding_model.id != base.embedding_model_id and base.documents.exists():
            raise ValidationError(
                "the embedding model cannot change while the base holds documents: their "
                "vectors would not be comparable; create a new knowledge base instead"
            )
        before = _snapshot(base)
        for name in SETTINGS_FIELDS:
            setattr(base, name, getattr(values, name))
        if values.embedding_model.id != base.embedding_model_id:
            base.dimensions = None
        base.embedding_model, base.reranker = values.embedding_model, values.reranker
        base.save()
        audit_record(
            workspace=base.workspace_id,
            actor=actor,
            action="kb.change",
            target=base,
            before=before,
            after=_snapshot(base),
        )
    return base


def kb_delete(*, knowledge_base: KnowledgeBase, actor=None) -> None:
    """Delete the base, its documents (and their stored files, once committed) and chunks."""
    with transaction.atomic():
        audit_record(
            workspace=knowledge_base.workspace_id,
            actor=actor,
            action="kb.delete",
            target=knowledge_base,
            before=_snapshot(knowledge_base),
        )
        files = [
            (d.file.storage, d.file.name) for d in knowledge_base.documents.all() if d.file.name
        ]
        knowledge_base.delete()

        def remove() -> None:
            for storage, name in files:
                storage.delete(name)

        transaction.on_commit(remove)
