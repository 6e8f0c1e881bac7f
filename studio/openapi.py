"""The public API's OpenAPI 3.1 document, generated from the pydantic models that validate its
requests and shape its answers.

Each API view declares what it answers with ``@operation(...)``, once per HTTP method. The
document is built by walking the URL resolver: a route's path and path parameters come from its
Django pattern, so they cannot drift from it, and a route under ``/api/v1/`` or ``/v1/`` whose
view declares nothing is listed by ``undeclared_routes`` (a test fails on it). ``studio``
imports no app: it finds the declarations on the views the URLconf names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import IntConverter, UUIDConverter
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from studio.json_api import ErrorBody

API_PREFIXES = ("api/v1/", "v1/")
REF = "#/components/schemas/{model}"
# What each error status means wherever it is answered; the message says the particular case.
ERRORS = {
    400: "The request is invalid; the message names each problem.",
    401: "No API key, or one that is unknown, expired or revoked (the message says which).",
    403: "The key's scope does not reach this (the message says what it lacks).",
    404: "Not found, or outside the key's reach.",
    409: "It conflicts with the current state (answered already, or no longer asked).",
    413: "The request body is larger than the limit.",
    422: "The Idempotency-Key was used for another request.",
    429: (
        "A limit of the key or its workspace is reached (requests a minute: rate_limit_exceeded; "
        "tokens a day: insufficient_quota); Retry-After says in how many seconds to try again."
    ),
    502: "The work failed on the worker (the message says why).",
    504: "No worker answered in time.",
}
# One Server-Sent Event of a stream (``id``: its sequence number, ``event``: its type, ``data``:
# the event as JSON); OpenAPI 3.1 has no item schema for streams, so the media type's schema
# describes each event, as tools that read streams (Schemathesis) take it.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string"},
        "data": {"type": "string", "description": "The event, as JSON."},
    },
}
DESCRIPTION = """The studio's public API: run published flows (JSON or Server-Sent Events),
hold conversations, manage and search knowledge bases, and the OpenAI-compatible
`/v1/chat/completions` and `/v1/embeddings`.

Authenticate with `Authorization: Bearer <key>` (an API key of a workspace, made on the
*API keys* page). A key reaches what its scopes name, within what the member who made it may
do. Errors are `{"error": {"message", "type", "code"}}`. Lists take `page` and `per_page` and
answer `{"data", "page", "per_page", "has_more"}`."""


@dataclass(frozen=True)
class Answer:
    """One answer of an operation: JSON of ``model``, Server-Sent Events (``events``), or a
    body of another media type (``media``); several may share a status."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    events: bool = False
    media: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """What one HTTP method of an API view takes and answers."""

    method: str
    summary: str
    tag: str
    answers: tuple[Answer, ...]
    description: str = ""
    body: tuple[type[BaseModel], ...] = ()  # JSON bodies (any one of them)
    form: type[BaseModel] | None = None  # a multipart/form-data body
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    public: bool = False  # no API key needed
    operation_id: str = ""


def operation(
    method: str,
    *,
    summary: str,
    tag: str,
    answers: list[Answer],
    description: str = "",
    body: type[BaseModel] | tuple[type[BaseModel], ...] = (),
    form: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    headers: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    public: bool = False,
    operation_id: str = "",
) -> Callable[[Callable], Callable]:
    """Declare one method of the decorated API view (stack one per method it answers)."""
    declared = Operation(
        method=method.upper(),
        summary=summary,
        tag=tag,
        answers=tuple(answers),
        description=description,
        body=body if isinstance(body, tuple) else (body,),
        form=form,
        query=query,
        headers=headers,
        errors=tuple(sorted(set(errors) | ({400} if body or form or query else set()))),
        public=public,
        operation_id=operation_id,
    )

    def decorate(view: Callable) -> Callable:
        view.openapi = [declared, *getattr(view, "openapi", [])]
        return view

    return decorate


def declared(view: Callable) -> list[Operation]:
    """The operations declared on ``view`` (through decorators that kept ``__wrapped__``)."""
    while view is not None:
        if hasattr(view, "openapi"):
            return view.openapi
        view = getattr(view, "__wrapped__", None)
    return []


# --- routes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    path: str  # OpenAPI's form: /api/v1/runs/{run_id}
    view: Callable
    converters: dict[str, Any]


_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def api_routes() -> list[Route]:
    """Every route of the URLconf under ``/api/v1/`` or ``/v1/``, in URLconf order."""
    return [route for route in _walk(get_resolver().url_patterns, "", {}) if route is not None]


def _walk(patterns: list, prefix: str, converters: dict[str, Any]) -> Iterator[Route | None]:
    for entry in patterns:
        route = prefix + str(entry.pattern)
        found = {**converters, **getattr(entry.pattern, "converters", {})}
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route, found)
        elif isinstance(entry, URLPattern) and route.startswith(API_PREFIXES):
            yield Route("/" + _PARAMETER.sub(r"{\1}", route), entry.callback, found)


def undeclared_routes() -> list[str]:
    """API routes whose view declares no operation."""
    return [route.path for route in api_routes() if not declared(route.view)]


def _path_schema(converter: Any) -> dict[str, Any]:
    if isinstance(converter, IntConverter):
        return {"type": "integer", "minimum": 0}
    if isinstance(converter, UUIDConverter):
        return {"type": "string", "format": "uuid"}
    return {"type": "string", "pattern": f"^{converter.regex}$"}


# --- the document ---------------------------------------------------------------------------


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], str]]:
    """The models of components: requests validated, answers serialised."""
    wanted: dict[tuple[type[BaseModel], str], None] = {(ErrorBody, "serialization"): None}
    for op in operations:
        for model in (*op.body, op.form):
            if model is not None:
                wanted[(model, "validation")] = None
        for answer in op.answers:
            if answer.model is not None:
                wanted[(answer.model, "serialization")] = None
    return list(wanted)


def _parameters(model: type[BaseModel] | None, where: str, defs: dict) -> list[dict]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF, by_alias=True)
    defs.update(schema.get("$defs", {}))
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        prop.pop("title", None)
        described = prop.pop("description", "")
        parameter = {"name": name, "in": where, "required": name in required, "schema": prop}
        if described:
            parameter["description"] = described
        parameters.append(parameter)
    return parameters


def _content(answer: Answer, refs: dict) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if answer.model is not None:
        content["application/json"] = {"schema": refs[(answer.model, "serialization")]}
    if answer.events:
        content["text/event-stream"] = {"schema": SSE_EVENT}
    if answer.media:
        kind = "object" if answer.media.endswith("json") else "string"
        content[answer.media] = {"schema": {"type": kind}}
    return content


def _responses(op: Operation, refs: dict) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for answer in op.answers:
        response: dict[str, Any] = {"description": answer.description}
        if content := _content(answer, refs):
            response["content"] = content
        if answer.headers:
            response["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in answer.headers.items()
            }
        responses[str(answer.status)] = response
    error = {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}
    for status in (*op.errors, *(() if op.public else (401, 429))):
        responses.setdefault(str(status), {"description": ERRORS[status], "content": error})
    if "429" in responses:
        retry = {"description": "Whole seconds to wait.", "schema": {"type": "integer"}}
        responses["429"].setdefault("headers", {"Retry-After": retry})
    return dict(sorted(responses.items()))


def _request_body(op: Operation, refs: dict) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if op.body:
        schemas = [refs[(model, "validation")] for model in op.body]
        content["application/json"] = {
            "schema": schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        }
    if op.form is not None:
        content["multipart/form-data"] = {"schema": refs[(op.form, "validation")]}
    return {"required": True, "content": content} if content else None


def _operation(route: Route, op: Operation, refs: dict, defs: dict) -> dict[str, Any]:
    names = _PARAMETER.findall(route.path.replace("{", "<").replace("}", ">"))
    parameters = [
        {"name": n, "in": "path", "required": True, "schema": _path_schema(route.converters[n])}
        for n in names
    ]
    parameters += _parameters(op.query, "query", defs) + _parameters(op.headers, "header", defs)
    view = route.view
    spec: dict[str, Any] = {
        "operationId": op.operation_id or f"{view.__name__}_{op.method.lower()}",
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op, refs),
    }
    if op.description:
        spec["description"] = op.description
    if parameters:
        spec["parameters"] = parameters
    if (body := _request_body(op, refs)) is not None:
        spec["requestBody"] = body
    if op.public:
        spec["security"] = []
    return spec


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared API route (built once per process: the
    URLconf does not change while it runs)."""
    routes = [(route, declared(route.view)) for route in api_routes()]
    refs_by_key, top = models_json_schema(
        _models([op for _, ops in routes for op in ops]), ref_template=REF
    )
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for route, ops in routes:
        for op in ops:
            paths.setdefault(route.path, {})[op.method.lower()] = _operation(
                route, op, refs_by_key, defs
            )
    ids = [spec["operationId"] for item in paths.values() for spec in item.values()]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"operationIds declared twice: {sorted(duplicates)}")
    tags = sorted({spec["tags"][0] for item in paths.values() for spec in item.values()})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Studio API", "version": "1", "description": DESCRIPTION},
        "tags": [{"name": tag} for tag in tags],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(defs.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key of the workspace: `Authorization: Bearer <key>`.",
                }
            },
        },
    }
