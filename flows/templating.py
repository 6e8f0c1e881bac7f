"""Prompt templates with ``{{variables}}``: plain substitution, never code execution."""

from __future__ import annotations

import re

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def variables(template: str) -> list[str]:
    """The distinct variable names of ``template``, in order of first appearance."""
    return list(dict.fromkeys(VARIABLE.findall(template)))


def render(template: str, values: dict[str, object]) -> str:
    return VARIABLE.sub(lambda m: _text(values.get(m.group(1), "")), template)


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)
