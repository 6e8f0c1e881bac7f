"""Conditions on a flow's values: what if/else branches on and what ends a loop.

A condition names a port (``"topic"`` or ``"classify.label"``), an operator and a literal value.
Comparison is forgiving about types, because values cross nodes as text as often as not: a text
``"10"`` compares as a number with ``greater_than 9``, ``"yes"`` is true, and a value that cannot
be compared makes the condition false instead of failing the run.

User regular expressions (the ``matches`` operator, the guardrail's deny patterns) run on the
``regex`` engine with a timeout: capping the lengths alone does not stop a pattern such as
``(x+x+)+y`` from backtracking for minutes on a few thousand characters. A timeout per pattern
is not enough either (400 conditions of an if/else at 0.1 s each hold a worker thread for a
minute): the patterns of one node share one ``PatternBudget``, and once it is spent the node
stops with ``PatternBudgetSpent``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, TypeVar

import regex
from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)

# A port as conditions name it: a plain variable, or a reference to an upstream node's output.
PORT_NAME = r"^(?:[A-Za-z_][A-Za-z0-9_\-]{0,63}\.)?[A-Za-z_][A-Za-z0-9_]{0,63}$"
PORT = re.compile(PORT_NAME)
MAX_PATTERN = 1_000
# ``matches`` looks at the first this many characters of a value.
MAX_SUBJECT = 100_000
PATTERN_TIMEOUT_S = 0.1
# What the regular expressions of one node (an if/else's cases, a guardrail's checks, a loop's
# exit checks over all its rounds) may take together: inline nodes run on a worker thread.
PATTERN_BUDGET_S = 1.0

Operator = Literal[
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "is_empty",
    "is_not_empty",
    "greater_than",
    "less_than",
    "greater_or_equal",
    "less_or_equal",
    "matches",
    "is_true",
    "is_false",
]
UNARY: frozenset[str] = frozenset({"is_empty", "is_not_empty", "is_true", "is_false"})
NUMERIC: frozenset[str] = frozenset(
    {"greater_than", "less_than", "greater_or_equal", "less_or_equal"}
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d{1,300}")
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})


# --- coercions (the variable assigner converts with the same rules) ---------------------------


def to_text(value: Any) -> str:
    """A value as text: JSON for objects and lists, ``true``/``false`` for booleans."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def to_number(value: Any) -> int | float | None:
    """A finite number, or None for anything that is not one (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        if _NUMBER.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    return None


def to_bool(value: Any) -> bool | None:
    """True or False for true/false/yes/no/1/0 (any case), else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


# --- user regular expressions -----------------------------------------------------------------

T = TypeVar("T")


class PatternBudgetSpent(ValueError):
    """The regular expressions of one node took longer than their shared budget."""


class PatternBudget:
    """The time that the regular expressions of one node may take together.

    Each search gets its own limit (``PATTERN_TIMEOUT_S`` unless said otherwise) or what is
    left of the budget, whichever is less; ``spent`` carries over where a node's checks are
    spread over calls (a loop's rounds). Not thread-safe: one per node run.
    """

    def __init__(self, seconds: float = PATTERN_BUDGET_S, spent: float = 0.0) -> None:
        self.seconds = seconds
        self.spent = spent

    @property
    def message(self) -> str:
        return f"the regular expressions took longer than {self.seconds:g} s in all"

    def run(self, search: Callable[[float], T], limit: float = PATTERN_TIMEOUT_S) -> T:
        """``search(timeout)`` with its time charged to the budget. ``TimeoutError`` if that
        search alone took too long; ``PatternBudgetSpent`` once nothing is left."""
        left = self.seconds - self.spent
        if left <= 0:
            raise PatternBudgetSpent(self.message)
        started = time.monotonic()
        try:
            return search(min(limit, left))
        except TimeoutError:
            if limit < left:
                raise
            raise PatternBudgetSpent(self.message) from None
        finally:
            self.spent += time.monotonic() - started


@lru_cache(maxsize=512)
def pattern_compile(pattern: str) -> regex.Pattern:
    """Compile a user's pattern; ``ValueError`` names it if it is too long or invalid."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"the pattern {pattern[:40]!r}… is longer than {MAX_PATTERN} characters")
    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def pattern_search(pattern: str, text: str, budget: PatternBudget | None = None) -> bool:
    """Whether ``pattern`` occurs in ``text``; ``TimeoutError`` if it takes too long,
    ``PatternBudgetSpent`` once ``budget`` (the node's) is spent."""
    compiled = pattern_compile(pattern)
    budget = budget or PatternBudget()
    return budget.run(lambda timeout: compiled.search(text, timeout=timeout)) is not None


# --- conditions -------------------------------------------------------------------------------


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variable: str = Field(
        pattern=PORT_NAME,
        max_length=129,
        title="Variable",
        description="The value to test: a variable, or an upstream output as node_id.port.",
    )
    operator: Operator = Field(
        default="equals", title="Operator", description="How the value is compared."
    )
    value: Any = Field(
        default=None,
        title="Compared with",
        description="Not used by is empty, is not empty, is true and is false; "
        "a regular expression for matches.",
    )

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        if self.operator in UNARY:
            return self
        if self.value is None:
            raise ValueError(f"{self.variable}: the operator {self.operator!r} needs a value")
        if self.operator in NUMERIC and to_number(self.value) is None:
            raise ValueError(
                f"{self.variable}: the operator {self.operator!r} needs a number, "
                f"not {self.value!r}"
            )
        if self.operator == "matches":
            if not isinstance(self.value, str):
                raise ValueError(f"{self.variable}: matches needs a regular expression as text")
            pattern_compile(self.value)
        return self


class ConditionGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    logic: Literal["and", "or"] = Field(
        default="and",
        title="Combine with",
        description="and: every condition must hold; or: at least one.",
    )
    conditions: list[Condition] = Field(min_length=1, max_length=20, title="Conditions")


def group_variables(group: ConditionGroup) -> list[str]:
    """The distinct ports a group reads, in order of first use."""
    return list(dict.fromkeys(c.variable for c in group.conditions))


def evaluate(
    group: ConditionGroup, values: dict[str, Any], budget: PatternBudget | None = None
) -> bool:
    """Whether the group holds for ``values`` (keyed by port name). Raises nothing but
    ``PatternBudgetSpent``, once its ``matches`` conditions have used up ``budget`` (by
    default one of its own; a node passes one budget to all the groups it evaluates)."""
    budget = budget or PatternBudget()
    results = (holds(c, values.get(c.variable), budget) for c in group.conditions)
    return all(results) if group.logic == "and" else any(results)


def holds(condition: Condition, actual: Any, budget: PatternBudget | None = None) -> bool:
    """Whether one condition holds for the value ``actual``."""
    expected = condition.value
    match condition.operator:
        case "equals":
            return _equal(actual, expected)
        case "not_equals":
            return not _equal(actual, expected)
        case "contains":
            return _contains(actual, expected)
        case "not_contains":
            return not _contains(actual, expected)
        case "starts_with":
            return to_text(actual).startswith(to_text(expected))
        case "ends_with":
            return to_text(actual).endswith(to_text(expected))
        case "is_empty":
            return _empty(actual)
        case "is_not_empty":
            return not _empty(actual)
        case "is_true":
            return to_bool(actual) is True
        case "is_false":
            return to_bool(actual) is False
        case "matches":
            return _matches(expected, actual, budget)
    return _compare(condition.operator, actual, expected)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        a, b = to_bool(actual), to_bool(expected)
        return a is not None and a == b
    # Numbers as numbers only when one side really is one: "007" and "7" stay different texts.
    if _is_number(actual) or _is_number(expected):
        a, b = to_number(actual), to_number(expected)
        if a is not None and b is not None:
            return a == b
    if isinstance(actual, dict | list) and isinstance(expected, dict | list):
        return actual == expected
    return to_text(actual) == to_text(expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, list):
        return any(_equal(item, expected) for item in actual)
    if isinstance(actual, dict):
        return to_text(expected) in actual
    return to_text(expected) in to_text(actual)


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict):
        return not value
    return False


def _compare(operator: str, actual: Any, expected: Any) -> bool:
    a, b = to_number(actual), to_number(expected)
    if a is None or b is None:
        return False
    match operator:
        case "greater_than":
            return a > b
        case "less_than":
            return a < b
        case "greater_or_equal":
            return a >= b
        case "less_or_equal":
            return a <= b
    return False


def _matches(pattern: Any, actual: Any, budget: PatternBudget | None) -> bool:
    try:
        return pattern_search(str(pattern), to_text(actual)[:MAX_SUBJECT], budget)
    except PatternBudgetSpent:
        raise  # the node's, not this condition's: it stops the node
    except TimeoutError:
        log.warning("the pattern %r took too long; the condition is false", pattern)
        return False
    except ValueError:  # a pattern saved before the checks, or read from a bad graph
        return False
