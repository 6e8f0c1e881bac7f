"""Prompt templates with ``{{variables}}``: plain substitution, never code execution.

The syntax is the catalog's (``catalog/prompt_text.py``), so library prompts and node prompts
declare and fill variables alike.
"""

from __future__ import annotations

import json

from catalog.prompt_text import VARIABLE, variables

__all__ = ["VARIABLE", "render", "variables"]


def render(template: str, values: dict[str, object]) -> str:
    return VARIABLE.sub(lambda m: _text(values.get(m.group(1), "")), template)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
