"""The typed shapes of evaluation data: a case as evaluators and imports read it."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT = 20_000
MAX_INPUTS_CHARS = 50_000
MAX_LIST = 50


class CaseData(BaseModel):
    """One case, validated at the edge (the case form, an imported row, a run turned into a
    case). ``inputs`` is what the flow's input node takes; ``{"message": …}`` for a chat."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    expected_output: str = Field(default="", max_length=MAX_TEXT)
    criteria: str = Field(default="", max_length=MAX_TEXT)
    expected_sources: list[str] = Field(default_factory=list, max_length=MAX_LIST)
    tags: list[str] = Field(default_factory=list, max_length=MAX_LIST)

    @field_validator("inputs")
    @classmethod
    def _inputs_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("a case needs inputs, such as a message")
        if len(json.dumps(value)) > MAX_INPUTS_CHARS:
            raise ValueError(f"the inputs are longer than {MAX_INPUTS_CHARS} characters")
        return value

    @field_validator("expected_sources", "tags")
    @classmethod
    def _short_strings(cls, value: list[str]) -> list[str]:
        cleaned = [item.strip() for item in value if item.strip()]
        if any(len(item) > 300 for item in cleaned):
            raise ValueError("each item is at most 300 characters")
        return cleaned
