"""Part 2's synthetic corpus: a knowledge base of chunks shaped like real ones, loaded by COPY
over several connections with the HNSW index maintained, as concurrent ingestion would write."""

from __future__ import annotations

import hashlib
import json
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.retrieval.dataset import Dataset
from bench.retrieval.stack import WORKSPACE_PREFIX

DIMENSIONS = 384
DOCUMENTS = 100  # per synthetic corpus; one document's chunks are 1% of them
COPY_BATCH = 5_000
# Connections loading at once: a batch is split between them.
LOAD_STREAMS = 2
LATENT = 32  # intrinsic dimension of --vectors structured
CHUNK_WORDS = 150  # about the default chunk size of 200 tokens
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


def kept_corpus(size: int, vectors: str) -> Corpus | None:
    """The corpus of ``size`` chunks that an earlier ``--reuse`` run left, if the database holds
    exactly that one (its load figures are unknown: zero)."""
    from django.db import connection

    from knowledge.models import Chunk, KnowledgeBase

    base = KnowledgeBase.objects.filter(
        workspace__slug=f"{WORKSPACE_PREFIX}{size}", description=vectors, chunk_total=size
    ).first()
    if base is None or Chunk.objects.exclude(knowledge_base=base).exists():
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT avg(cardinality(terms)) FROM knowledge_chunk WHERE knowledge_base_id = %s",
            [base.id],
        )
        average_terms = float(cursor.fetchone()[0] or 0)
    table_bytes, index_bytes = _table_sizes()
    return Corpus(
        size, base.id, 0.0, float("nan"), 0.0, 0.0, average_terms, table_bytes, index_bytes
    )


def _synthetic_base(size: int, vectors: str) -> tuple[Any, list[Any]]:
    """A fresh workspace's knowledge base of DIMENSIONS and its DOCUMENTS ready documents
    (document ``k`` has the metadata ``{"shard": k}``)."""
    from django.utils import timezone

    from knowledge.models import Document, DocumentStatus, KnowledgeBase
    from knowledge.services.bases import BaseSettings, kb_create
    from workspaces.services import workspace_create

    workspace = workspace_create(slug=f"{WORKSPACE_PREFIX}{size}", name=f"Speed {size}")
    base = kb_create(workspace=workspace, slug="synthetic", values=BaseSettings(name="Synthetic"))
    # The description names the kind of vectors, so that ``kept_corpus`` reuses the right one.
    KnowledgeBase.objects.filter(id=base.id).update(dimensions=DIMENSIONS, description=vectors)
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
    return base, documents


def _average_length(size: int, dataset: Dataset) -> float:
    """BM25's document-side weights need the corpus's average length: estimated on a sample, as
    an ingestion uses the base's average at the time."""
    from knowledge.keywords import chunk_terms

    sample_rng = random.Random(SEED - size)
    sample = [
        chunk_terms(chunk_text(sample_rng, dataset.sentences), 1.0).length for _ in range(500)
    ]
    return sum(sample) / len(sample)


class _Rows:
    """The corpus's rows for COPY, a batch at a time, drawn from seeded generators (so a size
    always gives the same corpus); counts the distinct terms it stored."""

    def __init__(self, size: int, dataset: Dataset, vectors: str, base_id: int, documents: list):
        self.size = size
        self.sentences = dataset.sentences
        self.vectors = vectors
        self.base_id = base_id
        self.documents = documents
        self.text_rng = random.Random(SEED + size)
        self.vector_rng = np.random.default_rng(SEED + size)
        self.average = _average_length(size, dataset)
        self.vector_format = "[" + ",".join(["%.7g"] * DIMENSIONS) + "]"
        self.term_count = 0

    def batch(self, start: int) -> list[tuple]:
        drawn = unit_vectors(self.vector_rng, min(COPY_BATCH, self.size - start), self.vectors)
        return [self._row(start + offset, vector) for offset, vector in enumerate(drawn.tolist())]

    def _row(self, i: int, vector: list[float]) -> tuple:
        from knowledge.keywords import chunk_terms

        text = chunk_text(self.text_rng, self.sentences)
        terms = chunk_terms(text, self.average)
        self.term_count += len(terms.terms)
        document = self.documents[i % DOCUMENTS]
        return (
            self.base_id,
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
            self.vector_format % tuple(vector),
            "{" + ",".join(map(str, terms.terms)) + "}",
            terms.weights.to_text() if terms.weights is not None else None,
            terms.length,
        )


def _load(size: int, rows: _Rows) -> tuple[float, float]:
    """COPY every batch; (seconds preparing rows in Python, seconds of the load's wall time).

    The next batch is prepared while the previous one loads, so the load's wall time is the
    database's (on a small machine the two still share its cores)."""
    prepare_s = 0.0
    loaded = 0
    load_started: float | None = None
    pending: list[Future] = []
    with Loader(LOAD_STREAMS) as loader:
        for start in range(0, size, COPY_BATCH):
            started = time.perf_counter()
            batch = rows.batch(start)
            prepare_s += time.perf_counter() - started
            for future in pending:
                loaded += future.result()
            load_started = load_started or time.perf_counter()
            pending = loader.submit(batch)
            progress(f"   loading: {loaded:,} of {size:,} chunks")
        for future in pending:
            loaded += future.result()
    load_s = time.perf_counter() - (load_started or time.perf_counter())
    progress("")
    return prepare_s, load_s


def _count_stats(base_id: int) -> float:
    """Seconds to count the loaded chunks into the base's BM25 statistics."""
    from django.db import transaction

    from knowledge.models import Chunk, KnowledgeBase
    from knowledge.services.stats import stats_add

    started = time.perf_counter()
    with transaction.atomic():
        locked = KnowledgeBase.objects.select_for_update().get(id=base_id)
        stats_add(locked, Chunk.objects.filter(knowledge_base=locked, searchable=True))
    return time.perf_counter() - started


def _vacuum() -> float:
    """Seconds of ``VACUUM ANALYZE`` on the chunks and terms."""
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE knowledge_chunk, knowledge_term")
    return time.perf_counter() - started


def _table_sizes() -> tuple[int, int]:
    """Bytes of the chunk table with its indexes, and of its HNSW index alone."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size('knowledge_chunk'), "
            "pg_relation_size('chunk_embedding_384')"
        )
        table_bytes, index_bytes = cursor.fetchone()
    return table_bytes, index_bytes


def build_corpus(size: int, dataset: Dataset, vectors: str) -> Corpus:
    """A knowledge base of ``size`` searchable chunks, loaded by COPY with the HNSW index
    maintained, its BM25 statistics counted, then vacuumed and analysed."""
    base, documents = _synthetic_base(size, vectors)
    rows = _Rows(size, dataset, vectors, base.id, documents)
    prepare_s, load_s = _load(size, rows)
    stats_s = _count_stats(base.id)
    vacuum_s = _vacuum()
    table_bytes, index_bytes = _table_sizes()
    return Corpus(
        size=size,
        base_id=base.id,
        prepare_s=prepare_s,
        load_s=load_s,
        stats_s=stats_s,
        vacuum_s=vacuum_s,
        average_terms=rows.term_count / size,
        table_bytes=table_bytes,
        index_bytes=index_bytes,
    )
