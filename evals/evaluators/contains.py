"""Contains: the output contains all (or any) of the given phrases, or the expected output."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from evals.evaluators.base import Config, Context, Evaluator, Output, Score, normalise
from evals.schemas import CaseData


class ContainsConfig(Config):
    # Empty: the case's expected output is the one phrase.
    phrases: list[str] = Field(default_factory=list, max_length=50)
    mode: Literal["all", "any"] = "all"
    case_sensitive: bool = False


class Contains(Evaluator):
    kind = "contains"
    label = "Contains"
    Config = ContainsConfig

    async def score(self, case: CaseData, output: Output, context: Context) -> Score:
        phrases = [p for p in self.config.phrases if p] or (
            [case.expected_output] if case.expected_output else []
        )
        if not phrases:
            return Score.failed("no phrases to look for and no expected output")
        options = {"case_sensitive": self.config.case_sensitive, "collapse_whitespace": True}
        text = normalise(output.text, strip=True, **options)
        found = [p for p in phrases if normalise(p, strip=True, **options) in text]
        missing = [p for p in phrases if p not in found]
        value = len(found) / len(phrases)
        passed = not missing if self.config.mode == "all" else bool(found)
        reason = f"contains {len(found)} of {len(phrases)}" + (
            f"; missing: {', '.join(missing[:5])}" if missing else ""
        )
        return Score(value=value, passed=passed, reason=reason, details={"missing": missing})
