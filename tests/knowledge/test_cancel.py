"""A running ingestion can be cancelled by an editor of the base: the real worker stops at its
next batch, the document ends cancelled with no chunks, and the cancel is audited; a viewer
cannot cancel."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_text
from tests.knowledge.helpers import PARAGRAPHS, wait_for
from workspaces.models import AuditEvent

# Small chunks of many paragraphs: hundreds of chunks, many batches of embedding.
LONG = "\n\n".join(f"{n}. {PARAGRAPHS[n % len(PARAGRAPHS)]}" for n in range(1500))


@pytest.fixture
def base(workspace, owner, embedding_model) -> KnowledgeBase:
    return kb_create(
        workspace=workspace,
        slug="cancels",
        values=BaseSettings(name="Cancels", chunk_size=32, chunk_overlap=0),
        actor=owner,
    )


def _wait_for_worker_to_stop(worker, document: Document, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    line = f"ingestion of document {document.id} superseded"
    while line not in worker.log():
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(0.2)


def test_a_cancelled_ingestion_stops_and_leaves_no_chunks(client, worker, owner, base):
    document, _ = document_add_text(knowledge_base=base, name="long.txt", text=LONG, actor=owner)
    wait_for(document, statuses=(DocumentStatus.EMBEDDING, DocumentStatus.READY))
    assert document.status == DocumentStatus.EMBEDDING, "ingestion finished before the cancel"
    client.force_login(owner)
    page = client.get(reverse("knowledge:kb-detail", args=[base.id]))
    assert reverse("knowledge:document-cancel", args=[document.id]) in page.content.decode()

    response = client.post(reverse("knowledge:document-cancel", args=[document.id]))
    assert response.status_code == 302
    _wait_for_worker_to_stop(worker, document)
    document.refresh_from_db()
    assert document.status == DocumentStatus.CANCELLED
    assert document.embedded_count < document.chunk_count  # it stopped before the end
    assert not Chunk.objects.filter(document=document).exists()
    assert AuditEvent.objects.filter(action="document.cancel").count() == 1
    page = client.get(reverse("knowledge:document-detail", args=[document.id]))
    assert "Cancelled" in page.content.decode()
    assert reverse("knowledge:document-cancel", args=[document.id]) not in page.content.decode()


def test_a_viewer_cannot_cancel(client, viewer, owner, base):
    document, _ = document_add_text(
        knowledge_base=base, name="short.txt", text=PARAGRAPHS[0], actor=owner
    )
    client.force_login(viewer)
    response = client.post(reverse("knowledge:document-cancel", args=[document.id]))
    assert response.status_code in {403, 404}
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert not AuditEvent.objects.filter(action="document.cancel").exists()
    page = client.get(reverse("knowledge:kb-detail", args=[base.id]))
    assert reverse("knowledge:document-cancel", args=[document.id]) not in page.content.decode()


def test_cancelling_a_finished_document_says_so(client, owner, base):
    document, _ = document_add_text(
        knowledge_base=base, name="done.txt", text=PARAGRAPHS[0], actor=owner
    )
    Document.objects.filter(id=document.id).update(status=DocumentStatus.READY)
    client.force_login(owner)
    response = client.post(reverse("knowledge:document-cancel", args=[document.id]), follow=True)
    assert "was not being ingested" in response.content.decode()
    document.refresh_from_db()
    assert document.status == DocumentStatus.READY
