"""Access to knowledge bases, their documents and chunks, for people, API keys and the tasks
they queue; built on ``studio.access``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

from knowledge.models import Chunk, Document, KnowledgeBase
from studio.access import check, fetch, has_perm
from workspaces.access import KeyKind, key_check_for_task, key_kind_check
from workspaces.models import ApiKey, KnowledgeAccess

KEY_KIND = KeyKind(
    level_field="knowledge_access",
    ids_field="knowledge_base_ids",
    actions={
        KnowledgeAccess.READ: frozenset({"view", "use"}),
        KnowledgeAccess.WRITE: frozenset({"view", "use", "change"}),
    },
    noun="knowledge bases",
)


def access_knowledge_base(user, knowledge_base_id: Any, perm: str) -> KnowledgeBase:
    """A knowledge base; ``perm``: view, use (retrieve), change (its documents too), delete,
    share."""
    return check(user, fetch(KnowledgeBase, id=knowledge_base_id), perm)


def access_document(user, document_id: Any, perm: str) -> Document:
    """A document, checked against its knowledge base (``perm`` as for the base)."""
    document = fetch(Document, "knowledge_base", id=document_id)
    check(user, document.knowledge_base, perm)
    return document


def access_chunk(user, chunk_id: Any, perm: str) -> Chunk:
    """A chunk, checked against its knowledge base (``perm`` as for the base)."""
    chunk = fetch(Chunk, "knowledge_base", "document", id=chunk_id)
    check(user, chunk.knowledge_base, perm)
    return chunk


def access_api_knowledge_base(api_key: ApiKey, slug: str, perm: str) -> KnowledgeBase:
    """A knowledge base of the key's workspace by slug, if the key may ``perm`` on it (view:
    read documents; use: retrieve; change: add, re-label and delete documents).
    PermissionDenied (with the reason) when the key has no knowledge scope or too low a one;
    Http404 when the base is not there or not among the key's bases."""
    key_kind_check(api_key, "knowledge.KnowledgeBase")
    base = fetch(KnowledgeBase, workspace_id=api_key.workspace_id, slug=slug)
    try:
        return check(api_key, base, perm)
    except PermissionDenied:
        raise PermissionDenied(f"This API key may not {perm} the knowledge base.") from None


def access_document_for_task(document_id: Any) -> Document:
    """The document an ingestion task is to process, if whoever added it may still change its
    knowledge base (PermissionDenied with the reason otherwise; Http404 if it is gone)."""
    document = fetch(Document, "knowledge_base", "created_by", id=document_id)
    user = document.created_by
    if user is not None and not has_perm(user, document.knowledge_base, "change"):
        raise PermissionDenied("whoever added the document may no longer change this base")
    return document


def access_knowledge_base_for_task(
    knowledge_base_id: Any, *, user_id: int | None, api_key_id: int | None
) -> KnowledgeBase:
    """The base a queued retrieval reads, if whoever asked may still ``use`` it: the user, or
    a usable API key whose scope reaches it. PermissionDenied (with the reason) or Http404."""
    base = fetch(KnowledgeBase, "embedding_model", "reranker", id=knowledge_base_id)
    if api_key_id is not None:
        key_check_for_task(api_key_id, base, "use")
        return base
    user = get_user_model().objects.filter(id=user_id).first()
    if user is None or not has_perm(user, base, "use"):
        raise PermissionDenied("you may no longer use this knowledge base")
    return base
