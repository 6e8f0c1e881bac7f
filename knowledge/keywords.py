"""BM25 keyword scoring kept inside pgvector.

Each chunk stores, per term, BM25's document-side weight ``tf·(k1+1) / (tf + k1·(1−b+b·dl/avgdl))``
in a ``sparsevec`` indexed by term id; the query vector holds each query term's idf (times its
count in the query), so the inner product of the two is the chunk's BM25 score. Term ids are a
stable hash of the stemmed term, so no vocabulary table is needed; document frequencies per
knowledge base live in ``knowledge.Term``.

Text analysis follows Lucene's English analyzer: lowercase words, its stop words, and the Snowball
English (Porter2) stemmer.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import Stemmer
from pgvector import SparseVector

K1 = 1.2
B = 0.75
# sparsevec's largest dimension count; term ids are hashed into [0, DIMENSIONS).
DIMENSIONS = 1_000_000_000
# A sparsevec holds at most 16,000 non-zero elements; chunks are far smaller, but a pasted table
# of ids could pass it: then only the chunk's 16,000 most frequent terms are kept.
MAX_TERMS = 16_000

# Lucene's English stop words (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET).
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def analyze(text: str) -> list[str]:
    """The terms of ``text`` in order: lowercased words, stop words dropped, stemmed."""
    words = (w.removesuffix("'s") for w in _WORD.findall(text.lower()))
    return [_stem(w) for w in words if w not in STOP_WORDS and not w.isspace()]


@lru_cache(maxsize=200_000)
def term_id(term: str) -> int:
    digest = hashlib.blake2b(term.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % DIMENSIONS


@dataclass(frozen=True)
class ChunkTerms:
    """A chunk's keyword data: its distinct term ids, BM25 weights, and length in terms."""

    terms: list[int]
    weights: SparseVector | None
    length: int


def chunk_terms(text: str, average_length: float) -> ChunkTerms:
    """BM25 document-side weights of ``text`` against a corpus whose chunks average
    ``average_length`` terms (the chunk's own length when the corpus is empty)."""
    counts = Counter(term_id(t) for t in analyze(text))
    length = sum(counts.values())
    if not counts:
        return ChunkTerms(terms=[], weights=None, length=0)
    if len(counts) > MAX_TERMS:
        counts = Counter(dict(counts.most_common(MAX_TERMS)))
    avgdl = average_length if average_length > 0 else float(length)
    norm = K1 * (1 - B + B * length / avgdl)
    weights = {tid: tf * (K1 + 1) / (tf + norm) for tid, tf in counts.items()}
    return ChunkTerms(
        terms=sorted(counts),
        weights=SparseVector(weights, DIMENSIONS),
        length=length,
    )


def query_terms(text: str) -> tuple[list[int], list[int]]:
    """The distinct term ids of a query and how often each occurs in it."""
    counts = Counter(term_id(t) for t in analyze(text))
    ids = sorted(counts)
    return ids, [counts[i] for i in ids]


def idf(chunks: int, df: int) -> float:
    """Lucene's BM25 idf: never negative, however common the term."""
    return math.log(1 + (chunks - df + 0.5) / (df + 0.5))


# A document-side weight tf·(k1+1) / (tf + norm) stays below k1+1 for any tf and length.
MAX_WEIGHT = K1 + 1
# Weights and idfs are stored as 32-bit floats: a bound computed in Python is widened by this
# much, so that rounding never lets a real score pass its bound.
BOUND_MARGIN = 1e-3


def score_bound(chunks: int, df: int, count: int) -> float:
    """The most a query term (``count`` times in the query) can add to any chunk's score."""
    return MAX_WEIGHT * idf(chunks, df) * count * (1 + BOUND_MARGIN)
