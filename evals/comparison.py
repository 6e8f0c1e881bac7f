"""Two evaluation runs of one dataset side by side: scores, cost, latency, and changed cases.

Pure functions of the runs' stored rows: ``side_of`` turns an ``EvalRun`` and its results (as the
caller loaded them) into a ``Side``, ``compare`` two sides into a ``Comparison``. No query, so the
comparison page, the publish panel and the tests compare the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from evals.models import EvalCaseResult, EvalRun, EvalStatus
from evals.variants import eval_run_label

# Two scores closer than this are the same score (floats from different evaluator runs).
SCORE_EPSILON = 1e-9


class ComparisonRefused(ValueError):
    """Why two runs cannot be compared, in words for the member."""


class Change(StrEnum):
    """What happened to one case between the baseline and the candidate."""

    FIXED = "fixed"  # failed on the baseline, passes on the candidate
    BROKE = "broke"  # passed on the baseline, fails on the candidate
    SCORE = "score"  # passes (or fails) on both, with another score
    ANSWER = "answer"  # the same scores for another answer
    ONLY_BASELINE = "only_baseline"
    ONLY_CANDIDATE = "only_candidate"
    SAME = "same"


CHANGE_LABELS = {
    Change.FIXED: "fixed",
    Change.BROKE: "broke",
    Change.SCORE: "score changed",
    Change.ANSWER: "answer changed",
    Change.ONLY_BASELINE: "only in the baseline",
    Change.ONLY_CANDIDATE: "only in the candidate",
    Change.SAME: "unchanged",
}


@dataclass(frozen=True)
class ScoreValue:
    kind: str
    value: float
    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class CaseOutcome:
    """One case's result on one side. ``scores`` follow the run's evaluators by position;
    ``output`` is None when the caller did not load answers (the publish panel)."""

    index: int
    case_id: int | None
    scores: tuple[ScoreValue, ...] = ()
    output: str | None = None
    latency_ms: float | None = None
    tokens: int = 0
    cost: Decimal = Decimal(0)
    error: str = ""

    def passed(self, positions: Sequence[int]) -> bool:
        """No error and every score at ``positions`` (the evaluators both sides ran) passed;
        a case with no such score has not passed."""
        scores = [self.scores[i] for i in positions if i < len(self.scores)]
        return not self.error and bool(scores) and all(s.passed for s in scores)


@dataclass(frozen=True)
class Side:
    """One evaluation run as compared: ``evaluators`` are the keys of its evaluators, in order
    (``evaluator_key``)."""

    run_id: int
    label: str
    workspace_id: int
    dataset_id: int
    flow_id: int
    status: str
    evaluators: tuple[str, ...]
    cases: tuple[CaseOutcome, ...]


@dataclass(frozen=True)
class Metric:
    """One row of the side by side table. ``unit``: ``score``, ``rate``, ``usd``, ``ms``,
    ``tokens`` or ``count``; ``higher_is_better`` colours the difference (None: neither)."""

    label: str
    unit: str
    baseline: float | None
    candidate: float | None
    higher_is_better: bool | None

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.candidate is None:
            return None
        return self.candidate - self.baseline

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` or ``same`` for the candidate; empty when one side lacks it."""
        delta = self.delta
        if delta is None or self.higher_is_better is None:
            return ""
        if abs(delta) <= SCORE_EPSILON:
            return "same"
        return "better" if (delta > 0) == self.higher_is_better else "worse"


@dataclass(frozen=True)
class EvaluatorStat:
    """One evaluator's mean score and pass rate on each side (None: that side did not run it)."""

    key: str
    label: str
    mean: Metric
    pass_rate: Metric


@dataclass(frozen=True)
class CasePair:
    """A case of the dataset on both sides (one of them None when only the other has it)."""

    number: int  # the case's position on the baseline (else the candidate), from 1
    case_id: int | None
    baseline: CaseOutcome | None
    candidate: CaseOutcome | None
    change: Change

    @property
    def change_label(self) -> str:
        return CHANGE_LABELS[self.change]


@dataclass(frozen=True)
class Comparison:
    baseline: Side
    candidate: Side
    evaluators: tuple[EvaluatorStat, ...]
    totals: tuple[Metric, ...]
    pairs: tuple[CasePair, ...]
    matched_by: str  # "case" (the dataset's case ids) or "index" (their position)

    def count(self, change: Change) -> int:
        return sum(1 for p in self.pairs if p.change == change)

    @property
    def changed(self) -> list[CasePair]:
        return [p for p in self.pairs if p.change != Change.SAME]

    def shown(self, which: str) -> list[CasePair]:
        """The changed cases, or only those ``fixed`` or ``broke``; ValueError otherwise."""
        if which == "all":
            return self.changed
        return [p for p in self.pairs if p.change == Change(which)]

    @property
    def headline(self) -> EvaluatorStat | None:
        """The first evaluator both sides ran: what "score" means in a one-line summary."""
        for stat in self.evaluators:
            if stat.mean.baseline is not None and stat.mean.candidate is not None:
                return stat
        return None

    def total(self, label: str) -> Metric:
        return next(m for m in self.totals if m.label == label)


# --- building sides ----------------------------------------------------------------------------


def evaluator_key(item: dict[str, Any]) -> str:
    """An evaluator as stored in ``EvalRun.evaluators``: its kind with its settings, so two
    runs' "contains" with other phrases are two evaluators, not one."""
    config = json.dumps(item.get("config") or {}, sort_keys=True, separators=(",", ":"))
    return f"{item.get('kind', '')}:{config}"


def run_label(eval_run: EvalRun) -> str:
    """``v3``, or for a run with a model or prompt swapped in ``v3 + model X in llm_1``: the
    label the evaluation pages show (``evals.variants``)."""
    return eval_run_label(eval_run)


def outcome_of(result: EvalCaseResult, *, with_output: bool = True) -> CaseOutcome:
    scores = tuple(
        ScoreValue(
            kind=str(s.get("kind", "")),
            value=float(s.get("value") or 0.0),
            passed=bool(s.get("passed")),
            reason=str(s.get("reason") or ""),
        )
        for s in result.scores or []
    )
    return CaseOutcome(
        index=result.index,
        case_id=result.case_id,
        scores=scores,
        output=result.output if with_output else None,
        latency_ms=result.latency_ms,
        tokens=result.tokens,
        cost=Decimal(result.cost or 0),
        error=result.error,
    )


def side_of(
    eval_run: EvalRun, results: Iterable[EvalCaseResult], *, with_output: bool = True
) -> Side:
    return Side(
        run_id=eval_run.id,
        label=run_label(eval_run),
        workspace_id=eval_run.workspace_id,
        dataset_id=eval_run.dataset_id,
        flow_id=eval_run.flow_id,
        status=eval_run.status,
        evaluators=tuple(evaluator_key(item) for item in eval_run.evaluators),
        cases=tuple(outcome_of(r, with_output=with_output) for r in results),
    )


# --- comparing ---------------------------------------------------------------------------------


def comparable(baseline: Side, candidate: Side) -> None:
    """ComparisonRefused unless both are finished runs of one dataset, flow and workspace."""
    if baseline.run_id == candidate.run_id:
        raise ComparisonRefused("Pick two different evaluations to compare.")
    if baseline.workspace_id != candidate.workspace_id or baseline.dataset_id != (
        candidate.dataset_id
    ):
        raise ComparisonRefused(
            "These evaluations are of different datasets: compare two evaluations of one dataset."
        )
    if baseline.flow_id != candidate.flow_id:
        raise ComparisonRefused("These evaluations ran different flows.")
    for side in (baseline, candidate):
        if side.status != EvalStatus.DONE:
            state = EvalStatus(side.status).label.lower()
            raise ComparisonRefused(
                f"The evaluation of {side.label} is {state}: only finished evaluations compare."
            )


def compare(baseline: Side, candidate: Side) -> Comparison:
    """The two runs side by side; ComparisonRefused when they may not be compared."""
    comparable(baseline, candidate)
    shared = [k for k in baseline.evaluators if k in candidate.evaluators]
    positions = (
        [baseline.evaluators.index(k) for k in shared],
        [candidate.evaluators.index(k) for k in shared],
    )
    matched_by, matched = _match(baseline.cases, candidate.cases)
    pairs = tuple(
        CasePair(
            number=number,
            case_id=(b or c).case_id,  # type: ignore[union-attr]  # one side is always there
            baseline=b,
            candidate=c,
            change=classify(b, c, positions),
        )
        for number, (b, c) in enumerate(matched, start=1)
    )
    return Comparison(
        baseline=baseline,
        candidate=candidate,
        evaluators=_evaluator_stats(baseline, candidate),
        totals=_totals(baseline, candidate, positions),
        pairs=pairs,
        matched_by=matched_by,
    )


def _match(
    baseline: Sequence[CaseOutcome], candidate: Sequence[CaseOutcome]
) -> tuple[str, list[tuple[CaseOutcome | None, CaseOutcome | None]]]:
    """Pairs of the same case: by the dataset's case id when both runs carry ids they share
    (two dataset versions may order cases differently), else by position (cases imported
    anew have new ids)."""
    ids = [[c.case_id for c in side] for side in (baseline, candidate)]
    by_case = (
        all(i is not None for side in ids for i in side)
        and all(len(set(side)) == len(side) for side in ids)
        and bool(set(ids[0]) & set(ids[1]))
    )
    matched_by = "case" if by_case else "index"

    def key(c: CaseOutcome) -> int | None:
        return c.case_id if by_case else c.index

    theirs = {key(c): c for c in candidate}
    pairs: list[tuple[CaseOutcome | None, CaseOutcome | None]] = [
        (b, theirs.pop(key(b), None)) for b in baseline
    ]
    pairs += [(None, c) for c in theirs.values()]  # only in the candidate, in its order
    return matched_by, pairs


def classify(
    baseline: CaseOutcome | None,
    candidate: CaseOutcome | None,
    positions: tuple[Sequence[int], Sequence[int]],
) -> Change:
    """What changed for one case; ``positions``: where the evaluators both runs share sit in
    each side's scores (a case passes on the shared evaluators only, so adding an evaluator to
    the candidate does not read as a regression)."""
    if baseline is None:
        return Change.ONLY_CANDIDATE
    if candidate is None:
        return Change.ONLY_BASELINE
    was, now = baseline.passed(positions[0]), candidate.passed(positions[1])
    if now and not was:
        return Change.FIXED
    if was and not now:
        return Change.BROKE
    before = [baseline.scores[i].value for i in positions[0] if i < len(baseline.scores)]
    after = [candidate.scores[i].value for i in positions[1] if i < len(candidate.scores)]
    if len(before) != len(after) or any(
        abs(a - b) > SCORE_EPSILON for a, b in zip(before, after, strict=True)
    ):
        return Change.SCORE
    if baseline.error != candidate.error:
        return Change.SCORE
    if (
        baseline.output is not None
        and candidate.output is not None
        and baseline.output != candidate.output
    ):
        return Change.ANSWER
    return Change.SAME


def _evaluator_stats(baseline: Side, candidate: Side) -> tuple[EvaluatorStat, ...]:
    keys = list(dict.fromkeys([*baseline.evaluators, *candidate.evaluators]))
    kinds = [k.partition(":")[0] for k in keys]
    stats = []
    for key, kind in zip(keys, kinds, strict=True):
        # Two evaluators of one kind (other settings) are told apart by their settings.
        label = kind if kinds.count(kind) == 1 else f"{kind} {key.partition(':')[2][:60]}"
        means, rates = [], []
        for side in (baseline, candidate):
            mean, rate = _evaluator_on(side, key)
            means.append(mean)
            rates.append(rate)
        stats.append(
            EvaluatorStat(
                key=key,
                label=label,
                mean=Metric(f"{label} mean", "score", means[0], means[1], True),
                pass_rate=Metric(f"{label} pass rate", "rate", rates[0], rates[1], True),
            )
        )
    return tuple(stats)


def _evaluator_on(side: Side, key: str) -> tuple[float | None, float | None]:
    """Mean score and pass rate of one evaluator over the cases it scored (as the run's own
    aggregates count them); (None, None) when the side did not run it or scored nothing."""
    if key not in side.evaluators:
        return None, None
    position = side.evaluators.index(key)
    scored = [c.scores[position] for c in side.cases if position < len(c.scores)]
    if not scored:
        return None, None
    return (
        sum(s.value for s in scored) / len(scored),
        sum(1 for s in scored if s.passed) / len(scored),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _totals(
    baseline: Side, candidate: Side, positions: tuple[Sequence[int], Sequence[int]]
) -> tuple[Metric, ...]:
    rows: dict[str, list[float | None]] = {}
    for side, shared in zip((baseline, candidate), positions, strict=True):
        cases = side.cases
        count = len(cases)
        latencies = [c.latency_ms for c in cases if c.latency_ms is not None]
        cost = float(sum((c.cost for c in cases), Decimal(0)))
        tokens = sum(c.tokens for c in cases)
        values = {
            "Cases": count,
            "Cases passed": sum(1 for c in cases if c.passed(shared)),
            "Errors": sum(1 for c in cases if c.error),
            "Total cost": cost,
            "Cost per case": cost / count if count else None,
            "Latency p50": percentile(latencies, 0.5),
            "Latency p95": percentile(latencies, 0.95),
            "Tokens": tokens,
            "Tokens per case": tokens / count if count else None,
        }
        for label, value in values.items():
            rows.setdefault(label, []).append(value)
    units = {
        "Cases": ("count", None),
        "Cases passed": ("count", True),
        "Errors": ("count", False),
        "Total cost": ("usd", False),
        "Cost per case": ("usd", False),
        "Latency p50": ("ms", False),
        "Latency p95": ("ms", False),
        "Tokens": ("tokens", False),
        "Tokens per case": ("tokens", False),
    }
    return tuple(
        Metric(label, units[label][0], pair[0], pair[1], units[label][1])
        for label, pair in rows.items()
    )
