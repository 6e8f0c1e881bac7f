"""Writes of single chunks from the document page: edit the text, turn a chunk off or on.

An edited chunk is searchable by keywords at once and leaves dense search until a worker has
embedded its new text (``chunk_embed``). Re-ingesting the document replaces edits.
"""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction
from pgvector import Vector

from knowledge.keywords import chunk_terms
from knowledge.models import Chunk, KnowledgeBase
from knowledge.selectors import ingestion_queue
from knowledge.services.embeddings import Embed, embeddings_for
from knowledge.services.stats import stats_add
from studio.celery import app
from workspaces.audit import audit_record

EMBED_TASK = "workers.tasks.embed_chunk"
MAX_CHUNK_CHARS = 20_000


def chunk_update(
    *, chunk: Chunk, text: str | None = None, enabled: bool | None = None, actor=None
) -> Chunk:
    before = {"text": chunk.text, "enabled": chunk.enabled}
    if text is not None:
        text = text.strip()
        if not text:
            raise ValidationError("a chunk cannot be empty; turn it off instead")
        if len(text) > MAX_CHUNK_CHARS:
            raise ValidationError(f"a chunk is at most {MAX_CHUNK_CHARS:,} characters")
    with transaction.atomic():
        base = KnowledgeBase.objects.select_for_update().get(id=chunk.knowledge_base_id)
        chunk = Chunk.objects.select_for_update().get(id=chunk.id)
        if enabled is not None:
            chunk.enabled = enabled
        if text is not None and text != chunk.text:
            counted = Chunk.objects.filter(id=chunk.id, searchable=True)
            stats_add(base, counted, -1)
            terms = chunk_terms(text, base.average_length)
            chunk.text, chunk.edited = text, True
            chunk.content_hash = hashlib.sha256(text.encode()).hexdigest()
            chunk.terms, chunk.bm25, chunk.length = terms.terms, terms.weights, terms.length
            chunk.embedding, chunk.dimensions = None, None
            chunk.save()
            stats_add(base, counted)
            chunk_id, queue = chunk.id, ingestion_queue(base)
            transaction.on_commit(lambda: app.send_task(EMBED_TASK, args=[chunk_id], queue=queue))
        else:
            chunk.save(update_fields=["enabled"])
        audit_record(
            workspace=base.workspace_id,
            actor=actor,
            action="chunk.change",
            target=chunk,
            target_label=f"{chunk.document.name} #{chunk.position + 1}",
            before=before,
            after={"text": chunk.text, "enabled": chunk.enabled},
        )
    return chunk


def chunk_embed(*, chunk_id: int, embed: Embed) -> bool:
    """Embed an edited chunk's text; False when the chunk is gone or changed again meanwhile
    (that edit's own task embeds it)."""
    chunk = Chunk.objects.select_related("knowledge_base__embedding_model").filter(id=chunk_id)
    chunk = chunk.first()
    if chunk is None or chunk.embedding is not None:
        return False
    vectors, _ = embeddings_for(
        knowledge_base=chunk.knowledge_base, texts={chunk.content_hash: chunk.text}, embed=embed
    )
    vector = vectors[chunk.content_hash]
    return bool(
        Chunk.objects.filter(id=chunk_id, content_hash=chunk.content_hash).update(
            embedding=Vector(vector), dimensions=len(vector)
        )
    )
