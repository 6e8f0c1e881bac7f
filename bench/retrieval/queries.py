"""Part 2's timed searches: each query kind called as the studio calls it, its plan, its latency
after a warm-up, and the recall of the approximate answers against the exact ones."""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.figures import megabytes, percentile
from bench.retrieval.corpus import (
    DIMENSIONS,
    DOCUMENTS,
    LOAD_STREAMS,
    SEED,
    Corpus,
    build_corpus,
    kept_corpus,
    unit_vectors,
)
from bench.retrieval.dataset import Dataset
from bench.retrieval.stack import cleanup

LIMIT = 10
CANDIDATES = 100
WARMUP = 20

# Session settings, applied with SET LOCAL around a search call. EXACT: no index scan, so the
# dense search reads and sorts every candidate row. HNSW_ONLY: neither a sequential nor a
# bitmap scan, so a filtered dense search walks the HNSW index with iterative scans.
EXACT = ("enable_indexscan = off",)
HNSW_ONLY = ("enable_seqscan = off", "enable_bitmapscan = off")

# A query kind: the ``i``-th query's search call, ready to run.
Make = Callable[[int], Callable[[], list]]


def hnsw_settings() -> dict[str, str]:
    """The index's build parameters as PostgreSQL holds them, and the scan settings every dense
    query runs under (applied by the studio's own ``_scan_settings``, then read back)."""
    from django.db import connection, transaction

    from knowledge import search
    from knowledge.vector_index import index_name

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [index_name(384)])
        row = cursor.fetchone()
        definition = row[0] if row else ""
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        found = {"pgvector": cursor.fetchone()[0]}
        for name in ("m", "ef_construction"):
            match = re.search(rf"\b{name}\s*=\s*'?(\d+)", definition)
            found[name] = match.group(1) if match else "?"
        search._scan_settings(cursor)
        for name in ("hnsw.ef_search", "hnsw.iterative_scan", "hnsw.max_scan_tuples"):
            cursor.execute(f"SHOW {name}")
            found[name.removeprefix("hnsw.")] = cursor.fetchone()[0]
    return found


def scans(call: Callable[[], Any]) -> str:
    """The scan nodes PostgreSQL plans for the search query that ``call`` runs: EXPLAIN of the
    same SQL with the same parameters, in the same transaction (so with its SET LOCALs)."""
    import psycopg
    from django.db import connection

    plans: list[Any] = []

    def explain(execute, sql, params, many, context):
        if sql.lstrip().startswith("WITH"):
            with psycopg.ClientCursor(context["connection"].connection) as cursor:
                cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
                plans.append(cursor.fetchone()[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        call()
    found: list[str] = []

    def walk(node: dict) -> None:
        kind = node["Node Type"]
        if kind.endswith("Scan") and kind != "CTE Scan":
            index = node.get("Index Name")
            found.append(f"{kind} ({index})" if index else kind)
        for child in node.get("Plans", []):
            walk(child)

    plan = plans[-1]
    walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    return ", ".join(dict.fromkeys(found))


def under(settings: tuple[str, ...], call: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` inside a transaction that first applies ``settings``."""
    from django.db import connection, transaction

    def run() -> Any:
        with transaction.atomic():
            with connection.cursor() as cursor:
                for setting in settings:
                    cursor.execute(f"SET LOCAL {setting}")
            return call()

    return run


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    """Milliseconds of each call, after WARMUP untimed calls (the first ones, repeated)."""
    for call in calls[:WARMUP]:
        call()
    times = []
    for call in calls:
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


@dataclass
class QueryFigures:
    corpus: Corpus
    latency: dict[str, list[float]] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    recall_queries: int = 0
    plans: dict[str, str] = field(default_factory=dict)

    def p(self, kind: str, q: float) -> float:
        return percentile(self.latency[kind], q)


def query_kinds(corpus: Corpus, dataset: Dataset, args: argparse.Namespace) -> dict[str, Make]:
    """Each query kind by name, over ``args.queries`` seeded queries: dense and hybrid take
    vectors drawn like the chunks', keyword and hybrid take SciFact claims as text, and the
    filtered ones keep to one shard (1% of the chunks)."""
    from knowledge import search

    base_id, queries = corpus.base_id, args.queries
    rng = np.random.default_rng(SEED + 1)
    vectors = unit_vectors(rng, queries, args.vectors).tolist()
    text_rng = random.Random(SEED + 1)
    texts = [text_rng.choice(dataset.queries) for _ in range(queries)]
    shards = [int(s) for s in rng.integers(0, DOCUMENTS, queries)]

    def dense(i: int, filtered: bool = False) -> Callable[[], list]:
        filters = {"shard": shards[i]} if filtered else None
        return lambda: search.dense(
            knowledge_base_id=base_id,
            dimensions=DIMENSIONS,
            vector=vectors[i],
            limit=LIMIT,
            filters=filters,
        )

    def keyword(i: int) -> Callable[[], list]:
        return lambda: search.keyword(knowledge_base_id=base_id, query=texts[i], limit=LIMIT)

    def hybrid(i: int) -> Callable[[], list]:
        return lambda: search.hybrid(
            knowledge_base_id=base_id,
            dimensions=DIMENSIONS,
            vector=vectors[i],
            query=texts[i],
            limit=LIMIT,
            candidates=CANDIDATES,
        )

    def filtered(i: int) -> Callable[[], list]:
        return dense(i, filtered=True)

    def filtered_hnsw(i: int) -> Callable[[], list]:
        return under(HNSW_ONLY, dense(i, filtered=True))

    return {
        "dense": dense,
        "keyword": keyword,
        "hybrid": hybrid,
        "filtered": filtered,
        "filtered-hnsw": filtered_hnsw,
    }


def query_plans(kinds: dict[str, Make], recall_queries: int) -> dict[str, str]:
    """The scans of each kind of dense query, printed.

    The planner picks a filtered query's plan from its estimate of the filter's rows, which
    varies with the value and with ANALYZE's sample: count the plans over the recall queries."""
    dense, filtered = kinds["dense"], kinds["filtered"]
    filtered_plans = Counter(scans(filtered(i)) for i in range(recall_queries))
    plans = {
        "dense": scans(dense(0)),
        "exact": scans(under(EXACT, dense(0))),
        "filtered": ", ".join(f"{plan} ×{n}" for plan, n in filtered_plans.most_common()),
        "filtered-hnsw": scans(kinds["filtered-hnsw"](0)),
    }
    for kind, plan in plans.items():
        print(f"   plan {kind:<14} {plan}")
    return plans


def recall(make: Make, exact_make: Make, queries: int) -> float:
    """Mean recall@LIMIT of ``make``'s answers against ``exact_make``'s without index scans."""
    found = []
    for i in range(queries):
        approximate = {h.chunk_id for h in make(i)()}
        exact = {h.chunk_id for h in under(EXACT, exact_make(i))()}
        found.append(len(approximate & exact) / max(len(exact), 1))
    return sum(found) / len(found) if found else float("nan")


def warm_keyword_index(base_id: int) -> None:
    """Build the base's in-memory keyword index before the clock starts, as the worker's
    background builder does after a base's first search (which is scored in SQL meanwhile)."""
    from knowledge import keyword_index

    started = time.perf_counter()
    index = keyword_index.build_snapshot(base_id)
    keyword_index.indexes.put(index)
    print(
        f"   keyword index: {len(index.ids):,} chunks, {len(index.vocabulary):,} terms, "
        f"{megabytes(index.nbytes)}, built in {time.perf_counter() - started:.1f} s"
    )


def measure_queries(corpus: Corpus, dataset: Dataset, args: argparse.Namespace) -> QueryFigures:
    kinds = query_kinds(corpus, dataset, args)
    queries = args.queries
    figures = QueryFigures(corpus=corpus)
    figures.plans = query_plans(kinds, min(args.recall_queries, queries))
    warm_keyword_index(corpus.base_id)
    for kind, make in kinds.items():
        figures.latency[kind] = timed([make(i) for i in range(queries)])
        print(
            f"   {kind:<14} p50 {figures.p(kind, 50):7.1f} ms  p95 {figures.p(kind, 95):7.1f} ms"
            f"  ({queries} queries)"
        )
    figures.recall_queries = min(args.recall_queries, queries)
    # The HNSW-only filtered answers are compared with the exact filtered ones.
    for kind, exact_kind in (
        ("dense", "dense"),
        ("filtered", "filtered"),
        ("filtered-hnsw", "filtered"),
    ):
        figures.recall[kind] = recall(kinds[kind], kinds[exact_kind], figures.recall_queries)
    print(
        f"   recall@10 against exact over {figures.recall_queries} queries: "
        + ", ".join(f"{kind} {value:.3f}" for kind, value in figures.recall.items())
    )
    return figures


def measure_size(size: int, dataset: Dataset, args: argparse.Namespace) -> QueryFigures:
    corpus = kept_corpus(size, args.vectors) if args.reuse else None
    if corpus is None:
        cleanup()
        corpus = build_corpus(size, dataset, args.vectors)
    print(
        f"\n   {size:,} chunks ({DOCUMENTS} documents, {corpus.average_terms:.0f} distinct terms "
        f"per chunk): prepared in Python {corpus.prepare_s:.1f} s; COPY over {LOAD_STREAMS} "
        f"connections with the HNSW index maintained {corpus.load_s:.1f} s = "
        f"{corpus.load_rate:,.0f} chunks/s; stats_add "
        f"{corpus.stats_s:.1f} s; VACUUM ANALYZE {corpus.vacuum_s:.1f} s"
    )
    print(
        f"   sizes: knowledge_chunk with its indexes {megabytes(corpus.table_bytes)}, "
        f"HNSW index {megabytes(corpus.index_bytes)}"
    )
    figures = measure_queries(corpus, dataset, args)
    if not args.reuse:
        cleanup()
    return figures
