"""What every evaluator is: a pydantic config and ``score(case, output, context) -> Score``.

Every ``score`` is a coroutine, those that compute in place as much as those that call a model
(semantic similarity, the judge): an evaluation run awaits them all the same way, on a worker.
An evaluator never raises for a bad output or a failed model call: it returns a failing score
whose ``error`` says why, so one case's trouble never stops a run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from evals.schemas import CaseData


@dataclass(frozen=True)
class Output:
    """What the flow or agent answered for a case: its text and the sources it cited
    (the citations of its runs, each with at least ``document`` and ``document_id``)."""

    text: str
    sources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Context:
    """What evaluators that call a model need. ``engine_for``: the resident engine of a catalog
    model (a worker's, or a test's); ``usage``: what the judge's usage rows record besides the
    call (the evaluation run, its user); ``queue``: the worker queue this runs on."""

    workspace_id: int
    engine_for: Callable[[Any], Awaitable[Any]] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None


@dataclass(frozen=True)
class Score:
    """``value`` in 0..1; ``passed`` against the evaluator's threshold; ``reason`` for people;
    ``details`` for the run's trace; ``error`` set when no fair score could be made."""

    value: float
    passed: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @classmethod
    def failed(cls, error: str, **details: Any) -> Score:
        return cls(value=0.0, passed=False, reason=error, details=details, error=error)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evaluator:
    """The base of every evaluator. A member sets ``kind``, ``label``, its ``Config`` and
    implements ``score``; ``evals.evaluators.evaluator`` builds one from stored JSON."""

    kind: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[Config]] = Config

    def __init__(self, config: Config) -> None:
        self.config = config

    async def score(self, case: CaseData, output: Output, context: Context) -> Score:
        raise NotImplementedError


def normalise(text: str, *, case_sensitive: bool, collapse_whitespace: bool, strip: bool) -> str:
    """Text as evaluators compare it, by their options."""
    if collapse_whitespace:
        text = " ".join(text.split())
    elif strip:
        text = text.strip()
    return text if case_sensitive else text.casefold()
