"""Exact match: the output equals the expected output, after the chosen normalisation."""

from __future__ import annotations

from evals.evaluators.base import Config, Context, Evaluator, Output, Score, normalise
from evals.schemas import CaseData


class ExactMatchConfig(Config):
    case_sensitive: bool = False
    collapse_whitespace: bool = True
    strip: bool = True
    # Trailing punctuation such as a final full stop rarely changes an answer's meaning.
    ignore_trailing_punctuation: bool = True


class ExactMatch(Evaluator):
    kind = "exact_match"
    label = "Exact match"
    Config = ExactMatchConfig

    def _clean(self, text: str) -> str:
        c = self.config
        text = normalise(
            text,
            case_sensitive=c.case_sensitive,
            collapse_whitespace=c.collapse_whitespace,
            strip=c.strip,
        )
        return text.rstrip(".!?;:,") if c.ignore_trailing_punctuation else text

    async def score(self, case: CaseData, output: Output, context: Context) -> Score:
        if not case.expected_output:
            return Score.failed("the case has no expected output")
        same = self._clean(output.text) == self._clean(case.expected_output)
        return Score(
            value=1.0 if same else 0.0,
            passed=same,
            reason="matches the expected output" if same else "differs from the expected output",
        )
