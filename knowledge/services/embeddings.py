"""The embedding cache: vectors by content hash, per workspace and embedding model.

Unchanged text is never embedded twice: not on a re-upload, not when a dead worker's document is
ingested again, not for an edited chunk whose text went back to what it was.
"""

from __future__ import annotations

from collections.abc import Callable

from pgvector import Vector

from catalog.models import Model
from knowledge.models import EmbeddingCache, KnowledgeBase
from knowledge.selectors import embedding_model_key

Embed = Callable[[Model, list[str]], list[list[float]]]


class EmbeddingCountError(Exception):
    """The embedding model answered with a different number of vectors than texts."""


def embeddings_for(
    *, knowledge_base: KnowledgeBase, texts: dict[str, str], embed: Embed
) -> tuple[dict[str, list[float]], set[str]]:
    """Vectors for ``texts`` (content hash → text) with the base's embedding model: cached ones
    from the cache, the rest embedded in one call and cached. Returns (vectors by hash, the hashes
    that came from the cache)."""
    model = knowledge_base.embedding_model
    key = embedding_model_key(model)
    workspace_id = knowledge_base.workspace_id
    vectors = {
        h: list(v)
        for h, v in EmbeddingCache.objects.filter(
            workspace_id=workspace_id, model_key=key, content_hash__in=list(texts)
        ).values_list("content_hash", "embedding")
    }
    reused = set(vectors)
    missing = [h for h in texts if h not in vectors]
    if missing:
        fresh = embed(model, [texts[h] for h in missing])
        if len(fresh) != len(missing):
            raise EmbeddingCountError("the embedding model returned the wrong number of vectors")
        vectors.update(zip(missing, fresh, strict=True))
        EmbeddingCache.objects.bulk_create(
            [
                EmbeddingCache(
                    workspace_id=workspace_id, model_key=key, content_hash=h, embedding=Vector(v)
                )
                for h, v in zip(missing, fresh, strict=True)
            ],
            ignore_conflicts=True,
        )
    return vectors, reused
