"""The in-memory keyword index: the SQL scores to the bit, a fresh index after every change of a
base, its boundary and filters, the background build of large bases, and a snapshot's view."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from knowledge import keyword_index, search
from knowledge.keywords import query_terms
from knowledge.models import Chunk
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import (
    document_add_text,
    document_delete,
    document_metadata_update,
)
from knowledge.services.ingestion import document_ingest
from tests.knowledge.helpers import in_process_embed, wait_for
from workspaces.services import workspace_create

TEXTS = [
    f"Study {i} of cell membranes and protein folding."
    + (" Zebrafish heart regeneration." if i % 3 == 0 else "")
    + (" Retina development." if i % 4 == 0 else "")
    for i in range(30)
]


def _ingest(base, name: str, text: str, metadata: dict | None = None):
    document, _ = document_add_text(knowledge_base=base, name=name, text=text, metadata=metadata)
    document_ingest(document_id=document.id, embed=in_process_embed())
    # Where a test commits, a worker left running by an earlier test may take the task first.
    document = wait_for(document)
    assert document.status == "ready", document.error
    return document


def _base(workspace, slug: str = "cells"):
    return kb_create(
        workspace=workspace,
        slug=slug,
        values=BaseSettings(name=slug.title(), chunk_size=32, chunk_overlap=0),
    )


def _sql_statements(call) -> tuple[object, list[str]]:
    seen: list[str] = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        result = call()
    return result, seen


def _scored_in_sql(statements: list[str]) -> bool:
    return any("c.terms && " in sql for sql in statements)


def _exhaustive(base_id: int, query: str, limit: int) -> list[tuple[int, float]]:
    terms, counts = query_terms(query)
    with connection.cursor() as cursor:
        cursor.execute(search._keyword_sql({}), [terms, counts, base_id, base_id, terms, limit])
        return cursor.fetchall()


def _keyword(base, query: str, limit: int = 50, **filters) -> list[tuple[int, float]]:
    hits = search.keyword(knowledge_base_id=base.id, query=query, limit=limit, filters=filters)
    return [(h.chunk_id, h.score) for h in hits]


@pytest.fixture
def base(workspace, embedding_model):
    base = _base(workspace)
    _ingest(base, "cells.txt", "\n\n".join(TEXTS), {"kind": "cells"})
    return base


def test_scores_come_from_memory_and_equal_the_sql_ones(base):
    for query in ("zebrafish retina", "cell protein study", "retina retina heart", "nothing"):
        for limit in (1, 5, 100):
            hits, statements = _sql_statements(lambda q=query, n=limit: _keyword(base, q, n))
            assert not _scored_in_sql(statements)
            assert hits == _exhaustive(base.id, query, limit), (query, limit)


def test_each_change_of_the_base_is_seen_at_once(base):
    before = _keyword(base, "zebrafish")
    added = _ingest(base, "fish.txt", "Zebrafish zebrafish zebrafish swim.", {"kind": "fish"})
    after = _keyword(base, "zebrafish")
    new_ids = set(added.chunks.values_list("id", flat=True))
    assert after[0][0] in new_ids and len(after) == len(before) + len(new_ids)
    assert after == _exhaustive(base.id, "zebrafish", 50)  # idfs moved with the statistics

    Chunk.objects.filter(id=after[0][0]).update(enabled=False)
    assert after[0][0] not in dict(_keyword(base, "zebrafish"))

    document_metadata_update(document=added, metadata={"kind": "cells"})
    assert _keyword(base, "zebrafish", kind="fish") == []

    document_delete(document=added)
    assert _keyword(base, "zebrafish") == _exhaustive(base.id, "zebrafish", 50) == before


def test_filters_and_the_base_boundary_hold(base, embedding_model):
    other = _base(workspace_create(slug="elsewhere", name="Elsewhere"), "other")
    _ingest(other, "other.txt", "Zebrafish retina secrets of another base.", {"kind": "cells"})
    _ingest(base, "heart.txt", "Zebrafish heart valves.", {"kind": "heart"})
    theirs = set(Chunk.objects.filter(knowledge_base=other).values_list("id", flat=True))
    ours = _keyword(base, "zebrafish retina secrets")
    assert ours and not theirs & set(dict(ours))
    hearts = _keyword(base, "zebrafish", kind="heart")
    texts = Chunk.objects.filter(id__in=dict(hearts)).values_list("text", flat=True)
    assert len(hearts) == 1 and "valves" in texts[0]
    either = _keyword(base, "zebrafish", kind=["heart", "cells"])
    assert either == _keyword(base, "zebrafish")


def test_an_index_over_the_budget_is_never_built(base, settings):
    settings.KNOWLEDGE_KEYWORD_INDEX_BYTES = 1000
    keyword_index.indexes.drop()
    hits, statements = _sql_statements(lambda: _keyword(base, "zebrafish retina"))
    assert _scored_in_sql(statements) and hits == _exhaustive(base.id, "zebrafish retina", 50)


def test_least_recently_used_indexes_leave_first(base, embedding_model, settings):
    other = _base(base.workspace, "more")
    _ingest(other, "more.txt", "\n\n".join(TEXTS))
    keyword_index.indexes.drop()
    _keyword(base, "zebrafish")
    with connection.cursor() as cursor:
        first = keyword_index.build(cursor, base.id)
    settings.KNOWLEDGE_KEYWORD_INDEX_BYTES = int(first.nbytes * 1.5)
    _keyword(other, "zebrafish")  # indexed too: the budget holds one, so the older one leaves
    with connection.cursor() as cursor:
        assert keyword_index.index_for(cursor, other.id) is not None
        assert keyword_index.indexes.get(base.id, keyword_index.generation(cursor, base.id)) is None


@pytest.mark.django_db(transaction=True)
def test_a_large_base_is_indexed_in_the_background_meanwhile_sql_answers(
    workspace, embedding_model, settings
):
    settings.KNOWLEDGE_KEYWORD_INDEX_INLINE_CHUNKS = 0
    base = _base(workspace, "large")
    _ingest(base, "cells.txt", "\n\n".join(TEXTS))
    keyword_index.indexes.drop()
    cold, statements = _sql_statements(lambda: _keyword(base, "zebrafish retina"))
    assert _scored_in_sql(statements)
    keyword_index.indexes.wait(30)
    warm, statements = _sql_statements(lambda: _keyword(base, "zebrafish retina"))
    assert not _scored_in_sql(statements)
    assert warm == cold == _exhaustive(base.id, "zebrafish retina", 50)


@pytest.mark.django_db(transaction=True)
def test_a_search_sees_its_snapshot_even_when_a_newer_index_is_held(workspace, embedding_model):
    base = _base(workspace, "snapshot")
    _ingest(base, "cells.txt", "\n\n".join(TEXTS))
    old = _keyword(base, "zebrafish")
    terms, counts = query_terms("zebrafish")
    with search._snapshot() as cursor:
        assert search._keyword_ranking(cursor, base.id, "zebrafish", {})(50) == old

        def ingest_and_search() -> None:
            try:
                _ingest(base, "fish.txt", "Zebrafish zebrafish swim.")
                _keyword(base, "zebrafish")  # the process now holds the new index
            finally:
                connection.close()

        writer = threading.Thread(target=ingest_and_search)
        writer.start()
        writer.join()
        assert search._keyword_ranking(cursor, base.id, "zebrafish", {})(50) == old
    assert len(_keyword(base, "zebrafish")) > len(old)


def test_an_empty_base_finds_nothing(workspace, embedding_model):
    base = _base(workspace, "empty")
    assert _keyword(base, "zebrafish") == []
    with transaction.atomic(), connection.cursor() as cursor:
        index = keyword_index.index_for(cursor, base.id)
    assert index is not None and index.top([1, 2], [1, 1], 10) == []
