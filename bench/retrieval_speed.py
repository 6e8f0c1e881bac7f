"""The retrieval speed benchmark: how fast the studio ingests documents and answers queries.

1. Ingest throughput on the CPU with the bundled all-MiniLM-L6-v2. ``--docs`` SciFact abstracts
   (title, a blank line, the abstract) go into a fresh knowledge base of a fresh workspace through
   the studio's own path, in this process: ``document_add_text`` then ``document_ingest`` with
   ``workers.resident.runtime().embed`` (the resident engine, loaded once before the clock
   starts). The embed function is wrapped to time it, which splits the time into embedding and
   the rest (storing the file, parsing, chunking, BM25 weights, SQL). A second pass ingests the
   same texts into another base of the same workspace: every chunk then hits the workspace's
   embedding cache, so it measures ingestion without embedding.
2. Query latency at each of ``--sizes`` chunks. The corpus is synthetic but shaped like real
   chunks and built fast: one knowledge base, 100 documents (document ``k`` has the metadata
   ``{"shard": k}``, so one shard is 1% of the chunks), and chunks of about 150 words of SciFact
   sentences sampled at random, with their real BM25 data from ``knowledge.keywords.chunk_terms``
   and seeded random unit vectors of 384 dimensions. The chunks are loaded with ``COPY`` in
   batches of 5,000, split over two connections as two ingestion workers would write, while the
   HNSW index is maintained on insert (that load is timed); ``knowledge.services.stats.stats_add``
   then counts them into the BM25 statistics, and ``VACUUM ANALYZE`` follows. Each query kind is
   called as the studio calls it (``knowledge.search.dense``, ``keyword``, ``hybrid``; limit 10,
   hybrid with 100 candidates) and timed with ``time.perf_counter`` around the call, after a
   warm-up: dense and hybrid take vectors drawn like the chunks', keyword and hybrid take
   SciFact claims as text. A filtered dense query (one shard: 1% of the chunks) runs twice: as
   the planner chooses (``filtered``) and held to the HNSW index with sequential and bitmap scans
   off (``filtered-hnsw``), which shows pgvector's iterative scans at work. The plan of each kind
   of dense query is printed: a small corpus is scanned rather than searched through the index,
   and a 1% filter goes through the metadata GIN index on 10,000 chunks but through the HNSW
   index on 100,000. Recall@10 compares each answer with the exact one (the same call inside a
   transaction with ``SET LOCAL enable_indexscan = off``). Random vectors have no cluster
   structure, the hardest case for HNSW: recall on real embeddings is much higher, and
   ``--vectors structured`` (a 32-dimensional latent structure) shows about how much.

Each size starts from an empty chunk table (``TRUNCATE``): the HNSW index is shared by every
knowledge base, so a size means what the index holds. That is why this script always runs its own
embedded PostgreSQL and Redis under ``var/bench-retrieval-speed/`` (whatever ``DATABASE_URL`` and
``REDIS_URL`` say), stopped at the end. Redis only receives the ingestion tasks that
``document_add_text`` queues on commit; no worker runs, the ingestion happens here.

The dataset is read from ``BEIR_DATASET_DIR`` (the SciFact folder, or a folder holding
``scifact/``), else ``../shared/datasets/scifact``. Run it from the repository root::

    .venv/bin/python bench/retrieval_speed.py [--docs 200] [--sizes 10000,100000] [--queries 200]

The defaults take about 16 minutes on 2 cores, 9 of them loading the 100,000 chunks; a quick
check: ``--docs 20 --sizes 2000``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "var" / "bench-retrieval-speed"

# Before anything from studio reads them: the bench's data never mixes with var/pg or var/redis,
# and the debug cursor (which records every query) stays off.
os.environ["STUDIO_VAR_DIR"] = str(BENCH_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "studio.settings"
os.environ["STUDIO_DEBUG"] = "0"
os.environ.setdefault("STUDIO_LOG_LEVEL", "WARNING")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights"
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from studio import embedded, launch  # noqa: E402

WORKSPACE_PREFIX = "speed-"
DIMENSIONS = 384
DOCUMENTS = 100  # per synthetic corpus; one document's chunks are 1% of them
COPY_BATCH = 5_000
# Connections loading at once: a batch is split between them.
LOAD_STREAMS = 2
LATENT = 32  # intrinsic dimension of --vectors structured
CHUNK_WORDS = 150  # about the default chunk size of 200 tokens
LIMIT = 10
CANDIDATES = 100
WARMUP = 20
# Column titles of the summary where a query kind's name is not one.
LABELS = {"filtered": "filter 1%", "filtered-hnsw": "1% via HNSW"}
SEED = 20_240_601
CHUNK_COLUMNS = (
    "knowledge_base_id",
    "document_id",
    "generation",
    "position",
    "text",
    "content_hash",
    "section",
    "metadata",
    "enabled",
    "searchable",
    "edited",
    "dimensions",
    "embedding",
    "terms",
    "bm25",
    "length",
)


# --- The stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    """What this script started, so that it stops exactly that."""

    redis: subprocess.Popen | None = None
    postgres: bool = False

    def start(self) -> None:
        """The embedded Redis and PostgreSQL under BENCH_DIR, then the migrations and Django."""
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        self.redis = embedded.redis_start()
        os.environ["REDIS_URL"] = embedded.embedded_redis_url()
        os.environ["DATABASE_URL"] = embedded.postgres_url()
        self.postgres = True
        result = subprocess.run(
            [launch.PYTHON, "manage.py", "migrate", "--no-input"],
            cwd=REPO,
            env=os.environ,
            capture_output=True,
            text=True,
        )
        if result.returncode:
            sys.stderr.write(result.stdout + result.stderr)
            raise SystemExit("manage.py migrate failed")
        import django

        django.setup()

    def stop(self) -> None:
        launch.stop(self.redis)
        if self.postgres:
            from django.conf import settings
            from django.db import connections

            if settings.configured:
                connections.close_all()
            embedded.postgres_stop()


def cleanup() -> None:
    """Remove every chunk, the bench's workspaces and the queued ingestion tasks (left by this
    run or an interrupted one). Only ever run on the bench's own database and Redis.

    TRUNCATE rather than DELETE: it also empties the HNSW index at once, where deleted tuples
    would stay in the graph until a long VACUUM. No worker ever runs the tasks that
    ``document_add_text`` queues (the ingestion runs in this process), so they are dropped.
    """
    import redis
    from django.db import connection

    from knowledge.models import KnowledgeBase
    from knowledge.services.bases import kb_delete
    from studio.models import Workspace

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE knowledge_chunk")
    for base in KnowledgeBase.objects.filter(workspace__slug__startswith=WORKSPACE_PREFIX):
        kb_delete(knowledge_base=base)  # removes the stored files too
    Workspace.objects.filter(slug__startswith=WORKSPACE_PREFIX).delete()
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


# --- The dataset ----------------------------------------------------------------------------


def dataset_dir() -> Path:
    given = os.environ.get("BEIR_DATASET_DIR")
    root = Path(given) if given else REPO.parent / "shared" / "datasets" / "scifact"
    if not (root / "corpus.jsonl").exists() and (root / "scifact" / "corpus.jsonl").exists():
        root = root / "scifact"
    if not (root / "corpus.jsonl").exists() or not (root / "queries.jsonl").exists():
        raise SystemExit(f"no SciFact corpus.jsonl and queries.jsonl in {root}")
    return root


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


@dataclass
class Dataset:
    documents: list[tuple[str, str]]  # (id, title + blank line + abstract)
    sentences: list[str]
    queries: list[str]


def load_dataset() -> Dataset:
    root = dataset_dir()
    documents, sentences = [], []
    for row in read_jsonl(root / "corpus.jsonl"):
        title, text = row.get("title", "").strip(), row.get("text", "").strip()
        documents.append((str(row["_id"]), f"{title}\n\n{text}"))
        sentences += [s for s in re.split(r"(?<=[.!?])\s+", f"{title}. {text}") if len(s) > 3]
    queries = [row["text"] for row in read_jsonl(root / "queries.jsonl") if row.get("text")]
    return Dataset(documents=documents, sentences=sentences, queries=queries)


# --- Figures --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated linearly between closest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"


# --- 1. Ingestion ---------------------------------------------------------------------------


class TimedEmbed:
    """``workers.resident.runtime().embed`` with a stopwatch: the time and texts spent embedding."""

    def __init__(self) -> None:
        from workers.resident import runtime

        self._embed = runtime().embed
        self.seconds = 0.0
        self.calls = 0
        self.texts = 0

    def __call__(self, model, texts: list[str]) -> list[list[float]]:
        started = time.perf_counter()
        try:
            return self._embed(model, texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1
            self.texts += len(texts)


@dataclass
class IngestPass:
    label: str
    documents: int
    chunks: int
    seconds: float
    add_seconds: float  # inside document_add_text
    embed: TimedEmbed
    reused: int

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds

    @property
    def embed_share(self) -> float:
        return self.embed.seconds / self.seconds


def ingest_pass(label: str, base, documents: list[tuple[str, str]]) -> IngestPass:
    """Add and ingest ``documents`` one after the other, as a worker would; raises if one fails."""
    from django.db.models import Sum

    from knowledge.models import Document, DocumentStatus
    from knowledge.services.documents import document_add_text
    from knowledge.services.ingestion import document_ingest

    embed = TimedEmbed()
    add_seconds = 0.0
    started = time.perf_counter()
    for doc_id, text in documents:
        added = time.perf_counter()
        document, _ = document_add_text(knowledge_base=base, name=f"scifact-{doc_id}", text=text)
        add_seconds += time.perf_counter() - added
        document_ingest(document_id=document.id, embed=embed)
    seconds = time.perf_counter() - started
    failed = Document.objects.filter(knowledge_base=base).exclude(status=DocumentStatus.READY)
    if failed.exists():
        first = failed.first()
        raise RuntimeError(f"{failed.count()} documents failed; {first.name}: {first.error}")
    totals = Document.objects.filter(knowledge_base=base).aggregate(
        chunks=Sum("chunk_count"), reused=Sum("reused_count")
    )
    return IngestPass(
        label=label,
        documents=len(documents),
        chunks=totals["chunks"] or 0,
        seconds=seconds,
        add_seconds=add_seconds,
        embed=embed,
        reused=totals["reused"] or 0,
    )


def measure_ingestion(dataset: Dataset, count: int) -> list[IngestPass]:
    import torch

    from catalog.services.models import embedding_model_default
    from knowledge.services.bases import BaseSettings, kb_create
    from studio.services import workspace_create
    from workers.resident import runtime

    documents = dataset.documents[:count]
    workspace = workspace_create(slug=f"{WORKSPACE_PREFIX}ingest", name="Retrieval speed")
    model = embedding_model_default()
    started = time.perf_counter()
    runtime().embed(model, ["The engine loads before the clock starts."])
    load_s = time.perf_counter() - started
    settings = BaseSettings(name="SciFact")
    print(
        f"\n1. ingestion: {len(documents)} SciFact abstracts, {model.name}, "
        f"{torch.get_num_threads()} torch threads on {os.cpu_count()} CPUs "
        f"(engine loaded in {load_s:.1f} s, not counted)"
    )
    print(
        f"   chunking: {settings.splitter} splitter, {settings.chunk_size} tokens, "
        f"overlap {settings.chunk_overlap}"
    )
    passes = []
    for label, slug in (("cold cache", "scifact"), ("warm cache", "scifact-again")):
        base = kb_create(workspace=workspace, slug=slug, values=BaseSettings(name=slug))
        result = ingest_pass(label, base, documents)
        passes.append(result)
        rest = result.seconds - result.embed.seconds
        print(
            f"   {label}: {result.chunks} chunks in {result.seconds:.1f} s = "
            f"{result.chunks_per_s:.1f} chunks/s; embedding {result.embed.seconds:.1f} s "
            f"({result.embed_share:.0%}, {result.embed.texts} texts in {result.embed.calls} "
            f"calls), the rest {rest:.1f} s ({1 - result.embed_share:.0%}, of which "
            f"document_add_text {result.add_seconds:.1f} s); {result.reused} chunks reused "
            "from the embedding cache"
        )
    return passes


# --- 2. Queries: the synthetic corpus -------------------------------------------------------


@dataclass
class Corpus:
    size: int
    base_id: int
    prepare_s: float
    load_s: float
    stats_s: float
    vacuum_s: float
    average_terms: float
    table_bytes: int
    index_bytes: int

    @property
    def load_rate(self) -> float:
        return self.size / self.load_s


class Loader:
    """``COPY`` into ``knowledge_chunk`` over several connections at once, as concurrent ingestion
    workers would write (pgvector's HNSW inserts take page locks, not a table lock).

    Each connection is its own autocommitted session: a batch is visible once its COPY ends.
    """

    def __init__(self, streams: int) -> None:
        self.streams = streams
        self.wrappers: list[Any] = []
        self.pool = ThreadPoolExecutor(streams, thread_name_prefix="copy")

    def __enter__(self) -> Loader:
        from django.db import DEFAULT_DB_ALIAS, connections

        for _ in range(self.streams):
            wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
            wrapper.ensure_connection()
            self.wrappers.append(wrapper)
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown()
        for wrapper in self.wrappers:
            wrapper.close()

    def submit(self, rows: list[tuple]) -> list[Future]:
        """One future per connection, each copying its share of ``rows``; each gives its count."""
        n = self.streams
        return [
            self.pool.submit(self._copy, wrapper.connection, rows[k::n])
            for k, wrapper in enumerate(self.wrappers)
        ]

    @staticmethod
    def _copy(raw, rows: list[tuple]) -> int:
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY knowledge_chunk ({', '.join(CHUNK_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return len(rows)


def progress(line: str) -> None:
    """A line that the next one overwrites (on a terminal)."""
    print(f"{line:<70}", end="\r", flush=True)


def chunk_text(rng: random.Random, sentences: list[str]) -> str:
    words, picked = 0, []
    while words < CHUNK_WORDS:
        sentence = rng.choice(sentences)
        picked.append(sentence)
        words += sentence.count(" ") + 1
    return " ".join(picked)


def unit_vectors(rng: np.random.Generator, count: int, kind: str = "random") -> np.ndarray:
    """``count`` unit vectors. ``random``: uniform on the sphere, with no structure (the hardest
    case for HNSW: true neighbours are barely nearer than any other vector). ``structured``: a
    LATENT-dimensional Gaussian mapped into DIMENSIONS by one fixed matrix, plus noise: a
    stand-in for real embeddings, whose intrinsic dimension is low."""
    if kind == "random":
        vectors = rng.standard_normal((count, DIMENSIONS)).astype(np.float32)
    else:
        mixing = np.random.default_rng(SEED).standard_normal((LATENT, DIMENSIONS))
        vectors = rng.standard_normal((count, LATENT)) @ mixing
        vectors = (vectors + 0.3 * rng.standard_normal((count, DIMENSIONS))).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build_corpus(size: int, dataset: Dataset, vectors: str) -> Corpus:
    """A knowledge base of ``size`` searchable chunks, loaded by COPY with the HNSW index
    maintained, its BM25 statistics counted, then vacuumed and analysed."""
    from django.db import connection, transaction
    from django.utils import timezone

    from knowledge.keywords import chunk_terms
    from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
    from knowledge.services.bases import BaseSettings, kb_create
    from knowledge.services.stats import stats_add
    from studio.services import workspace_create

    workspace = workspace_create(slug=f"{WORKSPACE_PREFIX}{size}", name=f"Speed {size}")
    base = kb_create(workspace=workspace, slug="synthetic", values=BaseSettings(name="Synthetic"))
    KnowledgeBase.objects.filter(id=base.id).update(dimensions=DIMENSIONS)
    per_document = -(-size // DOCUMENTS)
    documents = Document.objects.bulk_create(
        Document(
            knowledge_base=base,
            name=f"synthetic-{k:03d}.txt",
            source="text",
            status=DocumentStatus.READY,
            generation=1,
            searchable=True,
            chunk_count=per_document,
            metadata={"shard": k},
            ingested_at=timezone.now(),
        )
        for k in range(DOCUMENTS)
    )
    text_rng = random.Random(SEED + size)
    vector_rng = np.random.default_rng(SEED + size)
    # BM25's document-side weights need the corpus's average length: estimated on a sample, as
    # an ingestion uses the base's average at the time.
    sample_rng = random.Random(SEED - size)
    sample = [
        chunk_terms(chunk_text(sample_rng, dataset.sentences), 1.0).length for _ in range(500)
    ]
    average = sum(sample) / len(sample)
    vector_format = "[" + ",".join(["%.7g"] * DIMENSIONS) + "]"
    prepare_s = 0.0
    term_count = 0

    def rows_from(start: int) -> list[tuple]:
        nonlocal term_count
        rows = []
        drawn = unit_vectors(vector_rng, min(COPY_BATCH, size - start), vectors)
        for offset, vector in enumerate(drawn.tolist()):
            i = start + offset
            text = chunk_text(text_rng, dataset.sentences)
            terms = chunk_terms(text, average)
            term_count += len(terms.terms)
            document = documents[i % DOCUMENTS]
            rows.append(
                (
                    base.id,
                    document.id,
                    1,
                    i // DOCUMENTS,
                    text,
                    hashlib.sha256(text.encode()).hexdigest(),
                    "",
                    json.dumps(document.metadata),
                    True,
                    True,
                    False,
                    DIMENSIONS,
                    vector_format % tuple(vector),
                    "{" + ",".join(map(str, terms.terms)) + "}",
                    terms.weights.to_text() if terms.weights is not None else None,
                    terms.length,
                )
            )
        return rows

    # The next batch is prepared while the previous one loads, so the load's wall time is the
    # database's (on a small machine the two still share its cores).
    loaded = 0
    load_started: float | None = None
    pending: list[Future] = []
    with Loader(LOAD_STREAMS) as loader:
        for start in range(0, size, COPY_BATCH):
            started = time.perf_counter()
            rows = rows_from(start)
            prepare_s += time.perf_counter() - started
            for future in pending:
                loaded += future.result()
            load_started = load_started or time.perf_counter()
            pending = loader.submit(rows)
            progress(f"   loading: {loaded:,} of {size:,} chunks")
        for future in pending:
            loaded += future.result()
    load_s = time.perf_counter() - (load_started or time.perf_counter())
    progress("")
    started = time.perf_counter()
    with transaction.atomic():
        locked = KnowledgeBase.objects.select_for_update().get(id=base.id)
        stats_add(locked, Chunk.objects.filter(knowledge_base=locked, searchable=True))
    stats_s = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE knowledge_chunk, knowledge_term")
    vacuum_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size('knowledge_chunk'), "
            "pg_relation_size('chunk_embedding_384')"
        )
        table_bytes, index_bytes = cursor.fetchone()
    return Corpus(
        size=size,
        base_id=base.id,
        prepare_s=prepare_s,
        load_s=load_s,
        stats_s=stats_s,
        vacuum_s=vacuum_s,
        average_terms=term_count / size,
        table_bytes=table_bytes,
        index_bytes=index_bytes,
    )


# --- 2. Queries: settings, plans, latency, recall -------------------------------------------


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


# Session settings, applied with SET LOCAL around a search call. EXACT: no index scan, so the
# dense search reads and sorts every candidate row. HNSW_ONLY: neither a sequential nor a
# bitmap scan, so a filtered dense search walks the HNSW index with iterative scans.
EXACT = ("enable_indexscan = off",)
HNSW_ONLY = ("enable_seqscan = off", "enable_bitmapscan = off")


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


def measure_queries(corpus: Corpus, dataset: Dataset, args: argparse.Namespace) -> QueryFigures:
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

    figures = QueryFigures(corpus=corpus)
    # The planner picks a filtered query's plan from its estimate of the filter's rows, which
    # varies with the value and with ANALYZE's sample: count the plans over the recall queries.
    filtered_plans = Counter(scans(filtered(i)) for i in range(min(args.recall_queries, queries)))
    figures.plans = {
        "dense": scans(dense(0)),
        "exact": scans(under(EXACT, dense(0))),
        "filtered": ", ".join(f"{plan} ×{n}" for plan, n in filtered_plans.most_common()),
        "filtered-hnsw": scans(filtered_hnsw(0)),
    }
    for kind, plan in figures.plans.items():
        print(f"   plan {kind:<14} {plan}")
    kinds: dict[str, Callable[[int], Callable[[], list]]] = {
        "dense": dense,
        "keyword": keyword,
        "hybrid": hybrid,
        "filtered": filtered,
        "filtered-hnsw": filtered_hnsw,
    }
    for kind, make in kinds.items():
        figures.latency[kind] = timed([make(i) for i in range(queries)])
        print(
            f"   {kind:<14} p50 {figures.p(kind, 50):7.1f} ms  p95 {figures.p(kind, 95):7.1f} ms"
            f"  ({queries} queries)"
        )
    figures.recall_queries = min(args.recall_queries, queries)
    for kind, make, exact_make in (
        ("dense", dense, dense),
        ("filtered", filtered, filtered),
        ("filtered-hnsw", filtered_hnsw, filtered),
    ):
        found = []
        for i in range(figures.recall_queries):
            approximate = {h.chunk_id for h in make(i)()}
            exact = {h.chunk_id for h in under(EXACT, exact_make(i))()}
            found.append(len(approximate & exact) / max(len(exact), 1))
        figures.recall[kind] = sum(found) / len(found) if found else float("nan")
    print(
        f"   recall@10 against exact over {figures.recall_queries} queries: "
        + ", ".join(f"{kind} {value:.3f}" for kind, value in figures.recall.items())
    )
    return figures


def measure_size(size: int, dataset: Dataset, args: argparse.Namespace) -> QueryFigures:
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
    cleanup()
    return figures


# --- Report ---------------------------------------------------------------------------------


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


# --- Main -----------------------------------------------------------------------------------


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
        cleanup()
        if args.docs:
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
