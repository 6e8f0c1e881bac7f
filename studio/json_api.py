"""Pieces every JSON API of the studio shares: errors in one shape (OpenAI's: 401 with the
reason, 403 for a scope that does not reach), request bodies validated by a pydantic schema
with a size limit, and one way to paginate a list (``page_response``). Bearer API-key
authentication is ``workspaces.authentication``'s; the OpenAPI document is ``studio.openapi``'s."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.core.exceptions import PermissionDenied
from django.core.paginator import EmptyPage, Paginator
from django.http import HttpRequest, JsonResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as SchemaError

MAX_BODY = 1_000_000
TOO_LARGE = "The request body is larger than 1 MB."

PER_PAGE_DEFAULT = 20
PER_PAGE_MAX = 100

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong, for a person to read.")
    type: str = Field(
        description="invalid_request_error, authentication_error, permission_error, "
        "server_error or timeout_error."
    )
    code: str | None = Field(
        default=None, description="A stable name of the error (model_not_found, …), or null."
    )


class ErrorBody(BaseModel):
    """Every error of the APIs, in OpenAI's shape."""

    error: ErrorDetail


def error(status: int, message: str, type_: str = "invalid_request_error", code=None):
    body = ErrorBody(error=ErrorDetail(message=message, type=type_, code=code))
    return JsonResponse(body.model_dump(), status=status)


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


# A JSON escape of NUL (an odd number of backslashes before u0000): PostgreSQL stores no NUL in
# text, so a string holding one would fail at the database, as a 500, wherever it is saved.
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_REFUSED = "The body holds a NUL character (\\u0000), which text cannot hold."


def holds_nul(json_text: bytes | str) -> bool:
    """Whether JSON text holds a NUL character (escaped, or as it is)."""
    raw = json_text.encode() if isinstance(json_text, str) else json_text
    return b"\x00" in raw or _NUL_ESCAPE.search(raw) is not None


def _raw_body(request: HttpRequest, limit: int, too_large: str) -> bytes:
    # Its declared length first: an oversized body is refused before it is read.
    if declared_length(request) > limit or len(request.body) > limit:
        raise BodyRefused(413, too_large)
    if holds_nul(request.body):
        raise BodyRefused(400, NUL_REFUSED)
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


# --- pagination -----------------------------------------------------------------------------


class PageQuery(BaseModel):
    """The query parameters of every list of the APIs."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(default=1, ge=1, description="The page to read, from 1.")
    per_page: int = Field(
        default=PER_PAGE_DEFAULT,
        ge=1,
        le=PER_PAGE_MAX,
        description=f"Items per page, 1 to {PER_PAGE_MAX}.",
    )


class Page(BaseModel, Generic[T]):
    """One page of a list: its items, where it is, and whether another page follows."""

    data: list[T]
    page: int
    per_page: int
    has_more: bool


def page_query(request: HttpRequest) -> PageQuery:
    """``?page=`` and ``?per_page=``; ``BodyRefused`` (400) for values that are not whole
    numbers in range."""
    given = {name: request.GET[name] for name in ("page", "per_page") if name in request.GET}
    try:
        return PageQuery.model_validate(given)
    except SchemaError:
        raise BodyRefused(
            400, f"page must be a whole number from 1, and per_page from 1 to {PER_PAGE_MAX}."
        ) from None


def page_response(
    request: HttpRequest,
    items: Sequence[Any],
    shape: Callable[[Any], Any],
    envelope: dict[str, Any] | None = None,
) -> JsonResponse:
    """One page of ``items`` (a queryset or a list), each item passed through ``shape``:
    ``{"data", "page", "per_page", "has_more"}`` after the keys of ``envelope``; a page past
    the end is empty. A 400 for paging values that are not whole numbers in range."""
    try:
        query = page_query(request)
    except BodyRefused as exc:
        return error(exc.status, exc.message)
    page = Paginator(items, query.per_page)
    try:
        found = page.page(query.page)
        data, more = [shape(item) for item in found], found.has_next()
    except EmptyPage:
        data, more = [], False
    answer = {"data": data, "page": query.page, "per_page": query.per_page, "has_more": more}
    return JsonResponse({**(envelope or {}), **answer})
