"""Ingestion of one document on a worker: fetch (URLs), parse (in a bounded child process), chunk,
embed in batches, then make the new chunks searchable in one transaction.

Durability: each ingestion claims the document with a conditional UPDATE (``queued`` →
``parsing``) and starts a new ``generation``; its chunks are written unsearchable. A worker that
dies leaves an unsearchable partial generation and a stale heartbeat; the maintenance reaper
(``documents_requeue_stale``) queues the document again, and the next generation reuses every
embedding already computed (the embedding cache, by content hash), so it resumes where the dead
one stopped. After ``MAX_ATTEMPTS`` the document fails with the reason. The previous generation,
if any, stays searchable until the new one replaces it, so a document is never half searchable.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import PurePosixPath

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from pgvector import Vector

from knowledge import events, vector_index
from knowledge.archives import ArchiveLimits
from knowledge.chunking import ChunkDraft, ChunkSettings, chunk_sections
from knowledge.keywords import chunk_terms
from knowledge.models import (
    IN_PROGRESS,
    Chunk,
    Document,
    DocumentSource,
    DocumentStatus,
    KnowledgeBase,
)
from knowledge.parse_process import ParseLimits, parse_bounded
from knowledge.parsers.base import ParseError
from knowledge.selectors import ingestion_queue
from knowledge.services.embeddings import Embed, EmbeddingCountError, embeddings_for
from knowledge.services.stats import stats_add
from studio import egress
from studio.celery import app

log = logging.getLogger(__name__)

BATCH = 32
MAX_ATTEMPTS = 3
QUEUED_PATIENCE = 15
# Fetched pages: their content type decides the parser when the address names no file type.
_EXTENSION_FOR_TYPE = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "application/pdf": ".pdf",
    "text/markdown": ".md",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}


class IngestionError(Exception):
    """Why a document cannot be ingested, in words for the person who added it."""


class Superseded(Exception):
    """The document was deleted or re-queued while this ingestion ran: stop quietly."""


def document_claim(document_id: int) -> Document | None:
    """Start a new generation of a queued document, or None (another worker has it, or it is
    not queued)."""
    now = timezone.now()
    claimed = Document.objects.filter(id=document_id, status=DocumentStatus.QUEUED).update(
        status=DocumentStatus.PARSING,
        generation=F("generation") + 1,
        attempts=F("attempts") + 1,
        heartbeat_at=now,
        embedded_count=0,
        reused_count=0,
        error="",
    )
    if not claimed:
        return None
    document = Document.objects.select_related(
        "knowledge_base", "knowledge_base__embedding_model"
    ).get(id=document_id)
    _changed(document)
    return document


def document_ingest(*, document_id: int, embed: Embed) -> None:
    """Ingest a queued document; ``embed(model, texts)`` returns one vector per text.

    Failures the user can act on (a parse error, a refused URL) fail the document with the
    reason; anything else fails it too, with the error's text, after logging the traceback.
    """
    document = document_claim(document_id)
    if document is None:
        return
    try:
        with _Heartbeat(document):
            drafts = _drafts(document)
            _embed_all(document, drafts, embed)
        _publish(document)
    except Superseded:
        log.info("ingestion of document %s superseded", document_id)
        _drop_if_cancelled(document)
    except (IngestionError, ParseError) as exc:
        _fail(document, str(exc))
    except Exception as exc:
        log.exception("ingestion of document %s failed", document_id)
        _fail(document, f"ingestion failed: {exc}")


class _Heartbeat:
    """Beats the document's heartbeat from a thread while the ingestion works (parsing a large
    file, loading the embedding model, one long batch), so the reaper tells slow from dead."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ingest-heartbeat", daemon=True)

    def _run(self) -> None:
        try:
            while not self.stopped.wait(settings.STUDIO_HEARTBEAT_S):
                Document.objects.filter(
                    id=self.document.id,
                    generation=self.document.generation,
                    status__in=IN_PROGRESS,
                ).update(heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()


def document_refuse(*, document_id: int, reason: str) -> None:
    """Fail a queued document without ingesting it (its task may not run it)."""
    refused = Document.objects.filter(id=document_id, status=DocumentStatus.QUEUED)
    base_id = refused.values_list("knowledge_base_id", flat=True).first()
    if refused.update(status=DocumentStatus.FAILED, error=reason[:2000]):
        events.document_changed(document_id=document_id, knowledge_base_id=base_id)


def _changed(document: Document) -> None:
    """Tell the document's pages that its status or progress changed (after the commit)."""
    events.document_changed(document_id=document.id, knowledge_base_id=document.knowledge_base_id)


def _beat(document: Document, **fields) -> None:
    """Record progress; Superseded if the document is gone or a newer generation started."""
    updated = Document.objects.filter(
        id=document.id, generation=document.generation, status__in=IN_PROGRESS
    ).update(heartbeat_at=timezone.now(), **fields)
    if not updated:
        raise Superseded
    _changed(document)


def _content(document: Document) -> tuple[str, str, bytes]:
    """(file name, content type, bytes) to parse: the stored file, or the page fetched now."""
    if document.source != DocumentSource.URL:
        return document.name, document.content_type, _stored_bytes(document)
    limit = settings.STUDIO_KNOWLEDGE_MAX_FILE_MB * 1024 * 1024
    try:
        with egress.client(follow_redirects=True, max_redirects=5) as client:
            with client.stream("GET", document.url) as response:
                if response.status_code >= 400:
                    raise IngestionError(
                        f"fetching {document.url} answered HTTP {response.status_code}"
                    )
                data = egress.read_limited(response.iter_bytes(), limit)
                content_type = response.headers.get("content-type", "").split(";")[0].strip()
    except egress.EgressRefused as exc:
        raise IngestionError(f"the address was refused: {exc}") from None
    except httpx.HTTPError as exc:
        raise IngestionError(f"could not fetch {document.url}: {exc}") from None
    name = document.name
    if not PurePosixPath(name).suffix and content_type in _EXTENSION_FOR_TYPE:
        name += _EXTENSION_FOR_TYPE[content_type]
    Document.objects.filter(id=document.id).update(size=len(data), content_type=content_type)
    return name, content_type, data


def _stored_bytes(document: Document) -> bytes:
    """The document's original bytes, through the storage (a local folder or a bucket, perhaps
    on another machine than the upload's). What the storage says on failure may name internal
    hosts and paths: it goes to the log, the user gets what to do."""
    try:
        with document.file.open("rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise IngestionError(
            f"the stored file of {document.name} is missing; upload it again"
        ) from None
    except Exception:
        log.exception("reading the stored file %r failed", document.file.name)
        raise IngestionError(
            f"the stored file of {document.name} could not be read; reingest it later"
        ) from None


def _drafts(document: Document) -> list[ChunkDraft]:
    name, content_type, data = _content(document)
    # In a child process under memory and time limits: a hostile file fails only itself.
    sections = parse_bounded(name, content_type, data, _parse_limits())
    base = document.knowledge_base
    drafts = chunk_sections(
        sections,
        ChunkSettings(
            splitter=base.splitter, chunk_size=base.chunk_size, chunk_overlap=base.chunk_overlap
        ),
    )
    if not drafts:
        raise IngestionError(f"no text found in {document.name}")
    _beat(document, status=DocumentStatus.EMBEDDING, chunk_count=len(drafts))
    return drafts


def _parse_limits() -> ParseLimits:
    return ParseLimits(
        memory_mb=settings.STUDIO_KNOWLEDGE_PARSE_MEMORY_MB,
        timeout_s=settings.STUDIO_KNOWLEDGE_PARSE_TIMEOUT_S,
        archive=ArchiveLimits(
            max_members=settings.STUDIO_KNOWLEDGE_ARCHIVE_MAX_MEMBERS,
            max_unpacked_mb=settings.STUDIO_KNOWLEDGE_ARCHIVE_MAX_MB,
            max_ratio=settings.STUDIO_KNOWLEDGE_ARCHIVE_MAX_RATIO,
        ),
    )


def _embed_all(document: Document, drafts: list[ChunkDraft], embed: Embed) -> None:
    base = document.knowledge_base
    # BM25's document-side weights need the corpus's average length: the base's, or this
    # document's own for the first document of a base.
    average = base.average_length or (
        sum(chunk_terms(d.text, 1.0).length for d in drafts) / len(drafts)
    )
    embedded = reused = 0
    for start in range(0, len(drafts), BATCH):
        batch = drafts[start : start + BATCH]
        try:
            cached, from_cache = embeddings_for(
                knowledge_base=base, texts={d.content_hash: d.text for d in batch}, embed=embed
            )
        except EmbeddingCountError as exc:
            raise IngestionError(str(exc)) from None
        rows = []
        for draft in batch:
            vector = cached[draft.content_hash]
            terms = chunk_terms(draft.text, average)
            rows.append(
                Chunk(
                    knowledge_base=base,
                    document=document,
                    generation=document.generation,
                    position=draft.position,
                    text=draft.text,
                    content_hash=draft.content_hash,
                    page=draft.page,
                    section=draft.section[:500],
                    metadata=document.metadata,
                    dimensions=len(vector),
                    embedding=Vector(list(vector)),
                    terms=terms.terms,
                    bm25=terms.weights,
                    length=terms.length,
                )
            )
        with transaction.atomic():
            # A retried generation may already hold some positions (never, with the claim's
            # new generation number; kept for safety against a repeated batch).
            Chunk.objects.filter(
                document=document,
                generation=document.generation,
                position__in=[d.position for d in batch],
            ).delete()
            Chunk.objects.bulk_create(rows)
        embedded += len(batch)
        reused += sum(1 for d in batch if d.content_hash in from_cache)
        _beat(document, embedded_count=embedded, reused_count=reused)


def _publish(document: Document) -> None:
    """Swap generations in one transaction: the new chunks become searchable, the old go."""
    new = Chunk.objects.filter(document=document, generation=document.generation)
    dims = new.values_list("dimensions", flat=True).first()
    if dims:
        vector_index.ensure(dims)
    with transaction.atomic():
        base = KnowledgeBase.objects.select_for_update().get(id=document.knowledge_base_id)
        current = (
            Document.objects.select_for_update()
            .filter(id=document.id, generation=document.generation, status__in=IN_PROGRESS)
            .first()
        )
        if current is None:
            raise Superseded
        if base.dimensions is None and dims:
            base.dimensions = dims
            KnowledgeBase.objects.filter(id=base.id).update(dimensions=dims)
        elif dims and dims != base.dimensions:
            raise IngestionError(
                f"the embedding model now gives {dims} dimensions, the base holds "
                f"{base.dimensions}: re-create the knowledge base to change models"
            )
        stats_add(base, Chunk.objects.filter(document=document, searchable=True), -1)
        Chunk.objects.filter(document=document).exclude(generation=document.generation).delete()
        new.update(searchable=True)
        stats_add(base, new)
        Document.objects.filter(id=document.id).update(
            status=DocumentStatus.READY,
            searchable=True,
            chunk_count=new.count(),
            ingested_at=timezone.now(),
            heartbeat_at=timezone.now(),
            error="",
        )
        _changed(document)


def _drop_if_cancelled(document: Document) -> None:
    """A cancelled ingestion leaves nothing behind: the batches written after the cancel
    (``document_cancel`` deleted those before it) go too."""
    if Document.objects.filter(
        id=document.id, generation=document.generation, status=DocumentStatus.CANCELLED
    ).exists():
        Chunk.objects.filter(
            document=document, generation=document.generation, searchable=False
        ).delete()


def _fail(document: Document, reason: str) -> None:
    """Fail this generation: its partial chunks go; a previous generation stays searchable."""
    with transaction.atomic():
        if not Document.objects.filter(
            id=document.id, generation=document.generation, status__in=IN_PROGRESS
        ).update(status=DocumentStatus.FAILED, error=reason[:2000], heartbeat_at=timezone.now()):
            return
        Chunk.objects.filter(document=document, generation=document.generation).delete()
        _changed(document)


def documents_requeue_stale() -> int:
    """Queue again the ingestions whose worker stopped beating (it died, or its task was lost);
    fail those that have stopped ``MAX_ATTEMPTS`` times. Returns how many were touched."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.STUDIO_INGEST_STALE_S)
    # A queued document normally waits behind others (a bulk upload); only one that has waited
    # far longer than any backlog should is sent again (its task was lost with a broker).
    lost_before = now - timedelta(seconds=settings.STUDIO_INGEST_STALE_S * QUEUED_PATIENCE)
    stale = Document.objects.filter(
        Q(status__in=[DocumentStatus.PARSING, DocumentStatus.EMBEDDING])
        & (Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True))
        | Q(status=DocumentStatus.QUEUED, updated_at__lt=lost_before)
    ).select_related("knowledge_base", "knowledge_base__embedding_model")
    touched = 0
    for document in stale[:100]:
        with transaction.atomic():
            if document.attempts >= MAX_ATTEMPTS and document.status != DocumentStatus.QUEUED:
                _fail(
                    document,
                    f"ingestion stopped {document.attempts} times without finishing "
                    "(the worker was lost); re-ingest to try again",
                )
            else:
                # updated_at moves on, so a still-queued document is re-sent once per window.
                moved = Document.objects.filter(
                    id=document.id, status=document.status, generation=document.generation
                ).update(status=DocumentStatus.QUEUED, updated_at=timezone.now())
                if moved:
                    _changed(document)
                    queue = ingestion_queue(document.knowledge_base)
                    document_id = document.id
                    transaction.on_commit(
                        lambda d=document_id, q=queue: app.send_task(
                            "workers.tasks.ingest_document", args=[d], queue=q
                        )
                    )
            touched += 1
    return touched
