"""Form data to typed values: a person's answer to a human-input node."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.http import QueryDict


def answer_values(fields: list[dict], data: QueryDict) -> dict[str, Any]:
    """The posted answer, each field converted to its type (``fields_clean`` checks the rest)."""
    values: dict[str, Any] = {}
    for field in fields:
        name, type_ = field["name"], field.get("type", "text")
        raw = data.get(name)
        if type_ == "boolean":
            values[name] = raw in ("on", "true", "1")
            continue
        if raw is None or raw == "":
            continue
        if type_ == "number":
            try:
                number = float(raw)
            except ValueError:
                raise ValidationError(f"{name}: {raw!r} is not a number") from None
            values[name] = int(number) if number.is_integer() else number
        elif type_ == "json":
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise ValidationError(f"{name}: this is not JSON ({exc})") from None
        else:
            values[name] = raw
    return values


def approval_values(data: QueryDict) -> dict[str, Any]:
    """The posted decision on a call waiting for approval (the node's type checks it)."""
    return {
        "approve": data.get("approve") == "true",
        "reason": data.get("reason", ""),
        "key": data.get("key") or None,
    }
