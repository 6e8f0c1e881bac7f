"""Each knowledge base's BM25 postings in the retrieval worker's memory, to score keyword search
without reading chunk rows.

SQL pays per chunk row it reads, and a query of common terms must read most rows of the base
(pruning cannot skip a chunk that may still enter the top). In memory the same scores take a few
milliseconds: per query term, a slice of chunk positions and their stored BM25 weights, added
into one float32 array in term id order, as pgvector's ``<#>`` sums the products of the chunk's
``sparsevec`` and the query's idfs (see ``KeywordIndex.top``). Scores and ranking (score, then
chunk id) are the SQL ones, to the bit.

An index is a snapshot of a base: its searchable and enabled chunks, their weights, the base's
document frequencies and chunk count, all read in one REPEATABLE READ transaction together with
the base's keyword generation (``knowledge_keyword_generation``, moved by triggers on every change
of a searchable chunk or of the statistics: migration 0003). A search reads the generation in its
own snapshot and uses the index only when it was loaded at that generation, so it sees the old
or the new state of the base, never a mix; otherwise it scores in SQL and asks for a fresh index.

Small bases are indexed inside the search's own transaction; larger ones by one background
thread, one base at a time, while searches go on in SQL. Indexes are kept least recently used
first out under a byte budget (``KNOWLEDGE_KEYWORD_INDEX_BYTES``); a base too large for the budget
is never indexed and always scored in SQL.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

# Bases of at most this many chunks are indexed inside the search that first needs them
# (``KNOWLEDGE_KEYWORD_INDEX_INLINE_CHUNKS``); a build of 5,000 chunks takes tens of milliseconds.
DEFAULT_INLINE_CHUNKS = 5_000
DEFAULT_BUDGET_BYTES = 512 * 1024 * 1024
# Chunks read per statement while building (bounds the rows held by the driver at once).
BUILD_BATCH = 10_000
# Bytes per posting: a chunk position (int32) and a weight (float32).
POSTING_BYTES = 8


def budget_bytes() -> int:
    return int(getattr(settings, "KNOWLEDGE_KEYWORD_INDEX_BYTES", DEFAULT_BUDGET_BYTES))


def inline_chunks() -> int:
    return int(getattr(settings, "KNOWLEDGE_KEYWORD_INDEX_INLINE_CHUNKS", DEFAULT_INLINE_CHUNKS))


@dataclass(frozen=True)
class KeywordIndex:
    """One base's postings at one generation, never changed once built."""

    knowledge_base_id: int
    generation: int
    chunk_total: int  # the base's BM25 statistics (not only the enabled chunks)
    ids: np.ndarray  # int64, the chunk ids, ascending; a chunk's position is its index here
    vocabulary: np.ndarray  # int64, term ids, ascending
    df: np.ndarray  # int64, document frequency of each vocabulary term (0: unknown to the base)
    starts: np.ndarray  # int64, len(vocabulary) + 1: term k's postings are starts[k]:starts[k+1]
    positions: np.ndarray  # int32, chunk positions of the postings, grouped by term
    weights: np.ndarray  # float32, the chunk's stored BM25 weight of the term

    @property
    def nbytes(self) -> int:
        arrays = (self.ids, self.vocabulary, self.df, self.starts, self.positions, self.weights)
        return sum(a.nbytes for a in arrays)

    def positions_of(self, chunk_ids: list[int]) -> np.ndarray:
        """The positions of those of ``chunk_ids`` the index holds."""
        wanted = np.asarray(chunk_ids, dtype=np.int64)
        if not len(self.ids) or not len(wanted):
            return np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        return at[self.ids[at] == wanted]

    def top(
        self, terms: list[int], counts: list[int], limit: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the ``limit`` best chunks holding a query term, best first,
        ties by chunk id; with ``allowed`` (chunk positions) only those chunks."""
        scores = np.zeros(len(self.ids), dtype=np.float32)
        held = np.zeros(len(self.ids), dtype=bool)
        # As pgvector sums them: term ids ascending, each product of two float32 added to the
        # float32 sum with one rounding (its build fuses the multiply and the add). A product of
        # two float32 is exact in float64, so the float64 sum rounded to float32 is the same.
        for term, count in sorted(zip(terms, counts, strict=True)):
            k = int(np.searchsorted(self.vocabulary, term))
            if k == len(self.vocabulary) or self.vocabulary[k] != term or self.df[k] <= 0:
                continue
            weight = float(np.float32(_idf(self.chunk_total, int(self.df[k])) * count))
            start, end = self.starts[k], self.starts[k + 1]
            chunks = self.positions[start:end]
            added = self.weights[start:end].astype(np.float64) * weight
            scores[chunks] = (scores[chunks].astype(np.float64) + added).astype(np.float32)
            held[chunks] = True
        if allowed is not None:
            mask = np.zeros(len(self.ids), dtype=bool)
            mask[allowed] = True
            held &= mask
        found = np.flatnonzero(held)
        found_scores = scores[found]
        if len(found) > limit:
            kth = np.partition(found_scores, len(found) - limit)[len(found) - limit]
            keep = found_scores >= kth
            found, found_scores = found[keep], found_scores[keep]
        order = np.lexsort((found, -found_scores))[:limit]
        return [
            (int(self.ids[p]), float(s))
            for p, s in zip(found[order], found_scores[order], strict=True)
        ]


def _idf(chunks: int, df: int) -> float:
    # As the SQL computes it (knowledge/search.py), and keywords.idf.
    return math.log(1 + (chunks - df + 0.5) / (df + 0.5))


def generation(cursor, knowledge_base_id: int) -> int:
    """The base's keyword generation in the cursor's snapshot (0 before its first change)."""
    cursor.execute(
        "SELECT generation FROM knowledge_keyword_generation WHERE knowledge_base_id = %s",
        [knowledge_base_id],
    )
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _parse_sparsevecs(rows: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Term ids, weights and non-zero counts of ``sparsevec_send`` outputs (big-endian: dim,
    nnz, unused, then nnz int32 indices and nnz float32 values)."""
    nnz = [int.from_bytes(r[4:8], "big") if r else 0 for r in rows]
    pairs = list(zip(rows, nnz, strict=True))
    terms = np.frombuffer(b"".join(r[12 : 12 + 4 * n] for r, n in pairs), dtype=">i4")
    weights = np.frombuffer(b"".join(r[12 + 4 * n : 12 + 8 * n] for r, n in pairs), dtype=">f4")
    return terms.astype(np.int64), weights.astype(np.float32), np.array(nnz, dtype=np.int64)


def build(cursor, knowledge_base_id: int) -> KeywordIndex:
    """The base's index as the cursor's snapshot sees it: call inside one REPEATABLE READ
    transaction (or a test's), so that every statement reads the same state."""
    gen = generation(cursor, knowledge_base_id)
    cursor.execute(
        "SELECT chunk_total FROM knowledge_knowledgebase WHERE id = %s", [knowledge_base_id]
    )
    row = cursor.fetchone()
    chunk_total = int(row[0]) if row else 0
    id_parts, term_parts, weight_parts, count_parts = [], [], [], []
    last = 0
    while True:
        cursor.execute(
            "SELECT id, sparsevec_send(bm25) FROM knowledge_chunk "
            "WHERE knowledge_base_id = %s AND searchable AND enabled AND id > %s "
            "AND bm25 IS NOT NULL ORDER BY id LIMIT %s",
            [knowledge_base_id, last, BUILD_BATCH],
        )
        rows = cursor.fetchall()
        if not rows:
            break
        terms, weights, counts = _parse_sparsevecs([bytes(r[1]) for r in rows])
        id_parts.append(np.array([r[0] for r in rows], dtype=np.int64))
        term_parts.append(terms)
        weight_parts.append(weights)
        count_parts.append(counts)
        last = rows[-1][0]
        if len(rows) < BUILD_BATCH:
            break
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
    terms = np.concatenate(term_parts) if term_parts else np.zeros(0, np.int64)
    weights = np.concatenate(weight_parts) if weight_parts else np.zeros(0, np.float32)
    counts = np.concatenate(count_parts) if count_parts else np.zeros(0, np.int64)
    chunk_of = np.repeat(np.arange(len(ids), dtype=np.int32), counts)
    order = np.argsort(terms, kind="stable")
    terms, weights, chunk_of = terms[order], weights[order], chunk_of[order]
    vocabulary, first = np.unique(terms, return_index=True)
    starts = np.append(first, len(terms)).astype(np.int64)
    cursor.execute(
        "SELECT term, df FROM knowledge_term WHERE knowledge_base_id = %s AND df > 0",
        [knowledge_base_id],
    )
    known = dict(cursor.fetchall())
    df = np.array([known.get(int(t), 0) for t in vocabulary], dtype=np.int64)
    return KeywordIndex(
        knowledge_base_id=knowledge_base_id,
        generation=gen,
        chunk_total=chunk_total,
        ids=ids,
        vocabulary=vocabulary,
        df=df,
        starts=starts,
        positions=chunk_of,
        weights=weights,
    )


class _Indexes:
    """The process's indexes by base, least recently used first, and the background builder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: OrderedDict[int, KeywordIndex] = OrderedDict()
        self._wanted: OrderedDict[int, None] = OrderedDict()  # bases waiting for a build
        self._builder: threading.Thread | None = None
        self._building = False

    def get(self, knowledge_base_id: int, gen: int) -> KeywordIndex | None:
        with self._lock:
            index = self._indexes.get(knowledge_base_id)
            if index is None or index.generation != gen:
                return None
            self._indexes.move_to_end(knowledge_base_id)
            return index

    def put(self, index: KeywordIndex) -> None:
        budget = budget_bytes()
        if index.nbytes > budget:
            return
        with self._lock:
            held = self._indexes.get(index.knowledge_base_id)
            if held is not None and held.generation > index.generation:
                return  # a newer one arrived first
            self._indexes[index.knowledge_base_id] = index
            self._indexes.move_to_end(index.knowledge_base_id)
            total = sum(i.nbytes for i in self._indexes.values())
            while total > budget and len(self._indexes) > 1:
                _, dropped = self._indexes.popitem(last=False)
                total -= dropped.nbytes

    def drop(self, knowledge_base_id: int | None = None) -> None:
        """Forget one base's index, or every one."""
        with self._lock:
            if knowledge_base_id is None:
                self._indexes.clear()
            else:
                self._indexes.pop(knowledge_base_id, None)

    def request(self, knowledge_base_id: int) -> None:
        """Build the base's index in the background (once, however often it is asked)."""
        with self._lock:
            self._wanted[knowledge_base_id] = None
            if self._building:
                return
            self._building = True
            self._builder = threading.Thread(
                target=self._build_wanted, name="keyword-index", daemon=True
            )
            self._builder.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the background builder has nothing left to build (benchmarks, tests)."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)

    def _build_wanted(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._wanted:
                        self._building = False
                        return
                    base_id, _ = self._wanted.popitem(last=False)
                try:
                    self.put(build_snapshot(base_id))
                except Exception:
                    logger.exception("keyword index of knowledge base %s", base_id)
        finally:
            connection.close()  # this thread's own connection


indexes = _Indexes()


def build_snapshot(knowledge_base_id: int) -> KeywordIndex:
    """The base's index in a REPEATABLE READ transaction of its own."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return build(cursor, knowledge_base_id)


def fits(chunk_total: int, length_total: int) -> bool:
    """Whether a base of these statistics can be indexed at all: it holds at most one posting
    per term occurrence."""
    return length_total * POSTING_BYTES + chunk_total * 8 <= budget_bytes()


def index_for(cursor, knowledge_base_id: int) -> KeywordIndex | None:
    """The base's index at the generation the cursor's snapshot sees, if the process has it or
    can build it at once (small bases); otherwise None, and a build starts in the background."""
    gen = generation(cursor, knowledge_base_id)
    index = indexes.get(knowledge_base_id, gen)
    if index is not None:
        return index
    cursor.execute(
        "SELECT chunk_total, length_total FROM knowledge_knowledgebase WHERE id = %s",
        [knowledge_base_id],
    )
    row = cursor.fetchone()
    if row is None or not fits(int(row[0]), int(row[1])):
        return None
    if row[0] <= inline_chunks():
        index = build(cursor, knowledge_base_id)
        indexes.put(index)
        return index
    indexes.request(knowledge_base_id)
    return None
