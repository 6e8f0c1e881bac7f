"""Reads of knowledge bases and documents."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

from catalog.models import Model
from catalog.selectors.models import model_queue
from knowledge.models import Chunk, Document, KnowledgeBase
from studio import access

INGESTION_QUEUE = "ingestion"
RETRIEVAL_QUEUE = "retrieval"


def knowledge_bases_visible(user, workspace_id: int, action: str = "view") -> QuerySet:
    """The workspace's knowledge bases ``user`` may take ``action`` on (one SQL query)."""
    return access.scope(user, workspace_id, KnowledgeBase.objects.all(), action).select_related(
        "embedding_model"
    )


def knowledge_base_by_slug(workspace_id: int, slug: str) -> KnowledgeBase | None:
    """A workspace's base by slug, with the models retrieval needs (flow nodes, agent tools)."""
    return (
        KnowledgeBase.objects.select_related("embedding_model", "reranker")
        .filter(workspace_id=workspace_id, slug=slug)
        .first()
    )


def user_may_use(user_id: int, knowledge_base: KnowledgeBase) -> bool:
    """Whether the user who started a run (or an agent) may still retrieve from the base."""
    user = get_user_model().objects.filter(id=user_id).first()
    return user is not None and access.has_perm(user, knowledge_base, "use")


def documents_of(knowledge_base: KnowledgeBase) -> QuerySet[Document]:
    return knowledge_base.documents.order_by("name")


def _gpu_queue(model: Model | None) -> str | None:
    if model is None:
        return None
    queue = model_queue(model)
    return queue if queue.startswith("gpu") else None


def ingestion_queue(knowledge_base: KnowledgeBase) -> str:
    """Where a document of the base is ingested: its embedding model's GPU queue when it has
    one, else the CPU ``ingestion`` queue."""
    return _gpu_queue(knowledge_base.embedding_model) or INGESTION_QUEUE


def retrieval_queue(knowledge_base: KnowledgeBase, rerank: bool | None = None) -> str:
    """Where a query of the base runs: the reranker's GPU queue when it reranks on a GPU, the
    embedding model's GPU queue, else the CPU ``retrieval`` queue."""
    rerank = knowledge_base.rerank if rerank is None else rerank
    reranker = knowledge_base.reranker if rerank else None
    return _gpu_queue(reranker) or _gpu_queue(knowledge_base.embedding_model) or RETRIEVAL_QUEUE


def embedding_model_key(model: Model) -> str:
    """Which embeddings a cached vector belongs to: the model entry and what its weights are."""
    identity = f"{model.id}:{model.engine}:{model.weights}:{model.revision}"
    return hashlib.sha256(identity.encode()).hexdigest()


# --- the knowledge pages and the REST API ---------------------------------------------------


def knowledge_bases_listed(user, workspace_id: int) -> QuerySet[KnowledgeBase]:
    """The bases ``user`` may view, each annotated with ``document_count`` (one SQL query)."""
    return knowledge_bases_visible(user, workspace_id).annotate(document_count=Count("documents"))


def models_usable(
    user, workspace_id: int, task: str, keep: Iterable[int | None] = ()
) -> QuerySet[Model]:
    """The catalog models of ``task`` a base of the workspace may name for ``user``: the shared
    entries and the workspace's own entries ``user`` may use, plus the ids in ``keep`` (a
    base's current models, offered even where the user may not pick them anew)."""
    own = access.scope(user, workspace_id, Model.objects.all(), "use")
    kept = [i for i in keep if i is not None]
    return Model.objects.filter(
        Q(id__in=own.values("id")) | Q(workspace__isnull=True) | Q(id__in=kept), task=task
    ).order_by("name", "id")


def document_in(knowledge_base: KnowledgeBase, document_id: Any) -> Document | None:
    """The base's document ``document_id``, or None (also for an id that is not a number)."""
    try:
        return knowledge_base.documents.filter(id=int(document_id)).first()
    except (TypeError, ValueError):
        return None


def document_chunks(document: Document) -> QuerySet[Chunk]:
    """The document's searchable chunks in reading order, without their vectors."""
    return (
        Chunk.objects.filter(document=document, searchable=True)
        .order_by("position")
        .defer("embedding", "bm25", "terms")
    )


def chunk_labels(knowledge_base: KnowledgeBase, chunk_ids: Iterable[int]) -> dict[int, dict]:
    """For a ranking's chunk ids: ``{id: {"document": name, "document_id": id, "position": n}}``
    (``position`` counts from 1); ids of other bases are left out."""
    rows = Chunk.objects.filter(knowledge_base=knowledge_base, id__in=list(chunk_ids)).values_list(
        "id", "document_id", "document__name", "position"
    )
    return {
        chunk_id: {"document": name, "document_id": document_id, "position": position + 1}
        for chunk_id, document_id, name, position in rows
    }
