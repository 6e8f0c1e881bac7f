"""Typed shapes of the catalog's JSON and list fields, and their cleaning into stored values.

The cleaning functions raise Django's ``ValidationError`` with messages a person can act on, so a
form and a service that receive the same bad value report it the same way.
"""

from __future__ import annotations

from typing import Any

import pydantic
from django.core.exceptions import ValidationError
from pydantic import BaseModel, ConfigDict, Field

from catalog.engines import engine_class, engine_kinds

MAX_TAGS = 20
MAX_TAG_LENGTH = 40  # the column's length (Model.tags is ArrayField(CharField(max_length=40)))


class Sampling(BaseModel):
    """A model's default sampling parameters; a node or request's own values win. Unset means
    "the engine's default", so only the values given are stored."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    # Above 1, tokens the answer already holds are less likely again (loops of small models).
    repetition_penalty: float | None = Field(default=None, ge=1, le=2)


def pydantic_messages(exc: pydantic.ValidationError) -> list[str]:
    """One line per problem, naming the key it is about: ``temperature: Input should be …``."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        lines.append(f"{where}: {error['msg']}" if where else error["msg"])
    return lines


def sampling_clean(data: Any) -> dict:
    """``data`` as stored sampling parameters (only the keys given)."""
    if not isinstance(data, dict):
        raise ValidationError('Sampling must be a JSON object, e.g. {"temperature": 0.7}.')
    try:
        return Sampling.model_validate(data).model_dump(exclude_none=True)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_messages(exc)) from None


def engine_settings_clean(engine: str, data: Any) -> dict:
    """``data`` validated by the engine's own ``Settings`` schema, stored without defaults."""
    try:
        cls = engine_class(engine)
    except KeyError:
        raise ValidationError(
            f"Unknown engine {engine!r}; known: {', '.join(engine_kinds())}."
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("Engine settings must be a JSON object, e.g. {}.")
    try:
        return cls.Settings.model_validate(data).model_dump(exclude_defaults=True)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_messages(exc)) from None


def tags_clean(tags: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Tags trimmed, lowercased and unique, in their first order; a string is split on commas.

    Too many tags or a too-long tag is refused rather than cut, so nothing is lost silently.
    """
    if tags is None:
        return []
    parts = tags.split(",") if isinstance(tags, str) else list(tags)
    cleaned: list[str] = []
    for part in parts:
        if not isinstance(part, str):
            raise ValidationError("Tags must be text.")
        tag = " ".join(part.split()).lower()  # inner runs of whitespace become one space
        if tag and tag not in cleaned:
            cleaned.append(tag)
    errors = [
        f"The tag {tag[:20]!r}… is longer than {MAX_TAG_LENGTH} characters."
        for tag in cleaned
        if len(tag) > MAX_TAG_LENGTH
    ]
    if len(cleaned) > MAX_TAGS:
        errors.append(f"At most {MAX_TAGS} tags (got {len(cleaned)}).")
    if errors:
        raise ValidationError(errors)
    return cleaned
