"""The retrieval speed benchmark: how fast the studio ingests documents and answers queries.

1. Ingest throughput on the CPU with the bundled all-MiniLM-L6-v2. ``--docs`` SciFact abstracts
   (title, a blank line, the abstract) go into a fresh knowledge base of a fresh workspace through
   the studio's own path, in this process: ``document_add_text`` then ``document_ingest`` with
   ``workers.resident.runtime().embed`` (the resident engine, loaded once before the clock
   starts). The embed function is wrapped to time it, which splits the time into embedding and
   the rest (storing the file, parsing, chunking, BM25 weights, SQL). A second pass ingests the
   same texts into another base of the same workspace: every chunk then hits the workspace's
   embedding cache, so it measures ingestion without embedding.
2. Query latency at each of ``--sizes`` chunks. The corpus is synthetic but shaped like real chunks
   and built fast: one knowledge base, 100 documents (document ``k`` has the metadata ``{"shard":
   k}``, so one shard is 1% of the chunks), and chunks of about 150 words of SciFact sentences
   sampled at random, with their real BM25 data from ``knowledge.keywords.chunk_terms`` and seeded
   random unit vectors of 384 dimensions. The chunks are loaded with ``COPY`` in batches of 5,000,
   split over two connections as two ingestion workers would write, while the HNSW index is
   maintained on insert (that load is timed); ``knowledge.services.stats.stats_add`` then counts
   them into the BM25 statistics, and ``VACUUM ANALYZE`` follows. Each query kind is called as the
   studio calls it (``knowledge.search.dense``, ``keyword``, ``hybrid``; limit 10, hybrid with 100
   candidates) and timed with ``time.perf_counter`` around the call, after a warm-up: dense and
   hybrid take vectors drawn like the chunks', keyword and hybrid take SciFact claims as text; the
   base's in-memory keyword index (``knowledge/keyword_index.py``) is built before the clock starts,
   as the worker builds it after a base's first search, and its build time and size are printed. A
   filtered dense query (one shard: 1% of the chunks) runs twice: as the planner chooses
   (``filtered``) and held to the HNSW index with sequential and bitmap scans off
   (``filtered-hnsw``), which shows pgvector's iterative scans at work. The plan of each kind of
   dense query is printed: a small corpus is scanned rather than searched through the index, and a
   1% filter goes through the metadata GIN index on 10,000 chunks but through the HNSW index on
   100,000. Recall@10 compares each answer with the exact one (the same call inside a transaction
   with ``SET LOCAL enable_indexscan = off``). Random vectors have no cluster structure, the hardest
   case for HNSW: recall on real embeddings is much higher, and ``--vectors structured`` (a
   32-dimensional latent structure) shows about how much.

Its parts live in ``bench/retrieval/``: the stack, the dataset, ingestion, the synthetic corpus,
the timed queries and the report.

Each size starts from an empty chunk table (``TRUNCATE``): the HNSW index is shared by every
knowledge base, so a size means what the index holds. That is why this script always runs its own
embedded PostgreSQL and Redis under ``var/bench-retrieval-speed/`` (whatever ``DATABASE_URL`` and
``REDIS_URL`` say; ``BENCH_RETRIEVAL_DIR`` moves it), stopped at the end. With ``--reuse`` a
size's corpus stays in that database after the run, and the next ``--reuse`` run queries it
without loading it again. Redis only receives the ingestion tasks that
``document_add_text`` queues on commit; no worker runs, the ingestion happens here.

The dataset is read from ``BEIR_DATASET_DIR`` (the SciFact folder, or a folder holding
``scifact/``), else ``../shared/datasets/scifact``. Run it from the repository root::

    .venv/bin/python bench/retrieval_speed.py [--docs 200] [--sizes 10000,100000] [--queries 200]

The defaults take about 16 minutes on 2 cores, 9 of them loading the 100,000 chunks; a quick
check: ``--docs 20 --sizes 2000``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The package first: importing it points the studio at the bench's own var dir.
from bench.retrieval import BENCH_DIR  # noqa: E402
from bench.retrieval.corpus import DOCUMENTS  # noqa: E402
from bench.retrieval.dataset import load_dataset  # noqa: E402
from bench.retrieval.ingestion import IngestPass, measure_ingestion  # noqa: E402
from bench.retrieval.queries import QueryFigures, hnsw_settings, measure_size  # noqa: E402
from bench.retrieval.report import report  # noqa: E402
from bench.retrieval.stack import Stack, cleanup  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--docs", type=int, default=200, help="SciFact abstracts to ingest (0: skip ingestion)"
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(s) for s in text.split(",") if s.strip()],
        default=[10_000, 100_000],
        help="comma-separated corpus sizes in chunks (default 10000,100000; empty: skip queries)",
    )
    parser.add_argument("--queries", type=int, default=200, help="timed queries per kind")
    parser.add_argument(
        "--recall-queries", type=int, default=50, help="queries for recall@10 (at most --queries)"
    )
    parser.add_argument(
        "--vectors",
        choices=["random", "structured"],
        default="random",
        help="chunk and query vectors: random unit vectors (default; the worst case for HNSW "
        "recall) or structured ones, closer to real embeddings",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep each size's corpus in the bench's database after the run, and query the one "
        "an earlier --reuse run kept instead of loading it again (its load figures then show "
        "as nan)",
    )
    args = parser.parse_args()
    if args.docs < 0 or args.queries < 1 or args.recall_queries < 1:
        parser.error("--docs must be at least 0, --queries and --recall-queries at least 1")
    if any(size < DOCUMENTS for size in args.sizes):
        parser.error(f"each size is at least {DOCUMENTS} chunks (one per document)")
    return args


def main() -> None:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when the output is a file
    dataset = load_dataset()
    if args.docs > len(dataset.documents):
        raise SystemExit(f"--docs {args.docs}: the corpus holds {len(dataset.documents)}")
    stack = Stack()
    passes: list[IngestPass] = []
    sizes: list[QueryFigures] = []
    settings: dict[str, str] = {}
    try:
        stack.start()
        print(f"stack      {BENCH_DIR} (embedded PostgreSQL and Redis)")
        if args.docs:
            cleanup()
            passes = measure_ingestion(dataset, args.docs)
            cleanup()
        if args.sizes:
            settings = hnsw_settings()
            print(
                f"\n2. queries ({args.vectors} vectors): HNSW "
                + ", ".join(f"{name}={value}" for name, value in settings.items())
            )
            for size in args.sizes:
                sizes.append(measure_size(size, dataset, args))
    finally:
        stack.stop()
    report(passes, sizes, settings, args.vectors)


if __name__ == "__main__":
    main()
