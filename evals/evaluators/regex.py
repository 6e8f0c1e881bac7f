"""Regex: the output matches a user's pattern, run with the flows' time limit per pattern
(``flows.runtime.conditions``: the ``regex`` engine with a timeout), so a pattern that
backtracks for ever fails its case instead of holding a worker."""

from __future__ import annotations

from pydantic import Field, field_validator

from evals.evaluators.base import Config, Context, Evaluator, Output, Score
from evals.schemas import CaseData
from flows.runtime.conditions import (
    MAX_PATTERN,
    PatternBudget,
    PatternBudgetSpent,
    pattern_compile,
)


class RegexConfig(Config):
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    # Whether the pattern must match the whole output (else anywhere in it).
    full_match: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        pattern_compile(value)  # ValueError names the problem
        return value


class Regex(Evaluator):
    kind = "regex"
    label = "Regular expression"
    Config = RegexConfig

    async def score(self, case: CaseData, output: Output, context: Context) -> Score:
        compiled = pattern_compile(self.config.pattern)
        search = compiled.fullmatch if self.config.full_match else compiled.search
        budget = PatternBudget()
        try:
            found = budget.run(lambda timeout: search(output.text, timeout=timeout)) is not None
        except (TimeoutError, PatternBudgetSpent):
            return Score.failed(f"the pattern took longer than {budget.seconds:g} s")
        return Score(
            value=1.0 if found else 0.0,
            passed=found,
            reason="the pattern matches" if found else "the pattern does not match",
        )
