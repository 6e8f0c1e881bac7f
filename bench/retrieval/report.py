"""The summary printed at the end: ingestion passes, then latency and recall per corpus size."""

from __future__ import annotations

from bench.retrieval.ingestion import IngestPass
from bench.retrieval.queries import CANDIDATES, LIMIT, QueryFigures

# Column titles of the summary where a query kind's name is not one.
LABELS = {"filtered": "filter 1%", "filtered-hnsw": "1% via HNSW"}


def report(
    passes: list[IngestPass], sizes: list[QueryFigures], settings: dict[str, str], vectors: str
) -> None:
    print("\nsummary")
    if passes:
        print(f"{'ingestion':<12}{'docs':>6}{'chunks':>8}{'s':>8}{'chunks/s':>10}{'embed':>7}")
        for p in passes:
            print(
                f"{p.label:<12}{p.documents:>6}{p.chunks:>8}{p.seconds:>8.1f}"
                f"{p.chunks_per_s:>10.1f}{p.embed_share:>7.0%}"
            )
    if sizes:
        print(
            f"queries on {vectors} vectors: limit {LIMIT}, hybrid {CANDIDATES} candidates; "
            f"HNSW m={settings['m']} "
            f"ef_construction={settings['ef_construction']} ef_search={settings['ef_search']} "
            f"iterative_scan={settings['iterative_scan']}; p50/p95 in ms"
        )
        latency = ("dense", "keyword", "hybrid", "filtered", "filtered-hnsw")
        recall = ("dense", "filtered", "filtered-hnsw")
        print(
            f"{'':>24}{'latency p50/p95 ms':^70}{'recall@10':^27}\n"
            f"{'chunks':>8}{'load s':>8}{'load/s':>8}"
            + "".join(f"{LABELS.get(kind, kind):>14}" for kind in latency)
            + "".join(f"{kind:>9}" for kind in ("dense", "filtered", "f-hnsw"))
        )
        for f in sizes:
            print(
                f"{f.corpus.size:>8,}{f.corpus.load_s:>8.1f}{f.corpus.load_rate:>8.0f}"
                + "".join(f"{f'{f.p(k, 50):.1f}/{f.p(k, 95):.1f}':>14}" for k in latency)
                + "".join(f"{f.recall[k]:>9.3f}" for k in recall)
            )
        for f in sizes:
            plans = "; ".join(f"{kind} {plan}" for kind, plan in f.plans.items())
            print(f"plans at {f.corpus.size:,}: {plans}")
