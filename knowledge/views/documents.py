"""Pages of a knowledge base's documents: the base's page with its documents table (which
follows the base's document events while any document is being ingested) and the forms that
add documents, and a document's page with its metadata and its chunks, each editable in place.

Document text is untrusted: templates only ever show it escaped.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from knowledge import events, selectors
from knowledge.access import access_chunk, access_document, access_knowledge_base
from knowledge.forms import (
    ChunkForm,
    ChunkToggleForm,
    MetadataForm,
    TextForm,
    UploadForm,
    UrlForm,
    key_values_text,
)
from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.parsers import supported_extensions
from knowledge.services import chunks as chunk_services
from knowledge.services import documents as services
from studio import access
from studio.htmx import render_page_or_partial, wants_partial
from studio.sse import sse_response

DETAIL = "knowledge/detail.html"
DOCUMENT = "knowledge/document.html"
CHUNKS_PER_PAGE = 50


def _render_detail(request: HttpRequest, base: KnowledgeBase, status: int = 200, **forms):
    actions = access.object_actions(request.user, base)
    documents = list(selectors.documents_of(base))
    context = {
        "workspace": base.workspace,
        "base": base,
        "documents": documents,
        "in_progress": any(d.in_progress for d in documents),
        "can_change": "change" in actions,
        "can_delete": "delete" in actions,
        "can_share": "share" in actions,
        "can_use": "use" in actions,
        "upload_form": forms.get("upload_form") or UploadForm(),
        "text_form": forms.get("text_form") or TextForm(),
        "url_form": forms.get("url_form") or UrlForm(),
        "max_mb": settings.STUDIO_KNOWLEDGE_MAX_FILE_MB,
        "warn_chunks": services.PASTE_WARN_CHUNKS,
        "extensions": supported_extensions(),
        "notice": forms.get("notice", ""),
    }
    return render_page_or_partial(
        request, DETAIL, context, partial="documents", target="documents", status=status
    )


def _done(request: HttpRequest, base_id: int, error: str = "") -> HttpResponse:
    """After a change from the documents table: the table again for htmx (with the error, if
    any), else back to the base's page with the error as a message."""
    if wants_partial(request, "documents"):
        base = access_knowledge_base(request.user, base_id, "view")
        return _render_detail(request, base, status=400 if error else 200, notice=error)
    if error:
        messages.error(request, error)
    return redirect("knowledge:kb-detail", knowledge_base_id=base_id)


@login_required
@require_GET
def kb_detail(request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
    """The base's page; its table alone is fetched again on each event while any document is
    in progress."""
    base = access_knowledge_base(request.user, knowledge_base_id, "view")
    return _render_detail(request, base)


@login_required
@require_GET
async def kb_events(request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
    """The base's document changes as Server-Sent Events, which its page follows while any
    document is in progress (``knowledge.events``)."""
    user = await request.auser()
    base = await sync_to_async(access_knowledge_base)(user, knowledge_base_id, "view")
    return sse_response(events.document_frames(knowledge_base_id=base.id))


def _add_files(base: KnowledgeBase, files: list[UploadedFile], metadata: dict, actor):
    """Each file through ``document_add_file`` on its own: ([(document, queued)], [error])."""
    added, refused = [], []
    for upload in files:
        if upload.size > services.max_bytes():
            # Refused before reading: an oversized upload is never held in memory.
            limit = settings.STUDIO_KNOWLEDGE_MAX_FILE_MB
            refused.append(f"{upload.name} is larger than {limit} MB; split it")
            continue
        try:
            added.append(
                services.document_add_file(
                    knowledge_base=base,
                    name=upload.name or "",
                    data=upload.read(),
                    content_type=upload.content_type or "",
                    metadata=metadata,
                    actor=actor,
                )
            )
        except ValidationError as exc:
            text = "; ".join(exc.messages)
            refused.append(
                text if upload.name and upload.name in text else f"{upload.name}: {text}"
            )
    return added, refused


def _added_message(added: list[tuple[Document, bool]]) -> str:
    queued = [d.name for d, was_queued in added if was_queued]
    same = [d.name for d, was_queued in added if not was_queued]
    parts = []
    if queued:
        parts.append(f"Added {', '.join(queued)}: ingestion has started.")
    if same:
        parts.append(f"{', '.join(same)} did not change: nothing to ingest.")
    return " ".join(parts)


@login_required
@require_POST
def documents_upload(request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
    """Add any number of files; one refused file does not refuse the others. Nothing stored:
    the page again (400) with each file's error."""
    base = access_knowledge_base(request.user, knowledge_base_id, "change")
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render_detail(request, base, status=400, upload_form=form)
    added, refused = _add_files(
        base, form.cleaned_data["files"], form.cleaned_data["metadata"], request.user
    )
    if not added:
        for error in refused:
            form.add_error("files", error)
        return _render_detail(request, base, status=400, upload_form=form)
    messages.success(request, _added_message(added))
    for error in refused:
        messages.error(request, error)
    return redirect("knowledge:kb-detail", knowledge_base_id=base.id)


def _add_one(request: HttpRequest, knowledge_base_id: int, form_class, add, form_name: str):
    """Add one document from ``form_class`` with the service ``add``; back to the base's page,
    or its page again with the form's errors (400)."""
    base = access_knowledge_base(request.user, knowledge_base_id, "change")
    form = form_class(request.POST)
    if form.is_valid():
        try:
            added = add(knowledge_base=base, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _added_message([added]))
            return redirect("knowledge:kb-detail", knowledge_base_id=base.id)
    return _render_detail(request, base, status=400, **{form_name: form})


@login_required
@require_POST
def documents_add_text(request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
    return _add_one(request, knowledge_base_id, TextForm, services.document_add_text, "text_form")


@login_required
@require_POST
def documents_add_url(request: HttpRequest, knowledge_base_id: int) -> HttpResponse:
    return _add_one(request, knowledge_base_id, UrlForm, services.document_add_url, "url_form")


@login_required
@require_POST
def document_reingest_view(request: HttpRequest, document_id: int) -> HttpResponse:
    document = access_document(request.user, document_id, "change")
    try:
        services.document_reingest(document=document, actor=request.user)
    except ValidationError as exc:
        return _done(request, document.knowledge_base_id, "; ".join(exc.messages))
    if not request.htmx:
        messages.success(request, f"Ingesting {document.name} again.")
    return _done(request, document.knowledge_base_id)


@login_required
@require_POST
def document_cancel_view(request: HttpRequest, document_id: int) -> HttpResponse:
    """Stop a document's ingestion (a change to its base, as adding is): its worker stops at its
    next batch and its partial chunks go."""
    document = access_document(request.user, document_id, "change")
    if not services.document_cancel(document=document, actor=request.user):
        return _done(request, document.knowledge_base_id, f"{document.name} was not being ingested")
    if not request.htmx:
        messages.success(request, f"Cancelled the ingestion of {document.name}.")
    if request.POST.get("next") == "document":
        return redirect("knowledge:document-detail", document_id=document.id)
    return _done(request, document.knowledge_base_id)


@login_required
@require_POST
def document_remove(request: HttpRequest, document_id: int) -> HttpResponse:
    """Delete a document and its chunks: a change to its base (``change``), as adding is."""
    document = access_document(request.user, document_id, "change")
    services.document_delete(document=document, actor=request.user)
    if not request.htmx:
        messages.success(request, f"Deleted {document.name} and its chunks.")
    return _done(request, document.knowledge_base_id)


# --- a document's page ------------------------------------------------------------------------


def _render_document(
    request: HttpRequest,
    document: Document,
    *,
    metadata_form: MetadataForm | None = None,
    failed_chunk: Chunk | None = None,
    status: int = 200,
) -> HttpResponse:
    base = document.knowledge_base
    can_change = access.has_perm(request.user, base, "change")
    if wants_partial(request, "document-status"):
        context = {"document": document, "can_change": can_change}
        return render(request, f"{DOCUMENT}#status", context)
    page = Paginator(selectors.document_chunks(document), CHUNKS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    if failed_chunk is not None:
        # The refused edit is shown in place, with its error and the text as typed.
        chunks = [failed_chunk if c.id == failed_chunk.id else c for c in page.object_list]
    else:
        chunks = list(page.object_list)
    context = {
        "workspace": base.workspace,
        "base": base,
        "document": document,
        "page": page,
        "chunks": chunks,
        "can_change": can_change,
        "metadata_form": metadata_form
        or MetadataForm(initial={"metadata": key_values_text(document.metadata)}),
    }
    return render(request, DOCUMENT, context, status=status)


@login_required
@require_GET
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    """A document: its status (fetched again on each of its events while in progress), metadata
    and chunks (50 a page)."""
    document = access_document(request.user, document_id, "view")
    return _render_document(request, document)


@login_required
@require_GET
async def document_events(request: HttpRequest, document_id: int) -> HttpResponse:
    """A document's changes as Server-Sent Events, which its page follows while it is in
    progress (``knowledge.events``)."""
    user = await request.auser()
    document = await sync_to_async(access_document)(user, document_id, "view")
    frames = events.document_frames(
        knowledge_base_id=document.knowledge_base_id, document_id=document.id
    )
    return sse_response(frames)


@login_required
@require_POST
def document_metadata(request: HttpRequest, document_id: int) -> HttpResponse:
    document = access_document(request.user, document_id, "change")
    form = MetadataForm(request.POST)
    if form.is_valid():
        try:
            services.document_metadata_update(
                document=document, metadata=form.cleaned_data["metadata"], actor=request.user
            )
        except ValidationError as exc:
            form.add_error("metadata", exc)
        else:
            messages.success(request, f"Saved the metadata of {document.name}.")
            return redirect("knowledge:document-detail", document_id=document.id)
    return _render_document(request, document, metadata_form=form, status=400)


def _chunk_done(
    request: HttpRequest, chunk: Chunk, errors: list[str] | None = None, draft: str = ""
) -> HttpResponse:
    """The chunk's part of the page for htmx (its errors shown in place); else the document's
    page, at the chunk."""
    chunk.errors, chunk.draft = errors or [], draft
    status = 400 if errors else 200
    if wants_partial(request):
        context = {"chunk": chunk, "can_change": True}
        return render(request, f"{DOCUMENT}#chunk", context, status=status)
    if errors:
        return _render_document(request, chunk.document, failed_chunk=chunk, status=status)
    page = chunk.position // CHUNKS_PER_PAGE + 1
    url = reverse("knowledge:document-detail", args=[chunk.document_id])
    return redirect(f"{url}?page={page}#chunk-{chunk.id}")


@login_required
@require_POST
def chunk_edit(request: HttpRequest, chunk_id: int) -> HttpResponse:
    """Replace a chunk's text: searchable by keywords at once, by meaning once re-embedded."""
    chunk = access_chunk(request.user, chunk_id, "change")
    form = ChunkForm(request.POST)
    if not form.is_valid():
        errors = [e for field_errors in form.errors.values() for e in field_errors]
        return _chunk_done(request, chunk, errors, request.POST.get("text", ""))
    try:
        updated = chunk_services.chunk_update(
            chunk=chunk, text=form.cleaned_data["text"], actor=request.user
        )
    except ValidationError as exc:
        return _chunk_done(request, chunk, exc.messages, form.cleaned_data["text"])
    return _chunk_done(request, updated)


@login_required
@require_POST
def chunk_toggle(request: HttpRequest, chunk_id: int) -> HttpResponse:
    """Turn a chunk off (retrieval skips it) or on again."""
    chunk = access_chunk(request.user, chunk_id, "change")
    form = ChunkToggleForm(request.POST)
    if not form.is_valid():
        return _chunk_done(request, chunk, ["Say whether the chunk is to be on or off."])
    updated = chunk_services.chunk_update(
        chunk=chunk, enabled=form.cleaned_data["enabled"], actor=request.user
    )
    return _chunk_done(request, updated)
