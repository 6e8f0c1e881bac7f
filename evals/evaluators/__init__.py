"""The evaluators, one module each, found by kind: ``evaluator(kind, config)`` builds one."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from evals.evaluators.base import Context, Evaluator, Output, Score

__all__ = ["Context", "Evaluator", "Output", "Score", "evaluator", "evaluator_classes"]

_CLASSES: dict[str, type[Evaluator]] = {}


def evaluator_classes() -> dict[str, type[Evaluator]]:
    """Every evaluator class by kind, from the modules of this package."""
    if not _CLASSES:
        for info in pkgutil.iter_modules(__path__):
            if info.name == "base":
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, Evaluator)
                    and "kind" in vars(value)  # a shared base such as retrieval's has none
                    and value.__module__ == module.__name__
                ):
                    _CLASSES[value.kind] = value
    return _CLASSES


def evaluator(kind: str, config: dict[str, Any] | None = None) -> Evaluator:
    """The evaluator ``kind`` with its config checked; ``LookupError`` for an unknown kind,
    pydantic's ``ValidationError`` for a bad config."""
    try:
        cls = evaluator_classes()[kind]
    except KeyError:
        raise LookupError(f"there is no evaluator {kind!r}") from None
    return cls(cls.Config.model_validate(config or {}))
