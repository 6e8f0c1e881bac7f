"""Retrieval quality on a BEIR dataset, through the studio's own ingestion and retrieval code.

The corpus is ingested into a fresh knowledge base (one document per corpus entry, title and
text, the corpus id in the document's metadata) with ``document_add_text`` and
``document_ingest`` (parsing, LlamaIndex chunking, embedding with the bundled all-MiniLM-L6-v2 on
the CPU, BM25 weights), then every test query is run through ``knowledge.search`` (dense,
keyword, hybrid) and, with ``--rerank-model``, reranked by ``knowledge.retrieval``. Chunks are
mapped to their documents (a document scores as its best chunk), a document whose id equals the
query id is dropped (BEIR's convention), and the script prints nDCG@10 and recall@100 per method,
ending with one line ``hybrid ndcg@10 = 0.xxxx``.

Embedding 5,183 SciFact abstracts takes 10-15 minutes on 2 CPU cores. The studio's embedding
cache (per workspace and model, by content hash) keeps the vectors in the bench's database under
``var/bench-retrieval-quality/``, so later runs only re-chunk, re-weight and query.

    .venv/bin/python bench/retrieval_quality.py [--dataset DIR] [--limit-docs N]

``BEIR_DATASET_DIR`` (or ``--dataset``) names a folder with ``corpus.jsonl``, ``queries.jsonl``
and ``qrels/test.tsv``; the default is ``../shared/datasets/scifact``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "var" / "bench-retrieval-quality"
os.environ["STUDIO_VAR_DIR"] = str(BENCH_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
sys.path.insert(0, str(REPO))

from studio import embedded  # noqa: E402

WORKSPACE = "bench"
BASE = "beir"
DEPTH = 100  # documents per query, for recall@100
CHUNK_DEPTH = 300  # chunks fetched per query and method (several chunks map to one document)


def load_dataset(folder: Path, limit: int | None):
    corpus = {}
    with open(folder / "corpus.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            corpus[str(row["_id"])] = (row.get("title") or "", row.get("text") or "")
            if limit and len(corpus) >= limit:
                break
    queries = {}
    with open(folder / "queries.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(folder / "qrels" / "test.tsv", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        for row in reader:
            if not row or row[0] == "query-id":
                continue
            query_id, doc_id, score = row[0].strip(), row[1].strip(), int(row[2])
            if doc_id in corpus:
                qrels[query_id][doc_id] = score
    qrels = {q: r for q, r in qrels.items() if q in queries and any(r.values())}
    return corpus, queries, qrels


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = DEPTH) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def setup_django():
    """The bench's own embedded PostgreSQL and Redis (ingestion tasks are queued there too, and
    never run: this script ingests in its own process); returns the Redis process."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = embedded.redis_start()
        os.environ["REDIS_URL"] = embedded.embedded_redis_url()
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded.postgres_url()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return redis


def ingest(corpus, chunk_size: int, overlap: int):
    from catalog.services.models import embedding_model_default
    from knowledge.models import Document, KnowledgeBase
    from knowledge.services.bases import BaseSettings, kb_create, kb_delete
    from knowledge.services.documents import document_add_text
    from knowledge.services.ingestion import document_ingest
    from workers.resident import runtime
    from workspaces.models import Workspace
    from workspaces.services import workspace_create

    workspace = Workspace.objects.filter(slug=WORKSPACE).first() or workspace_create(
        slug=WORKSPACE, name="Bench"
    )
    old = KnowledgeBase.objects.filter(workspace=workspace, slug=BASE).first()
    if old:
        kb_delete(knowledge_base=old)
    base = kb_create(
        workspace=workspace,
        slug=BASE,
        values=BaseSettings(
            name="BEIR",
            embedding_model=embedding_model_default(),
            chunk_size=chunk_size,
            chunk_overlap=overlap,
        ),
    )
    embed_s = 0.0

    def timed_embed(model, texts):
        nonlocal embed_s
        started = time.perf_counter()
        try:
            return runtime().embed(model, texts)
        finally:
            embed_s += time.perf_counter() - started

    started = time.perf_counter()
    for n, (doc_id, (title, text)) in enumerate(corpus.items(), 1):
        body = f"{title}\n\n{text}" if title else text
        document, _ = document_add_text(
            knowledge_base=base, name=f"{doc_id}.txt", text=body, metadata={"doc_id": doc_id}
        )
        document_ingest(document_id=document.id, embed=timed_embed)
        if n % 500 == 0:
            print(
                f"  ingested {n}/{len(corpus)} documents ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    failed = Document.objects.filter(knowledge_base=base).exclude(status="ready").count()
    base.refresh_from_db()
    elapsed = time.perf_counter() - started
    print(
        f"ingested {len(corpus)} documents, {base.chunk_total} chunks in {elapsed:.0f} s "
        f"({embed_s:.0f} s embedding new text; {failed} failed)"
    )
    return base


def evaluate(base, queries, qrels, rerank_model: str | None):
    from catalog.models import Model
    from knowledge import fusion, search
    from knowledge.models import Chunk
    from knowledge.retrieval import RetrievalOptions, retrieve
    from workers import resident
    from workers.resident import runtime

    doc_of = dict(Chunk.objects.filter(knowledge_base=base).values_list("id", "metadata__doc_id"))

    def documents(hits, query_id) -> list[str]:
        ranked, seen = [], set()
        for hit in hits:  # best chunk first: the document's rank is its best chunk's
            doc = doc_of.get(hit.chunk_id)
            if doc and doc != query_id and doc not in seen:
                seen.add(doc)
                ranked.append(doc)
        return ranked

    methods = {"dense": [], "keyword": [], "hybrid": []}
    if rerank_model:
        methods["reranked"] = []
        base.reranker = Model.objects.get(slug=rerank_model)
        base.rerank = True
        base.save()
    timings = defaultdict(list)
    for query_id, relevant in qrels.items():
        text = queries[query_id]
        vector = runtime().embed(base.embedding_model, [text])[0]
        for name in ("dense", "keyword", "hybrid"):
            started = time.perf_counter()
            if name == "dense":
                hits = search.dense(
                    knowledge_base_id=base.id,
                    dimensions=base.dimensions,
                    vector=vector,
                    limit=CHUNK_DEPTH,
                )
            elif name == "keyword":
                hits = search.keyword(knowledge_base_id=base.id, query=text, limit=CHUNK_DEPTH)
            else:
                hits = search.hybrid(
                    knowledge_base_id=base.id,
                    dimensions=base.dimensions,
                    vector=vector,
                    query=text,
                    limit=CHUNK_DEPTH,
                    candidates=CHUNK_DEPTH,
                )
            timings[name].append((time.perf_counter() - started) * 1000)
            methods[name].append((documents(hits, query_id), relevant))
        if rerank_model:
            result = retrieve(
                knowledge_base=base,
                query=text,
                options=RetrievalOptions(top_k=25, mode="hybrid", rerank=True),
                engine_for=resident.runtime().engine_for,
            )
            ranked = [c.metadata.get("doc_id") for c in result.citations]
            ranked = [d for d in dict.fromkeys(ranked) if d and d != query_id]
            methods["reranked"].append((ranked, relevant))
    print(f"\n{len(qrels)} test queries; chunk depth {CHUNK_DEPTH}, RRF k = {fusion.RRF_K}")
    print(f"{'method':<10} {'ndcg@10':>8} {'recall@100':>11} {'p50 ms':>8}")
    scores = {}
    for name, runs in methods.items():
        ndcg = sum(ndcg_at(r, rel) for r, rel in runs) / len(runs)
        recall = sum(recall_at(r, rel) for r, rel in runs) / len(runs)
        latency = sorted(timings[name])[len(timings[name]) // 2] if timings[name] else float("nan")
        scores[name] = ndcg
        print(f"{name:<10} {ndcg:>8.4f} {recall:>11.4f} {latency:>8.1f}")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        default=os.environ.get("BEIR_DATASET_DIR") or str(REPO.parent / "shared/datasets/scifact"),
    )
    parser.add_argument("--limit-docs", type=int, default=None, help="ingest only N documents")
    parser.add_argument("--chunk-size", type=int, default=200)
    parser.add_argument("--chunk-overlap", type=int, default=20)
    parser.add_argument("--rerank-model", default=None, help="slug of a rerank catalog entry")
    args = parser.parse_args()
    corpus, queries, qrels = load_dataset(Path(args.dataset), args.limit_docs)
    print(f"dataset {args.dataset}: {len(corpus)} documents, {len(qrels)} judged test queries")
    redis = setup_django()
    try:
        base = ingest(corpus, args.chunk_size, args.chunk_overlap)
        scores = evaluate(base, queries, qrels, args.rerank_model)
        print(f"hybrid ndcg@10 = {scores['hybrid']:.4f}")
    finally:
        from django.db import connections

        connections.close_all()
        from studio import launch

        launch.stop(redis)
        if not os.environ.get("STUDIO_KEEP_PG"):
            embedded.postgres_stop()


if __name__ == "__main__":
    main()
