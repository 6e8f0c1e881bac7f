"""Keyword search, from the in-memory index or in SQL where it prunes with the query's rarer terms
(MaxScore): the ranking and the scores must be those of scoring every chunk that holds a query
term."""

from __future__ import annotations

import pytest
from django.db import connection

from knowledge import search
from knowledge.keywords import query_terms
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_text
from knowledge.services.ingestion import document_ingest
from tests.knowledge.helpers import fused_in_sql, in_process_embed

# Every chunk holds the common words; one in seven holds "zebrafish", one in eleven "retina".
SENTENCES = [
    f"Cell study {i} measured protein levels in cell cultures."
    + (" Zebrafish fins regenerate." if i % 7 == 0 else "")
    + (" The retina of zebrafish larvae." if i % 11 == 0 else "")
    for i in range(90)
]
QUERIES = [
    "zebrafish retina cell",
    "protein cell study zebrafish",
    "retina",
    "cell protein levels",
    "unknown words only",
]


@pytest.fixture
def base(workspace, owner, embedding_model):
    base = kb_create(
        workspace=workspace,
        slug="pruning",
        values=BaseSettings(name="Pruning", chunk_size=32, chunk_overlap=0),
        actor=owner,
    )
    document, _ = document_add_text(
        knowledge_base=base, name="cells.txt", text="\n\n".join(SENTENCES)
    )
    document_ingest(document_id=document.id, embed=in_process_embed())
    document.refresh_from_db()
    assert document.status == "ready", document.error
    return base


def _exhaustive(base_id: int, query: str, limit: int, filters: dict) -> list[tuple[int, float]]:
    """The query scoring every chunk that holds any query term (no pruning)."""
    terms, counts = query_terms(query)
    _, filter_params = search._filters_sql(filters)
    with connection.cursor() as cursor:
        cursor.execute(
            search._keyword_sql(filters),
            [terms, counts, base_id, base_id, terms, *filter_params, limit],
        )
        return cursor.fetchall()


@pytest.fixture
def in_sql(settings):
    """Keyword search scored in SQL: no base fits a keyword index of no bytes."""
    settings.KNOWLEDGE_KEYWORD_INDEX_BYTES = 0


@pytest.fixture(params=["index", "sql"])
def scoring(request, settings):
    if request.param == "sql":
        settings.KNOWLEDGE_KEYWORD_INDEX_BYTES = 0
    return request.param


@pytest.mark.parametrize("limit", [1, 3, 10, 100])
def test_pruned_keyword_search_equals_the_exhaustive_one(base, limit, scoring):
    assert base.chunks.filter(searchable=True).count() >= 20
    for query in QUERIES:
        for filters in ({}, {"missing": 1}):
            hits = search.keyword(
                knowledge_base_id=base.id, query=query, limit=limit, filters=filters
            )
            expected = _exhaustive(base.id, query, limit, filters)
            assert [(h.chunk_id, h.score) for h in hits] == expected, (query, filters)


def test_rare_terms_alone_find_the_candidates(base, in_sql):
    scanned: list[list[int]] = []

    def spy(execute, sql, params, many, context):
        if "c.terms && " in sql:
            scanned.append(params[4])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        hits = search.keyword(knowledge_base_id=base.id, query="zebrafish retina cell", limit=3)
    assert hits and hits == search.keyword(
        knowledge_base_id=base.id, query="zebrafish retina cell", limit=3
    )
    terms, _ = query_terms("zebrafish retina cell")
    # The common "cell" is never scanned: every chunk holds it, the rare terms decide the top 3.
    assert len(scanned[-1]) < len(terms)


def test_hybrid_takes_the_pruned_keyword_ranking(base, scoring):
    query = "zebrafish retina cell"
    keyword_hits = search.keyword(knowledge_base_id=base.id, query=query, limit=100)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT embedding::text FROM knowledge_chunk WHERE id = %s", [keyword_hits[0].chunk_id]
        )
        vector = [float(x) for x in cursor.fetchone()[0].strip("[]").split(",")]
    fused = search.hybrid(
        knowledge_base_id=base.id, dimensions=384, vector=vector, query=query, limit=100
    )
    ranks = {h.chunk_id: (h.keyword_rank, h.keyword_score) for h in fused if h.keyword_rank}
    assert ranks == {h.chunk_id: (h.rank, h.score) for h in keyword_hits}


@pytest.mark.parametrize("candidates", [5, 30, 100])
def test_hybrid_fuses_both_rankings_as_sql_fused_them(base, scoring, candidates):
    fish, _ = document_add_text(
        knowledge_base=base,
        name="fish.txt",
        text="\n\n".join(s for s in SENTENCES if "Zebrafish" in s),
        metadata={"kind": "fish"},
    )
    document_ingest(document_id=fish.id, embed=in_process_embed())
    vectors = in_process_embed()(base.embedding_model, QUERIES)
    for query, vector in zip(QUERIES, vectors, strict=True):
        for filters in ({}, {"kind": "fish"}, {"missing": 1}):
            common = {"knowledge_base_id": base.id, "filters": filters}
            nearest = search.dense(dimensions=384, vector=vector, limit=candidates, **common)
            found = search.keyword(query=query, limit=candidates, **common)
            hits = search.hybrid(
                dimensions=384,
                vector=vector,
                query=query,
                limit=50,
                candidates=candidates,
                **common,
            )
            expected = fused_in_sql(
                [(h.chunk_id, 1 - h.score) for h in nearest],
                [(h.chunk_id, h.score) for h in found],
                50,
            )
            assert [
                (h.chunk_id, h.score, h.rank, h.dense_rank, h.keyword_rank, h.keyword_score)
                for h in hits
            ] == [
                (i, float(fused), n, dense_rank, keyword_rank, bm25)
                for n, (i, fused, dense_rank, _, keyword_rank, bm25) in enumerate(expected, 1)
            ], (query, filters)
            # Similarity as dense search gives it (the distance is not returned to recompute).
            assert [h.dense_score for h in hits if h.dense_rank] == [
                nearest[h.dense_rank - 1].score for h in hits if h.dense_rank
            ]
            assert hits or not (nearest or found)
