"""Pieces every JSON API of the studio shares: errors in one shape (OpenAI's: 401 with the
reason, 403 for a scope that does not reach), and request bodies validated by a pydantic schema
with a size limit. Bearer API-key authentication is ``workspaces.authentication``'s."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from pydantic import BaseModel
from pydantic import ValidationError as SchemaError

MAX_BODY = 1_000_000
TOO_LARGE = "The request body is larger than 1 MB."

M = TypeVar("M", bound=BaseModel)


def error(status: int, message: str, type_: str = "invalid_request_error", code=None):
    return JsonResponse({"error": {"message": message, "type": type_, "code": code}}, status=status)


def unauthorized(message: str = "Missing or invalid API key.") -> JsonResponse:
    response = error(401, message, "authentication_error", "invalid_api_key")
    response["WWW-Authenticate"] = 'Bearer realm="studio"'
    return response


def forbidden(exc: PermissionDenied) -> JsonResponse:
    """The 403 for a key whose scope does not reach: the access layer's reason."""
    message = str(exc) or "This API key may not do that."
    return error(403, message, "permission_error", "insufficient_scope")


class BodyRefused(Exception):
    """Why a JSON request body was refused: the status and the message to answer with.

    Raised by the readers below, so that each kind of endpoint answers in its own shape (the
    APIs' OpenAI-style error, the editor's ``{"error": …}``) with the same reasons."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def declared_length(request: HttpRequest) -> int:
    """The body's ``Content-Length`` (0 when missing or unreadable)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _raw_body(request: HttpRequest, limit: int, too_large: str) -> bytes:
    # Its declared length first: an oversized body is refused before it is read.
    if declared_length(request) > limit or len(request.body) > limit:
        raise BodyRefused(413, too_large)
    return request.body or b"{}"


def schema_problems(exc: SchemaError) -> str:
    """A pydantic error as one line: ``field.path: message; …``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
    )


def read_body(
    request: HttpRequest, schema: type[M], *, limit: int = MAX_BODY, too_large: str = TOO_LARGE
) -> M:
    """The request's JSON body validated by ``schema`` (an empty body is ``{}``).

    Raises ``BodyRefused``: 413 with ``too_large`` past ``limit`` bytes, 400 naming each
    problem for a body that is not JSON or not the schema."""
    raw = _raw_body(request, limit, too_large)
    try:
        return schema.model_validate_json(raw)
    except SchemaError as exc:
        raise BodyRefused(400, f"Invalid request: {schema_problems(exc)}") from None


def read_json(request: HttpRequest, *, limit: int = MAX_BODY, too_large: str = TOO_LARGE) -> Any:
    """The request's JSON body, parsed but not validated: for a caller that picks the schema by
    what the body holds (then ``validate``). Raises ``BodyRefused`` as ``read_body`` does."""
    raw = _raw_body(request, limit, too_large)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BodyRefused(400, f"The body is not valid JSON ({exc}).") from None


def validate(schema: type[M], data: Any) -> M:
    """``data`` validated by ``schema``; ``BodyRefused`` (400) naming each problem."""
    try:
        return schema.model_validate(data)
    except SchemaError as exc:
        raise BodyRefused(400, f"Invalid request: {schema_problems(exc)}") from None


def parse_body(request: HttpRequest, schema: type[M]) -> M | JsonResponse:
    """The request's JSON body validated by ``schema``, or the API's error response."""
    try:
        return read_body(request, schema)
    except BodyRefused as exc:
        return error(exc.status, exc.message)
