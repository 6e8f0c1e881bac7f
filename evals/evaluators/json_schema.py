"""JSON schema: the output parses as JSON and validates against a schema (bounded in size, so
a stored config cannot make every case's check expensive)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from pydantic import field_validator

from evals.evaluators.base import Config, Context, Evaluator, Output, Score
from evals.schemas import CaseData

MAX_SCHEMA_CHARS = 20_000
MAX_OUTPUT_CHARS = 200_000


class JsonSchemaConfig(Config):
    json_schema: dict[str, Any]

    @field_validator("json_schema")
    @classmethod
    def _bounded_and_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_SCHEMA_CHARS:
            raise ValueError(f"the schema is longer than {MAX_SCHEMA_CHARS} characters")
        try:
            jsonschema.Draft202012Validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return value


def _json_text(text: str) -> str:
    """The output without the Markdown fence models often wrap JSON in."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped.removeprefix("```json").removeprefix("```").removesuffix("```")
    return stripped.strip()


class JsonSchema(Evaluator):
    kind = "json_schema"
    label = "JSON schema valid"
    Config = JsonSchemaConfig

    async def score(self, case: CaseData, output: Output, context: Context) -> Score:
        if len(output.text) > MAX_OUTPUT_CHARS:
            return Score.failed(f"the output is longer than {MAX_OUTPUT_CHARS} characters")
        try:
            value = json.loads(_json_text(output.text))
        except ValueError as exc:
            return Score(value=0.0, passed=False, reason=f"not JSON: {exc}")
        validator = jsonschema.Draft202012Validator(self.config.json_schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))[:5]
        if errors:
            messages = [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors]
            return Score(value=0.0, passed=False, reason=messages[0], details={"errors": messages})
        return Score(value=1.0, passed=True, reason="valid JSON that matches the schema")
