"""Ingestion through the real worker and the bundled MiniLM: statuses, the generation swap,
re-embedding only what changed, failures that lose nothing, resuming after a dead worker."""

from __future__ import annotations

import http.server
import threading
import time

import pytest
from django.core.exceptions import ValidationError

from knowledge.models import Chunk, Document, DocumentStatus, EmbeddingCache, Term
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import (
    document_add_file,
    document_add_text,
    document_add_url,
    document_delete,
    document_metadata_update,
)
from knowledge.services.ingestion import document_ingest, documents_requeue_stale
from tests.knowledge.helpers import PARAGRAPHS, in_process_embed, wait_for
from tests.knowledge.zip_bombs import docx_bytes, lying_docx, many_parts_docx, padded_docx


@pytest.fixture
def base(workspace, owner, embedding_model):
    return kb_create(
        workspace=workspace,
        slug="notes",
        values=BaseSettings(name="Notes", chunk_size=64, chunk_overlap=0),
        actor=owner,
    )


def _text(paragraphs) -> str:
    return "\n\n".join(paragraphs)


def test_document_becomes_searchable_through_the_worker(worker, base, owner):
    document, queued = document_add_text(
        knowledge_base=base,
        name="facts.md",
        text="# Science\n\n" + _text(PARAGRAPHS[1:4]) + "\n\n# Code\n\n" + PARAGRAPHS[4],
        metadata={"team": "research"},
        actor=owner,
    )
    assert queued and document.status == DocumentStatus.QUEUED
    wait_for(document)
    assert document.status == DocumentStatus.READY, document.error
    assert document.searchable and document.chunk_count >= 2
    chunks = list(Chunk.objects.filter(document=document))
    assert len(chunks) == document.chunk_count
    assert all(c.searchable and c.dimensions == 384 for c in chunks)
    assert {c.section for c in chunks} >= {"Science", "Code"}
    assert all(c.metadata == {"team": "research"} for c in chunks)
    base.refresh_from_db()
    assert base.dimensions == 384
    assert base.chunk_total == len(chunks)
    assert base.length_total == sum(c.length for c in chunks)
    assert Term.objects.filter(knowledge_base=base, df__gt=0).count() > 10


def test_changed_upload_reembeds_only_changed_chunks(worker, base, owner):
    first, _ = document_add_file(
        knowledge_base=base, name="facts.txt", data=_text(PARAGRAPHS).encode(), actor=owner
    )
    wait_for(first)
    assert first.status == DocumentStatus.READY, first.error
    old_ids = set(Chunk.objects.filter(document=first).values_list("id", flat=True))
    changed = [*PARAGRAPHS[:-1], "Coral reefs host a quarter of all marine species."]
    second, queued = document_add_file(
        knowledge_base=base, name="facts.txt", data=_text(changed).encode(), actor=owner
    )
    assert queued and second.id == first.id
    wait_for(second)
    assert second.status == DocumentStatus.READY, second.error
    assert second.generation == first.generation + 1
    assert 0 < second.reused_count < second.chunk_count  # unchanged text was not embedded again
    now = Chunk.objects.filter(document=second)
    assert now.count() == second.chunk_count
    assert not old_ids & set(now.values_list("id", flat=True))  # the old generation is gone
    assert now.filter(text__contains="quarter of all marine species").exists()
    assert not now.filter(text__contains="largest coral reef").exists()
    base.refresh_from_db()
    assert base.chunk_total == second.chunk_count


def test_the_same_bytes_again_change_nothing(worker, base, owner):
    document, _ = document_add_text(knowledge_base=base, name="a.txt", text=PARAGRAPHS[0])
    wait_for(document)
    again, queued = document_add_text(knowledge_base=base, name="a.txt", text=PARAGRAPHS[0])
    assert not queued
    again.refresh_from_db()
    assert again.generation == document.generation and again.status == DocumentStatus.READY


def test_a_failed_replacement_keeps_the_previous_version_searchable(worker, base, owner):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 10, PARAGRAPHS[2])
    document, _ = document_add_file(
        knowledge_base=base, name="tower.pdf", data=bytes(pdf.output()), actor=owner
    )
    wait_for(document)
    assert document.status == DocumentStatus.READY, document.error
    kept = list(Chunk.objects.filter(document=document).values_list("id", "page"))
    assert kept and all(page == 1 for _, page in kept)
    broken, queued = document_add_file(
        knowledge_base=base, name="tower.pdf", data=b"%PDF-1.7 not really", actor=owner
    )
    assert queued
    wait_for(broken)
    assert broken.status == DocumentStatus.FAILED
    assert "Could not read the PDF" in broken.error
    assert list(Chunk.objects.filter(document=broken).values_list("id", "page")) == kept
    assert Chunk.objects.filter(document=broken, searchable=True).count() == len(kept)


def test_bad_input_is_refused_before_anything_is_stored(base, owner):
    with pytest.raises(ValidationError, match="not supported"):
        document_add_file(knowledge_base=base, name="tool.exe", data=b"MZ...", actor=owner)
    with pytest.raises(ValidationError, match="empty"):
        document_add_file(knowledge_base=base, name="a.txt", data=b"", actor=owner)
    with pytest.raises(ValidationError, match="metadata keys"):
        document_add_text(knowledge_base=base, name="a", text="x", metadata={"": "v"})
    with pytest.raises(ValidationError, match="http"):
        document_add_url(knowledge_base=base, url="file:///etc/passwd")
    assert not Document.objects.exists()


def test_deleting_a_document_deletes_its_chunks_and_statistics(worker, base, owner):
    keep, _ = document_add_text(knowledge_base=base, name="keep.txt", text=PARAGRAPHS[0])
    drop, _ = document_add_text(knowledge_base=base, name="drop.txt", text=PARAGRAPHS[1])
    wait_for(keep), wait_for(drop)
    document_delete(document=drop, actor=owner)
    assert not Chunk.objects.filter(document_id=drop.id).exists()
    base.refresh_from_db()
    assert base.chunk_total == Chunk.objects.filter(knowledge_base=base).count() == keep.chunk_count
    assert not drop.file.storage.exists(drop.file.name)


def test_metadata_changes_reach_the_chunks(worker, base, owner):
    document, _ = document_add_text(knowledge_base=base, name="a.txt", text=PARAGRAPHS[0])
    wait_for(document)
    document_metadata_update(document=document, metadata={"year": 2024}, actor=owner)
    found = list(Chunk.objects.filter(document=document).values_list("metadata", flat=True))
    assert found and all(m == {"year": 2024} for m in found)


def test_a_worker_that_dies_mid_ingestion_is_resumed(worker, base, owner):
    long_text = _text(f"Paragraph {i}: " + PARAGRAPHS[i % len(PARAGRAPHS)] * 3 for i in range(150))
    document, _ = document_add_text(knowledge_base=base, name="long.txt", text=long_text)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        document.refresh_from_db()
        if document.embedded_count >= 32:
            break
        time.sleep(0.05)
    assert document.status == DocumentStatus.EMBEDDING, document.status
    first_generation = document.generation
    worker.kill()  # as when a machine dies: no chance to clean up
    assert not Chunk.objects.filter(document=document, searchable=True).exists()
    worker.start()  # its beat runs the reaper, which queues the stale document again
    wait_for(document, timeout=180)
    assert document.status == DocumentStatus.READY, document.error
    assert document.generation > first_generation and document.attempts >= 2
    assert document.reused_count >= 32  # what the dead worker embedded was not embedded again
    chunks = Chunk.objects.filter(document=document)
    assert chunks.count() == document.chunk_count
    assert set(chunks.values_list("generation", flat=True)) == {document.generation}
    assert chunks.values("position").distinct().count() == document.chunk_count


def test_an_ingestion_lost_too_often_fails_with_the_reason(base, owner, settings):
    document, _ = document_add_text(knowledge_base=base, name="a.txt", text=PARAGRAPHS[0])
    settings.STUDIO_INGEST_STALE_S = 0
    Document.objects.filter(id=document.id).update(status=DocumentStatus.EMBEDDING, attempts=3)
    assert documents_requeue_stale() == 1
    document.refresh_from_db()
    assert document.status == DocumentStatus.FAILED
    assert "stopped 3 times" in document.error


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = (
            b"<html><head><title>Tides</title><script>alert(1)</script></head><body>"
            b"<h1>Tides</h1><p>Tides are caused by the gravity of the Moon and the Sun.</p>"
            b"</body></html>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def page_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/tides"
    server.shutdown()


def test_a_url_is_fetched_through_the_ssrf_safe_client(base, owner, page_server, settings):
    # Loopback is refused by default: the studio never fetches its own network for a user.
    refused, _ = document_add_url(knowledge_base=base, url=page_server, actor=owner)
    document_ingest(document_id=refused.id, embed=in_process_embed())
    refused.refresh_from_db()
    assert refused.status == DocumentStatus.FAILED and "refused" in refused.error
    # An operator may trust a network; then the page is fetched, parsed and embedded.
    settings.STUDIO_EGRESS_ALLOW = ["127.0.0.1"]
    Document.objects.filter(id=refused.id).update(status=DocumentStatus.QUEUED)
    document_ingest(document_id=refused.id, embed=in_process_embed())
    refused.refresh_from_db()
    assert refused.status == DocumentStatus.READY, refused.error
    chunk = Chunk.objects.get(document=refused)
    assert "gravity of the Moon" in chunk.text and "alert" not in chunk.text
    assert EmbeddingCache.objects.filter(content_hash=chunk.content_hash).exists()


def test_an_edited_chunk_is_embedded_again_by_the_worker(worker, base, owner):
    from knowledge.services.chunks import chunk_update

    document, _ = document_add_text(knowledge_base=base, name="a.txt", text=PARAGRAPHS[0])
    wait_for(document)
    chunk = Chunk.objects.get(document=document)
    chunk_update(chunk=chunk, text=PARAGRAPHS[3], actor=owner)
    chunk.refresh_from_db()
    assert chunk.embedding is None and "Mitochondria" in chunk.text  # out of dense search
    deadline = time.monotonic() + 60
    while chunk.embedding is None and time.monotonic() < deadline:
        time.sleep(0.2)
        chunk.refresh_from_db()
    assert chunk.dimensions == 384
    cached = EmbeddingCache.objects.get(content_hash=chunk.content_hash)
    assert list(cached.embedding) == pytest.approx(list(chunk.embedding))


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        # 40 MB of XML in about 150 KB: before the check, the worker unpacked and parsed it all
        # (over 2 GB of memory and minutes of CPU for this one).
        (lambda: padded_docx(40), "unpacks to more than 100 times its packed size"),
        (lambda: many_parts_docx(10_000), "parts; the limit is 10,000"),
        (lambda: lying_docx(20), "holds more than the 2,000 bytes the file declares"),
    ],
    ids=["compressible-xml", "many-parts", "lying-size"],
)
def test_a_docx_zip_bomb_fails_alone_and_the_worker_lives(worker, base, owner, build, reason):
    bomb, _ = document_add_file(knowledge_base=base, name="bomb.docx", data=build(), actor=owner)
    wait_for(bomb)
    assert bomb.status == DocumentStatus.FAILED
    assert reason in bomb.error and "was not read" in bomb.error
    assert not Chunk.objects.filter(document=bomb).exists()
    assert worker.process.poll() is None  # the worker process is still alive
    normal, _ = document_add_file(
        knowledge_base=base, name="normal.docx", data=docx_bytes(*PARAGRAPHS[:2]), actor=owner
    )
    wait_for(normal)
    assert normal.status == DocumentStatus.READY, normal.error
    assert Chunk.objects.filter(document=normal, text__contains="Photosynthesis").exists()


def test_a_parse_past_the_memory_limit_fails_that_document_with_the_limit(base, owner, settings):
    # Packed well within the archive limits once the ratio is allowed, but its 40 MB of XML
    # parse to about a gigabyte: the child process meets its address-space limit, not the worker.
    settings.STUDIO_KNOWLEDGE_ARCHIVE_MAX_RATIO = 1e9
    settings.STUDIO_KNOWLEDGE_PARSE_MEMORY_MB = 256
    big, _ = document_add_file(
        knowledge_base=base, name="big.docx", data=padded_docx(40), actor=owner
    )
    document_ingest(document_id=big.id, embed=in_process_embed())
    big.refresh_from_db()
    assert big.status == DocumentStatus.FAILED
    assert big.error.startswith("Parsing used more than 256 MB of memory")
    normal, _ = document_add_file(
        knowledge_base=base, name="normal.docx", data=docx_bytes(PARAGRAPHS[0]), actor=owner
    )
    document_ingest(document_id=normal.id, embed=in_process_embed())
    normal.refresh_from_db()
    assert normal.status == DocumentStatus.READY, normal.error


def test_a_parse_past_the_time_limit_fails_that_document_with_the_limit(base, owner, settings):
    settings.STUDIO_KNOWLEDGE_ARCHIVE_MAX_RATIO = 1e9
    settings.STUDIO_KNOWLEDGE_PARSE_TIMEOUT_S = 0.5
    slow, _ = document_add_file(
        knowledge_base=base, name="slow.docx", data=padded_docx(40), actor=owner
    )
    document_ingest(document_id=slow.id, embed=in_process_embed())
    slow.refresh_from_db()
    assert slow.status == DocumentStatus.FAILED
    assert slow.error.startswith("Parsing took longer than 0.5 s")
