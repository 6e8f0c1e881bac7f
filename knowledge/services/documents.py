"""Writes of documents: add a file, a pasted text or a URL, replace, re-ingest, edit metadata,
delete. Ingestion itself runs on a worker (``knowledge/services/ingestion.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as SchemaError

from knowledge import events
from knowledge.models import (
    IN_PROGRESS,
    Chunk,
    Document,
    DocumentSource,
    DocumentStatus,
    KnowledgeBase,
)
from knowledge.parsers import parser_for
from knowledge.parsers.base import ParseError
from knowledge.selectors import ingestion_queue
from knowledge.services.stats import stats_add
from studio.celery import app
from workspaces.audit import audit_record

INGEST_TASK = "workers.tasks.ingest_document"
# A paste is held in the page, the request and the form: a larger text goes in as a file.
MAX_PASTE_CHARS = 200_000
# Past about this many chunks the paste form warns that ingestion will take a while.
PASTE_WARN_CHUNKS = 500
MetadataValue = str | int | float | bool


class DocumentMetadata(BaseModel):
    """Key/value metadata of a document: filterable in retrieval, shown with citations."""

    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, max_length=50)

    @field_validator("metadata")
    @classmethod
    def _sizes(cls, value: dict) -> dict:
        for key, item in value.items():
            if not key.strip() or len(key) > 100:
                raise ValueError("metadata keys are 1 to 100 characters")
            if isinstance(item, str) and len(item) > 1000:
                raise ValueError(f"metadata {key!r}: values are at most 1,000 characters")
        return value


def metadata_clean(metadata: Any) -> dict[str, MetadataValue]:
    """Validated metadata, or ValidationError naming the problem."""
    try:
        return DocumentMetadata(metadata=metadata or {}).metadata
    except SchemaError as exc:
        raise ValidationError(
            [e["msg"].removeprefix("Value error, ") for e in exc.errors()]
        ) from None


def max_bytes() -> int:
    return settings.STUDIO_KNOWLEDGE_MAX_FILE_MB * 1024 * 1024


def _clean_name(name: str) -> str:
    name = PurePosixPath(name.replace("\\", "/")).name.strip()
    if not name or name in {".", ".."}:
        raise ValidationError("the document needs a name")
    if len(name) > 300:
        raise ValidationError("a document name is at most 300 characters")
    return name


def _snapshot(document: Document) -> dict:
    return {
        "name": document.name,
        "source": document.source,
        "url": document.url,
        "size": document.size,
        "content_hash": document.content_hash,
        "metadata": document.metadata,
    }


def _enqueue(document: Document) -> None:
    queue = ingestion_queue(document.knowledge_base)
    document_id = document.id
    transaction.on_commit(lambda: app.send_task(INGEST_TASK, args=[document_id], queue=queue))


def _store(
    *,
    knowledge_base: KnowledgeBase,
    name: str,
    source: str,
    data: bytes,
    content_type: str,
    metadata: dict,
    url: str = "",
    actor=None,
) -> tuple[Document, bool]:
    """Create the document or replace its content; (document, whether ingestion was queued).

    A re-upload of the same bytes changes nothing. A changed one keeps the previous content
    searchable until the new one is fully embedded.
    """
    digest = hashlib.sha256(data).hexdigest() if data else ""
    with transaction.atomic():
        document = (
            Document.objects.select_for_update()
            .filter(knowledge_base=knowledge_base, name=name)
            .first()
        )
        replacing = document is not None
        if document is not None and document.in_progress:
            raise ValidationError(f"{name} is being ingested; wait until it finishes")
        if document is not None and digest and document.content_hash == digest:
            if metadata != document.metadata:
                document_metadata_update(document=document, metadata=metadata, actor=actor)
            return document, False
        before = _snapshot(document) if document else None
        document = document or Document(knowledge_base=knowledge_base, name=name)
        old_file = document.file.name if document.file else ""
        document.source, document.url, document.content_type = source, url, content_type
        document.size, document.content_hash = len(data), digest
        document.metadata = metadata
        document.status, document.error, document.attempts = DocumentStatus.QUEUED, "", 0
        document.created_by = document.created_by or _user(actor)
        if data:
            document.file.save(name, ContentFile(data), save=False)
        document.save()
        if old_file and old_file != document.file.name:
            storage = document.file.storage
            transaction.on_commit(lambda: storage.delete(old_file))
        audit_record(
            workspace=knowledge_base.workspace_id,
            actor=actor,
            action="document.replace" if replacing else "document.add",
            target=document,
            before=before,
            after=_snapshot(document),
        )
        _enqueue(document)
    return document, True


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


def document_add_file(
    *,
    knowledge_base: KnowledgeBase,
    name: str,
    data: bytes,
    content_type: str = "",
    metadata: Any = None,
    actor=None,
) -> tuple[Document, bool]:
    """Add (or replace) an uploaded file; ValidationError for a type no parser reads, a file
    over the size limit, or bad metadata. Nothing is stored when it is refused."""
    name = _clean_name(name)
    if len(data) > max_bytes():
        raise ValidationError(
            f"{name} is larger than {settings.STUDIO_KNOWLEDGE_MAX_FILE_MB} MB; split it"
        )
    if not data:
        raise ValidationError(f"{name} is empty")
    try:
        parser_for(name, content_type)
    except ParseError as exc:
        raise ValidationError(str(exc)) from None
    return _store(
        knowledge_base=knowledge_base,
        name=name,
        source=DocumentSource.FILE,
        data=data,
        content_type=content_type,
        metadata=metadata_clean(metadata),
        actor=actor,
    )


def paste_too_long(text: str) -> str:
    """Why ``text`` is too long to paste, in words naming the limit, or ""."""
    if len(text) <= MAX_PASTE_CHARS:
        return ""
    return (
        f"the pasted text is {len(text):,} characters; a paste is at most "
        f"{MAX_PASTE_CHARS:,} characters: upload it as a file for more"
    )


def paste_check(text: str) -> None:
    if reason := paste_too_long(text):
        raise ValidationError(reason)


def document_add_text(
    *,
    knowledge_base: KnowledgeBase,
    name: str,
    text: str,
    metadata: Any = None,
    actor=None,
) -> tuple[Document, bool]:
    """Add pasted text; a name ending in ``.md`` is read as Markdown, anything else as text."""
    name = _clean_name(name)
    if not name.lower().endswith((".md", ".markdown", ".txt")):
        name += ".txt"
    if not text.strip():
        raise ValidationError("the text is empty")
    paste_check(text)
    markdown = name.lower().endswith((".md", ".markdown"))
    return _store(
        knowledge_base=knowledge_base,
        name=name,
        source=DocumentSource.TEXT,
        data=text.encode(),
        content_type="text/markdown" if markdown else "text/plain",
        metadata=metadata_clean(metadata),
        actor=actor,
    )


def url_clean(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError("enter an http:// or https:// address")
    if len(url) > 2000:
        raise ValidationError("an address is at most 2,000 characters")
    if parts.username or parts.password:
        raise ValidationError("an address must not hold a user name or password")
    return url


def document_add_url(
    *,
    knowledge_base: KnowledgeBase,
    url: str,
    name: str = "",
    metadata: Any = None,
    actor=None,
) -> tuple[Document, bool]:
    """Add a web page; a worker fetches it through the SSRF-safe client when it ingests it (and
    again on every re-ingestion)."""
    url = url_clean(url)
    parts = urlsplit(url)
    name = _clean_name(name or f"{parts.hostname}{parts.path}".rstrip("/").replace("/", "_"))
    return _store(
        knowledge_base=knowledge_base,
        name=name,
        source=DocumentSource.URL,
        data=b"",
        content_type="",
        url=url,
        metadata=metadata_clean(metadata),
        actor=actor,
    )


def document_reingest(*, document: Document, actor=None) -> Document:
    """Ingest the document again (after a failure, a chunking change, or to re-fetch a URL)."""
    with transaction.atomic():
        updated = Document.objects.filter(id=document.id).exclude(
            status__in=[DocumentStatus.QUEUED, DocumentStatus.PARSING, DocumentStatus.EMBEDDING]
        )
        if not updated.update(status=DocumentStatus.QUEUED, error="", attempts=0):
            raise ValidationError(f"{document.name} is already being ingested")
        document.refresh_from_db()
        audit_record(
            workspace=document.knowledge_base.workspace_id,
            actor=actor,
            action="document.reingest",
            target=document,
        )
        _enqueue(document)
    return document


def document_cancel(*, document: Document, actor=None) -> bool:
    """Stop the document's ingestion: its worker sees the status at its next batch and stops
    (``Superseded``); the partial chunks of the running generation go now, and any the worker
    writes meanwhile when it stops. A previous generation stays searchable. False if it was no
    longer being ingested."""
    with transaction.atomic():
        cancelled = Document.objects.filter(id=document.id, status__in=IN_PROGRESS).update(
            status=DocumentStatus.CANCELLED, error="Cancelled before it finished."
        )
        if not cancelled:
            return False
        document.refresh_from_db()
        Chunk.objects.filter(
            document=document, generation=document.generation, searchable=False
        ).delete()
        audit_record(
            workspace=document.knowledge_base.workspace_id,
            actor=actor,
            action="document.cancel",
            target=document,
        )
        events.document_changed(
            document_id=document.id, knowledge_base_id=document.knowledge_base_id
        )
    return True


def document_metadata_update(*, document: Document, metadata: Any, actor=None) -> Document:
    metadata = metadata_clean(metadata)
    with transaction.atomic():
        before = _snapshot(document)
        document.metadata = metadata
        document.save(update_fields=["metadata", "updated_at"])
        Chunk.objects.filter(document=document).update(metadata=metadata)
        audit_record(
            workspace=document.knowledge_base.workspace_id,
            actor=actor,
            action="document.change",
            target=document,
            before=before,
            after=_snapshot(document),
        )
    return document


def document_delete(*, document: Document, actor=None) -> None:
    """Delete the document and its chunks (and its stored file, once committed)."""
    with transaction.atomic():
        knowledge_base = KnowledgeBase.objects.select_for_update().get(
            id=document.knowledge_base_id
        )
        stats_add(knowledge_base, Chunk.objects.filter(document=document, searchable=True), -1)
        audit_record(
            workspace=knowledge_base.workspace_id,
            actor=actor,
            action="document.delete",
            target=document,
            before=_snapshot(document),
        )
        file_name, storage = document.file.name, document.file.storage
        document.delete()
        if file_name:
            transaction.on_commit(lambda: storage.delete(file_name))
