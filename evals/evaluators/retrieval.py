"""Retrieval metrics against a case's expected sources: hit rate, MRR and nDCG over the run's
citations in the order retrieved. A source matches a citation by document name or id."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from evals.evaluators.base import Config, Context, Evaluator, Output, Score
from evals.schemas import CaseData


class RetrievalConfig(Config):
    # Only the first k citations count (0: all of them).
    k: int = Field(default=0, ge=0, le=100)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


def _documents(sources: list[dict[str, Any]], k: int) -> list[set[str]]:
    """Each citation's names for matching, a document cited twice counted at its first rank."""
    seen: set[str] = set()
    ranked: list[set[str]] = []
    for source in sources[: k or None]:
        names = {str(source.get(key, "")).strip().casefold() for key in ("document", "document_id")}
        names.discard("")
        ranked.append(names - seen)
        seen |= names
    return ranked


def relevance(case: CaseData, output: Output, k: int) -> list[bool]:
    """Whether each retrieved citation (to rank k) is one of the expected sources."""
    expected = {s.casefold() for s in case.expected_sources}
    return [bool(names & expected) for names in _documents(output.sources, k)]


class _RetrievalMetric(Evaluator):
    Config = RetrievalConfig

    def value(self, hits: list[bool], expected: int) -> float:
        raise NotImplementedError

    async def score(self, case: CaseData, output: Output, context: Context) -> Score:
        if not case.expected_sources:
            return Score.failed("the case has no expected sources")
        hits = relevance(case, output, self.config.k)
        value = self.value(hits, len(case.expected_sources))
        return Score(
            value=value,
            passed=value >= self.config.threshold,
            reason=f"{self.label} {value:.2f}: {sum(hits)} of {len(hits)} retrieved expected",
            details={"relevant": hits},
        )


class HitRate(_RetrievalMetric):
    """1 when any expected source was retrieved."""

    kind = "hit_rate"
    label = "Hit rate"

    def value(self, hits: list[bool], expected: int) -> float:
        return 1.0 if any(hits) else 0.0


class Mrr(_RetrievalMetric):
    """The reciprocal rank of the first expected source retrieved."""

    kind = "mrr"
    label = "MRR"

    def value(self, hits: list[bool], expected: int) -> float:
        return next((1.0 / rank for rank, hit in enumerate(hits, 1) if hit), 0.0)


class Ndcg(_RetrievalMetric):
    """Binary-relevance nDCG: retrieved expected sources, discounted by rank, over the ideal
    order (every expected source first)."""

    kind = "ndcg"
    label = "nDCG"

    def value(self, hits: list[bool], expected: int) -> float:
        dcg = sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(hits, 1) if hit)
        ideal_count = min(expected, len(hits)) or expected
        ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, ideal_count + 1))
        return dcg / ideal if ideal else 0.0
