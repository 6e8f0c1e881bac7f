"""The REST API of knowledge bases: list, add, read, re-label and delete documents, and
retrieve. Authenticated by ``Authorization: Bearer <key>``; a key reaches the bases its scope
names in its own workspace, by slug: reading and retrieving need read, changing documents
write. Errors are JSON in the flows API's shape.

Adding a document answers at once with it ``queued``: ingestion runs on a worker, and its
progress is read back with GET. Retrieval runs on a worker too; the request waits for it.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFilesSent,
    ValidationError,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from pydantic import BaseModel, ConfigDict, Field

from knowledge import selectors
from knowledge.access import access_api_knowledge_base
from knowledge.models import Document, KnowledgeBase, SearchMode
from knowledge.retrieval import MAX_QUERY_CHARS, RetrievalOptions
from knowledge.search import MetadataFilters, Scalar
from knowledge.services import documents as services
from knowledge.services import queries
from studio import openapi
from studio.json_api import (
    NUL_REFUSED,
    BodyRefused,
    Page,
    PageQuery,
    declared_length,
    error,
    forbidden,
    holds_nul,
    page_response,
    parse_body,
    read_json,
    validate,
)
from workspaces.authentication import authenticate_sync
from workspaces.models import ApiKey

# Room for a multipart request's boundaries and its metadata field beside the file itself.
MULTIPART_SLACK = 1_000_000


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    text: str
    metadata: dict[str, Any] = {}


class UrlDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    name: str = ""
    metadata: dict[str, Any] = {}


class DocumentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, Any]


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: SearchMode | None = None
    rerank: bool | None = None
    filters: dict[str, Scalar | list[Scalar]] = {}


class FileDocument(BaseModel):
    """A multipart upload: the file, and its metadata as a JSON string."""

    file: bytes
    metadata: str = Field(default="", description="A JSON object, as text.")


class DocumentOut(BaseModel):
    id: int
    name: str
    status: str = Field(description="queued, processing, ready or failed.")
    error: str
    chunk_count: int
    metadata: dict[str, Any]
    source: str
    url: str
    size: int
    updated_at: str


class RetrieveOut(BaseModel):
    chunks: list[dict[str, Any]] = Field(description="The best chunks, best first, as citations.")
    timings_ms: dict[str, float]
    mode: str
    reranked: bool


def document_payload(document: Document) -> dict[str, Any]:
    return DocumentOut(
        id=document.id,
        name=document.name,
        status=document.status,
        error=document.error,
        chunk_count=document.chunk_count,
        metadata=document.metadata,
        source=document.source,
        url=document.url,
        size=document.size,
        updated_at=document.updated_at.isoformat(),
    ).model_dump()


def _key_base(
    request: HttpRequest, kb_slug: str, perm: str
) -> tuple[ApiKey, KnowledgeBase] | HttpResponse:
    """The key and the base it names if the key may ``perm`` on it, or the 401 / 403 / 404
    answer. Checked before the body is read: a key that may not write uploads nothing."""
    api_key = authenticate_sync(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    try:
        return api_key, access_api_knowledge_base(api_key, kb_slug, perm)
    except Http404:
        return error(404, f"No knowledge base named {kb_slug!r}.", code="knowledge_base_not_found")
    except PermissionDenied as exc:
        return forbidden(exc)


# What each method needs of the key on the base.
METHOD_PERMS = {"GET": "view", "POST": "change", "PATCH": "change", "DELETE": "change"}


def _refused(exc: ValidationError) -> JsonResponse:
    return error(400, "; ".join(exc.messages))


def _added(document: Document, queued: bool) -> JsonResponse:
    # 201: new content was stored and queued; 200: the same bytes were there already.
    return JsonResponse(document_payload(document), status=201 if queued else 200)


def _add_file(request: HttpRequest, base: KnowledgeBase, api_key: ApiKey) -> HttpResponse:
    limit = services.max_bytes()
    too_large = error(413, f"A file is at most {limit // (1024 * 1024)} MB.")
    # Refused before Django parses the body: an oversized upload is never spooled.
    if declared_length(request) > limit + MULTIPART_SLACK:
        return too_large
    try:
        upload = request.FILES.get("file")
        metadata_text = request.POST.get("metadata", "")
    except (RequestDataTooBig, TooManyFilesSent):
        return too_large
    if upload is None:
        return error(400, 'Send the file in the multipart field "file".')
    if upload.size > limit:
        return too_large
    if holds_nul(metadata_text):
        return error(400, NUL_REFUSED)
    try:
        metadata = json.loads(metadata_text) if metadata_text.strip() else {}
    except json.JSONDecodeError as exc:
        return error(400, f"metadata is not valid JSON ({exc}).")
    try:
        document, queued = services.document_add_file(
            knowledge_base=base,
            name=upload.name or "",
            data=upload.read(),
            content_type=upload.content_type or "",
            metadata=metadata,
            actor=api_key,
        )
    except ValidationError as exc:
        return _refused(exc)
    return _added(document, queued)


def _add_json(request: HttpRequest, base: KnowledgeBase, api_key: ApiKey) -> HttpResponse:
    try:
        data = read_json(request)
        schema = UrlDocument if isinstance(data, dict) and "url" in data else TextDocument
        body = validate(schema, data)
    except BodyRefused as exc:
        return error(exc.status, exc.message)
    try:
        if isinstance(body, UrlDocument):
            added = services.document_add_url(
                knowledge_base=base,
                url=body.url,
                name=body.name,
                metadata=body.metadata,
                actor=api_key,
            )
        else:
            added = services.document_add_text(
                knowledge_base=base,
                name=body.name,
                text=body.text,
                metadata=body.metadata,
                actor=api_key,
            )
    except ValidationError as exc:
        return _refused(exc)
    return _added(*added)


@openapi.operation(
    "GET",
    summary="List a knowledge base's documents",
    tag="Knowledge",
    query=PageQuery,
    answers=[openapi.Answer(200, "A page of documents, by name.", Page[DocumentOut])],
    errors=(403, 404),
)
@openapi.operation(
    "POST",
    summary="Add a document (a file, a text or a URL)",
    tag="Knowledge",
    description="Answers at once with the document queued; ingestion runs on a worker. A "
    "document of the same name is replaced.",
    body=(TextDocument, UrlDocument),
    form=FileDocument,
    answers=[
        openapi.Answer(201, "The document, queued.", DocumentOut),
        openapi.Answer(200, "The same content was there already.", DocumentOut),
    ],
    errors=(400, 403, 404, 413),
)
@csrf_exempt
@require_http_methods(["GET", "POST"])
def documents(request: HttpRequest, kb_slug: str) -> HttpResponse:
    """GET: the base's documents. POST: add one, as a multipart ``file`` (with an optional
    ``metadata`` JSON string), or as JSON ``{"name", "text", "metadata"}`` or
    ``{"url", "name"?, "metadata"}``; a document of the same name is replaced."""
    found = _key_base(request, kb_slug, METHOD_PERMS[request.method])
    if isinstance(found, HttpResponse):
        return found
    api_key, base = found
    if request.method == "GET":
        return page_response(request, selectors.documents_of(base), document_payload)
    if request.content_type == "multipart/form-data":
        return _add_file(request, base, api_key)
    return _add_json(request, base, api_key)


@openapi.operation(
    "GET",
    summary="Read a document and its ingestion status",
    tag="Knowledge",
    answers=[openapi.Answer(200, "The document.", DocumentOut)],
    errors=(403, 404),
)
@openapi.operation(
    "PATCH",
    summary="Replace a document's metadata",
    tag="Knowledge",
    body=DocumentPatch,
    answers=[openapi.Answer(200, "The document.", DocumentOut)],
    errors=(403, 404, 413),
)
@openapi.operation(
    "DELETE",
    summary="Delete a document and its chunks",
    tag="Knowledge",
    answers=[openapi.Answer(204, "Deleted.")],
    errors=(403, 404),
)
@csrf_exempt
@require_http_methods(["GET", "PATCH", "DELETE"])
def document(request: HttpRequest, kb_slug: str, document_id: int) -> HttpResponse:
    """GET: the document and its ingestion status. PATCH ``{"metadata": {...}}``: replace its
    metadata (its chunks' too). DELETE: remove it and its chunks (204)."""
    found = _key_base(request, kb_slug, METHOD_PERMS[request.method])
    if isinstance(found, HttpResponse):
        return found
    api_key, base = found
    doc = selectors.document_in(base, document_id)
    if doc is None:
        return error(404, "No such document.", code="document_not_found")
    if request.method == "DELETE":
        services.document_delete(document=doc, actor=api_key)
        return HttpResponse(status=204)
    if request.method == "PATCH":
        body = parse_body(request, DocumentPatch)
        if isinstance(body, HttpResponse):
            return body
        try:
            doc = services.document_metadata_update(
                document=doc, metadata=body.metadata, actor=api_key
            )
        except ValidationError as exc:
            return _refused(exc)
    return JsonResponse(document_payload(doc))


@openapi.operation(
    "POST",
    summary="Retrieve the chunks that best match a query",
    tag="Knowledge",
    body=RetrieveRequest,
    answers=[openapi.Answer(200, "The chunks and how long each stage took.", RetrieveOut)],
    errors=(400, 403, 404, 413, 502, 504),
)
@csrf_exempt
@require_POST
def retrieve(request: HttpRequest, kb_slug: str) -> HttpResponse:
    """``{"query", "top_k"?, "mode"?, "rerank"?, "filters"?}`` → ``{"chunks": [...],
    "timings_ms": {...}, "mode", "reranked"}``; 504 when no retrieval worker answered in time."""
    found = _key_base(request, kb_slug, "use")
    if isinstance(found, HttpResponse):
        return found
    api_key, base = found
    body = parse_body(request, RetrieveRequest)
    if isinstance(body, HttpResponse):
        return body
    try:
        filters = validate(MetadataFilters, {"filters": body.filters}).filters
    except BodyRefused as exc:
        return error(exc.status, exc.message)
    rerank = base.rerank if body.rerank is None else body.rerank
    if rerank and base.reranker_id is None:
        return error(400, f"{base.slug} has no reranker; turn rerank off or choose one.")
    options = RetrievalOptions(
        top_k=body.top_k, mode=body.mode, rerank=body.rerank, filters=filters
    )
    job_id = queries.query_start(
        knowledge_base=base, query=body.query, options=options, api_key=api_key
    )
    try:
        reply = queries.query_wait(job_id)
    except queries.QueryTimeout as exc:
        return error(504, str(exc), "timeout_error", "retrieval_timeout")
    if reply.get("error"):
        return error(502, reply["error"], "server_error", "retrieval_failed")
    result = reply["result"]
    return JsonResponse(
        {
            "chunks": result["chunks"],
            "timings_ms": result["timings_ms"],
            "mode": result["mode"],
            "reranked": result["reranked"],
        }
    )
