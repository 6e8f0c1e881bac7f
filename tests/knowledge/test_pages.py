"""The knowledge pages: creating a base (audited) and its settings, adding documents (many files
at once, one bad file refused alone), the documents table that follows events while ingestion runs
on the real worker, metadata, chunk edits and switches, deleting, the retrieval test page with
each stage's ranks and scores, and who may do what."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_file, document_add_text
from tests.knowledge.helpers import PARAGRAPHS, wait_for
from workspaces.models import AuditEvent
from workspaces.sharing import object_grant

HTMX = {"HX-Request": "true"}

SCIENCE = "\n\n".join(PARAGRAPHS[1:4])
TRAVEL = "\n\n".join([PARAGRAPHS[2], PARAGRAPHS[5]])
UNTRUSTED = 'Ignore this line: <script>alert("owned")</script> is only text.'


@pytest.fixture
def base(workspace, owner, embedding_model) -> KnowledgeBase:
    return kb_create(
        workspace=workspace,
        slug="handbook",
        values=BaseSettings(name="Handbook", chunk_size=64, chunk_overlap=0),
        actor=owner,
    )


def form_data(**overrides) -> dict:
    data = {
        "name": "Handbook",
        "slug": "handbook",
        "description": "How we work.",
        "embedding_model": "",
        "splitter": "markdown",
        "chunk_size": "128",
        "chunk_overlap": "16",
        "search_mode": "hybrid",
        "top_k": "4",
        "score_threshold": "0",
        "reranker": "",
    }
    data.update(overrides)
    return data


def upload(name: str, text: str | bytes, content_type: str = "text/plain") -> SimpleUploadedFile:
    data = text.encode() if isinstance(text, str) else text
    return SimpleUploadedFile(name, data, content_type=content_type)


def documents_partial(client, base):
    """The documents table as the page asks for it on each event."""
    return client.get(
        reverse("knowledge:kb-detail", args=[base.id]), headers={**HTMX, "HX-Target": "documents"}
    )


@pytest.fixture
def ready(worker, base, owner) -> dict[str, Document]:
    """Two documents ingested by the real worker with the bundled MiniLM."""
    science, _ = document_add_file(
        knowledge_base=base,
        name="science.txt",
        data=(SCIENCE + "\n\n" + UNTRUSTED).encode(),
        metadata={"team": "research"},
        actor=owner,
    )
    travel, _ = document_add_text(
        knowledge_base=base,
        name="travel.md",
        text="# Places\n\n" + TRAVEL,
        metadata={"team": "travel"},
        actor=owner,
    )
    for document in (science, travel):
        wait_for(document, timeout=60)
        assert document.status == DocumentStatus.READY, document.error
    return {"science": science, "travel": travel}


# --- bases ----------------------------------------------------------------------------------


def test_creating_a_base_uses_the_bundled_embedder_and_is_audited(
    client, owner, workspace, embedding_model
):
    client.force_login(owner)
    form = client.get(reverse("knowledge:kb-create"))
    assertContains(form, f'<option value="{embedding_model.id}" selected>', html=False)

    data = form_data(embedding_model=str(embedding_model.id))
    response = client.post(reverse("knowledge:kb-create"), data)

    base = KnowledgeBase.objects.get(workspace=workspace, slug="handbook")
    assertRedirects(response, reverse("knowledge:kb-detail", args=[base.id]))
    assert (base.name, base.splitter, base.chunk_size, base.chunk_overlap, base.top_k) == (
        "Handbook",
        "markdown",
        128,
        16,
        4,
    )
    assert base.embedding_model == embedding_model
    event = AuditEvent.objects.get(workspace=workspace, action="kb.create")
    assert event.actor == owner and event.after["slug"] == "handbook"

    listed = client.get(reverse("knowledge:kb-list"))
    assertContains(listed, '<tr data-slug="handbook">')
    assertContains(listed, embedding_model.name)
    assertContains(listed, "New knowledge base")
    assertContains(listed, reverse("workspaces:share", args=["kb", base.id]))


def test_the_settings_form_shows_the_services_errors_and_saves_nothing(
    client, owner, base, embedding_model
):
    client.force_login(owner)
    model = str(embedding_model.id)
    response = client.post(
        reverse("knowledge:kb-create"),
        form_data(slug="second", chunk_size="64", chunk_overlap="64", embedding_model=model),
    )
    assert response.status_code == 400
    assertContains(response, "overlap must be smaller than the chunk size", status_code=400)

    response = client.post(
        reverse("knowledge:kb-create"), form_data(name="Again", embedding_model=model)
    )
    assertContains(response, "already exists", status_code=400)

    response = client.post(
        reverse("knowledge:kb-edit", args=[base.id]),
        form_data(rerank="on", search_mode="dense", embedding_model=model),
    )
    assertContains(response, "choose a reranker to turn reranking on", status_code=400)
    base.refresh_from_db()
    assert (base.rerank, base.search_mode) == (False, "hybrid")
    assert KnowledgeBase.objects.count() == 1


def test_editing_the_settings_saves_them_with_an_audit_entry(client, owner, base, embedding_model):
    client.force_login(owner)
    form = client.get(reverse("knowledge:kb-edit", args=[base.id]))
    assertContains(form, "applies to dense similarity")
    assertNotContains(form, 'name="slug"')

    response = client.post(
        reverse("knowledge:kb-edit", args=[base.id]),
        form_data(
            name="Team handbook",
            top_k="7",
            score_threshold="0.25",
            search_mode="dense",
            embedding_model=str(embedding_model.id),
        ),
    )
    assertRedirects(response, reverse("knowledge:kb-detail", args=[base.id]))
    base.refresh_from_db()
    assert (base.name, base.top_k, base.score_threshold, base.search_mode) == (
        "Team handbook",
        7,
        0.25,
        "dense",
    )
    event = AuditEvent.objects.get(action="kb.change")
    assert event.before["top_k"] == 5 and event.after["top_k"] == 7


def test_the_embedding_model_is_fixed_once_the_base_holds_documents(client, owner, base):
    document_add_text(knowledge_base=base, name="a", text="Some text.", actor=owner)
    client.force_login(owner)
    form = client.get(reverse("knowledge:kb-edit", args=[base.id]))
    assert re.search(r'<select name="embedding_model"[^>]*disabled', form.content.decode())


def test_deleting_a_base_asks_first_then_removes_it_with_its_documents(client, owner, base):
    document_add_text(knowledge_base=base, name="a", text="Some text.", actor=owner)
    client.force_login(owner)
    confirm = client.get(reverse("knowledge:kb-delete", args=[base.id]))
    assertContains(confirm, "with its 1 document and all their chunks")
    assert KnowledgeBase.objects.filter(id=base.id).exists()

    response = client.post(reverse("knowledge:kb-delete", args=[base.id]))
    assertRedirects(response, reverse("knowledge:kb-list"))
    assert not KnowledgeBase.objects.filter(id=base.id).exists()
    assert not Document.objects.exists()
    assert AuditEvent.objects.filter(action="kb.delete").count() == 1


# --- adding documents -----------------------------------------------------------------------


def test_one_upload_adds_many_files_and_refuses_a_bad_one_alone(client, owner, base):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-upload", args=[base.id]),
        {
            "files": [
                upload("guide.md", "# Guide\n\nRead me."),
                upload("notes.txt", "Plain notes."),
                upload("tool.exe", b"MZ\x90\x00", "application/octet-stream"),
            ],
            "metadata": "team=docs\nyear = 2024\n",
        },
        follow=True,
    )
    assert response.redirect_chain == [(reverse("knowledge:kb-detail", args=[base.id]), 302)]
    stored = {d.name: d for d in Document.objects.filter(knowledge_base=base)}
    assert set(stored) == {"guide.md", "notes.txt"}
    assert all(d.metadata == {"team": "docs", "year": "2024"} for d in stored.values())
    assert all(d.status == DocumentStatus.QUEUED for d in stored.values())
    assertContains(response, "Added guide.md, notes.txt")
    assertContains(response, "tool.exe: Files of type .exe are not supported")
    assert AuditEvent.objects.filter(action="document.add").count() == 2


def test_an_upload_of_only_bad_files_stores_nothing_and_says_why(client, owner, base, settings):
    settings.STUDIO_KNOWLEDGE_MAX_FILE_MB = 1
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-upload", args=[base.id]),
        {"files": [upload("big.txt", b"a" * (1024 * 1024 + 1)), upload("empty.txt", b"")]},
    )
    assert response.status_code == 400
    assertContains(response, "big.txt is larger than 1 MB; split it", status_code=400)
    assertContains(response, "empty.txt is empty", status_code=400)
    assert not Document.objects.exists()


def test_bad_metadata_lines_refuse_the_upload(client, owner, base):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-upload", args=[base.id]),
        {"files": [upload("a.txt", "text")], "metadata": "team=docs\nno equals sign"},
    )
    assertContains(response, "line 2 is not key=value", status_code=400)
    assert not Document.objects.exists()


def test_pasted_text_and_an_address_become_documents(client, owner, base):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-add-text", args=[base.id]),
        {"name": "faq.md", "text": "# FAQ\n\nWhy? Because.", "metadata": "kind=faq"},
    )
    assertRedirects(response, reverse("knowledge:kb-detail", args=[base.id]))
    response = client.post(
        reverse("knowledge:kb-add-url", args=[base.id]), {"url": "https://example.com/docs/intro"}
    )
    assertRedirects(response, reverse("knowledge:kb-detail", args=[base.id]))
    faq = Document.objects.get(name="faq.md")
    assert (faq.source, faq.metadata, faq.content_type) == (
        "text",
        {"kind": "faq"},
        "text/markdown",
    )
    page = Document.objects.get(source="url")
    assert (page.url, page.name) == ("https://example.com/docs/intro", "example.com_docs_intro")

    refused = client.post(
        reverse("knowledge:kb-add-url", args=[base.id]), {"url": "ftp://example.com/x"}
    )
    assertContains(refused, "enter an http:// or https:// address", status_code=400)
    refused = client.post(
        reverse("knowledge:kb-add-text", args=[base.id]), {"name": "x", "text": "   "}
    )
    assertContains(refused, "the text is empty", status_code=400)
    assert Document.objects.count() == 2


# --- the documents table --------------------------------------------------------------------


def test_the_table_shows_progress_and_follows_events_only_while_a_document_is_in_progress(
    client, owner, base
):
    document, _ = document_add_text(knowledge_base=base, name="a.txt", text="Text.", actor=owner)
    Document.objects.filter(id=document.id).update(
        status=DocumentStatus.EMBEDDING, chunk_count=7, embedded_count=3
    )
    client.force_login(owner)
    partial = documents_partial(client, base)
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="documents"') and "<html" not in body
    assert f'data-follow="{reverse("knowledge:kb-events", args=[base.id])}"' in body
    assert re.search(r"3\s*/\s*7", body)

    Document.objects.filter(id=document.id).update(
        status=DocumentStatus.FAILED, error="no text found in a.txt"
    )
    body = documents_partial(client, base).content.decode()
    assert "hx-trigger" not in body and "data-follow" not in body
    assert "no text found in a.txt" in body and "Failed" in body


def test_an_uploaded_document_becomes_ready_through_the_worker(client, worker, owner, base):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-upload", args=[base.id]),
        {"files": [upload("science.txt", SCIENCE)], "metadata": ""},
    )
    assert response.status_code == 302
    document = Document.objects.get(name="science.txt")
    following = documents_partial(client, base)
    assertContains(following, "data-follow=")

    wait_for(document, timeout=60)
    assert document.status == DocumentStatus.READY, document.error
    assert document.chunk_count >= 1
    settled = documents_partial(client, base)
    assertNotContains(settled, "hx-trigger")
    assertNotContains(settled, "data-follow")
    assertContains(settled, "Ready")
    assertContains(settled, f'<td class="num">{document.chunk_count}</td>', html=True)


def test_reingest_and_delete_answer_the_table_to_htmx(client, owner, base):
    document, _ = document_add_text(knowledge_base=base, name="a.txt", text="Text.", actor=owner)
    Document.objects.filter(id=document.id).update(status=DocumentStatus.FAILED, error="boom")
    client.force_login(owner)
    headers = {**HTMX, "HX-Target": "documents"}

    response = client.post(
        reverse("knowledge:document-reingest", args=[document.id]), headers=headers
    )
    assert response.status_code == 200
    assertContains(response, "data-follow=")
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED and document.error == ""

    again = client.post(reverse("knowledge:document-reingest", args=[document.id]), headers=headers)
    assertContains(again, "a.txt is already being ingested", status_code=400)

    gone = client.post(reverse("knowledge:document-delete", args=[document.id]), headers=headers)
    assert gone.status_code == 200
    assertContains(gone, "No documents yet")
    assert not Document.objects.exists()
    assert AuditEvent.objects.filter(action="document.delete").count() == 1


# --- a document's page ----------------------------------------------------------------------


def test_metadata_is_edited_as_key_value_lines(client, owner, base):
    document, _ = document_add_text(
        knowledge_base=base, name="a.txt", text="Text.", metadata={"team": "x"}, actor=owner
    )
    client.force_login(owner)
    page = client.get(reverse("knowledge:document-detail", args=[document.id]))
    assertContains(page, "team=x")

    url = reverse("knowledge:document-metadata", args=[document.id])
    response = client.post(url, {"metadata": "team = docs\nyear=2024\nurl=https://x.example/?a=b"})
    assertRedirects(response, reverse("knowledge:document-detail", args=[document.id]))
    document.refresh_from_db()
    assert document.metadata == {"team": "docs", "year": "2024", "url": "https://x.example/?a=b"}
    assert AuditEvent.objects.filter(action="document.change").count() == 1

    refused = client.post(url, {"metadata": "=nokey"})
    assertContains(refused, "line 1 is not key=value", status_code=400)
    document.refresh_from_db()
    assert document.metadata["team"] == "docs"


def test_chunks_are_shown_escaped_and_edited_and_switched_in_place(client, owner, ready):
    document = ready["science"]
    client.force_login(owner)
    page = client.get(reverse("knowledge:document-detail", args=[document.id]))
    assertContains(page, "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;")
    assertNotContains(page, '<script>alert("owned")')
    chunks = list(Chunk.objects.filter(document=document, searchable=True).order_by("position"))
    assert len(chunks) == document.chunk_count
    for chunk in chunks:
        assertContains(page, f'id="chunk-{chunk.id}"')

    chunk = chunks[0]
    headers = {**HTMX, "HX-Target": f"chunk-{chunk.id}"}
    edited = client.post(
        reverse("knowledge:chunk-edit", args=[chunk.id]),
        {"text": "Chloroplasts <em>capture</em> sunlight."},
        headers=headers,
    )
    assert edited.status_code == 200
    body = edited.content.decode()
    assert body.lstrip().startswith(f'<article class="chunk card" id="chunk-{chunk.id}"')
    assert "Chloroplasts &lt;em&gt;capture&lt;/em&gt; sunlight." in body
    assert "edited" in body
    chunk.refresh_from_db()
    assert chunk.text == "Chloroplasts <em>capture</em> sunlight." and chunk.edited

    refused = client.post(
        reverse("knowledge:chunk-edit", args=[chunk.id]), {"text": "  "}, headers=headers
    )
    assert refused.status_code == 400
    assertContains(refused, "This field is required", status_code=400)
    chunk.refresh_from_db()
    assert chunk.text.startswith("Chloroplasts")

    off = client.post(
        reverse("knowledge:chunk-toggle", args=[chunk.id]), {"enabled": "off"}, headers=headers
    )
    assert off.status_code == 200
    assertContains(off, "Turn on")
    chunk.refresh_from_db()
    assert chunk.enabled is False
    on = client.post(reverse("knowledge:chunk-toggle", args=[chunk.id]), {"enabled": "on"})
    assert on.status_code == 302 and on["Location"].endswith(f"#chunk-{chunk.id}")
    chunk.refresh_from_db()
    assert chunk.enabled is True
    assert AuditEvent.objects.filter(action="chunk.change").count() == 3


def test_deleting_a_document_removes_its_chunks(client, owner, ready):
    document = ready["science"]
    assert Chunk.objects.filter(document=document).exists()
    client.force_login(owner)
    response = client.post(reverse("knowledge:document-delete", args=[document.id]))
    assertRedirects(response, reverse("knowledge:kb-detail", args=[document.knowledge_base_id]))
    assert not Document.objects.filter(id=document.id).exists()
    assert not Chunk.objects.filter(document_id=document.id).exists()
    base = KnowledgeBase.objects.get(id=document.knowledge_base_id)
    assert base.chunk_total == Chunk.objects.filter(knowledge_base=base, searchable=True).count()


# --- the retrieval test page ----------------------------------------------------------------


def test_the_test_page_ranks_chunks_with_each_stages_scores(client, owner, base, ready):
    client.force_login(owner)
    page = client.get(reverse("knowledge:kb-test", args=[base.id]))
    assertContains(page, 'hx-post="{}"'.format(reverse("knowledge:kb-test", args=[base.id])))

    response = client.post(
        reverse("knowledge:kb-test", args=[base.id]),
        {"query": "How do plants turn light into energy?", "mode": "", "rerank": ""},
        headers={**HTMX, "HX-Target": "test-results"},
    )
    assert response.status_code == 200, response.content.decode()[-2000:]
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="test-results"') and "<html" not in body
    first = re.search(r'<article class="card result" id="result-1".*?</article>', body, re.S)
    assert first and "Photosynthesis" in first.group(0) and "science.txt" in first.group(0)
    for stage in ("dense", "keyword", "fused"):
        assert f'data-stage="{stage}"' in first.group(0)  # this chunk's rank in each stage
        assert f'<section class="ranking" data-stage="{stage}">' in body  # each ranking
    for timing in ("embed", "dense", "keyword", "hybrid"):
        assert f'<td class="num" data-stage="{timing}">' in body
    assert "hybrid search" in body


def test_the_test_page_applies_overrides_and_metadata_filters(client, owner, base, ready):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-test", args=[base.id]),
        {"query": "Eiffel Tower Paris", "mode": "keyword", "top_k": "5", "filters": "team=travel"},
    )
    assert response.status_code == 200
    assertContains(response, "<html")  # without htmx, the whole page
    body = response.content.decode()
    results = re.findall(r'<article class="card result".*?</article>', body, re.S)
    assert results and all("travel.md" in r for r in results)
    assert "keyword search" in body


def test_the_test_page_refuses_reranking_without_a_reranker(client, owner, base):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-test", args=[base.id]), {"query": "x", "rerank": "on"}, headers=HTMX
    )
    assertContains(response, "The base has no reranker", status_code=400)


# --- who may do what ------------------------------------------------------------------------


def test_a_viewer_sees_the_base_but_cannot_change_or_test_it(client, viewer, owner, base):
    document, _ = document_add_text(knowledge_base=base, name="a.txt", text="Text.", actor=owner)
    client.force_login(viewer)
    detail = client.get(reverse("knowledge:kb-detail", args=[base.id]))
    assert detail.status_code == 200
    assertNotContains(detail, 'id="upload-form"')
    assertNotContains(detail, reverse("knowledge:kb-test", args=[base.id]))
    assertNotContains(detail, "New knowledge base")

    refused = client.post(
        reverse("knowledge:kb-upload", args=[base.id]), {"files": [upload("b.txt", "More.")]}
    )
    assert refused.status_code == 403
    assert list(Document.objects.values_list("name", flat=True)) == ["a.txt"]
    for url in (
        reverse("knowledge:kb-edit", args=[base.id]),
        reverse("knowledge:kb-delete", args=[base.id]),
        reverse("knowledge:kb-test", args=[base.id]),
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("knowledge:document-delete", args=[document.id])).status_code == 403
    assert client.get(reverse("knowledge:kb-create")).status_code == 403
    assert Document.objects.filter(id=document.id).exists()


def test_an_operator_may_test_retrieval_but_not_change_documents(client, make_member, base):
    operator = make_member("operator")
    client.force_login(operator)
    assert client.get(reverse("knowledge:kb-test", args=[base.id])).status_code == 200
    response = client.post(
        reverse("knowledge:kb-add-text", args=[base.id]), {"name": "a", "text": "b"}
    )
    assert response.status_code == 403


def test_another_workspaces_member_gets_404_everywhere(client, outsider, owner, base):
    document, _ = document_add_text(knowledge_base=base, name="a.txt", text="Text.", actor=owner)
    client.force_login(outsider)
    for url in (
        reverse("knowledge:kb-detail", args=[base.id]),
        reverse("knowledge:kb-edit", args=[base.id]),
        reverse("knowledge:kb-test", args=[base.id]),
        reverse("knowledge:document-detail", args=[document.id]),
    ):
        assert client.get(url).status_code == 404, url
    for url in (
        reverse("knowledge:kb-upload", args=[base.id]),
        reverse("knowledge:kb-delete", args=[base.id]),
        reverse("knowledge:document-delete", args=[document.id]),
        reverse("knowledge:document-metadata", args=[document.id]),
    ):
        assert client.post(url, {"metadata": "a=b"}).status_code == 404, url
    assertNotContains(client.get(reverse("knowledge:kb-list")), "Handbook")
    assert Document.objects.filter(id=document.id).exists()


def test_a_limited_member_sees_only_the_bases_shared_with_them(
    client, make_member, owner, workspace, base
):
    other = kb_create(
        workspace=workspace, slug="secrets", values=BaseSettings(name="Secrets"), actor=owner
    )
    limited = make_member("editor", limited=True)
    client.force_login(limited)
    listed = client.get(reverse("knowledge:kb-list"))
    assertNotContains(listed, "Handbook")
    assertNotContains(listed, "Secrets")
    assert client.get(reverse("knowledge:kb-detail", args=[base.id])).status_code == 404

    object_grant(obj=base, subject=limited, level="view", actor=owner)
    listed = client.get(reverse("knowledge:kb-list"))
    assertContains(listed, "Handbook")
    assertNotContains(listed, "Secrets")
    assert client.get(reverse("knowledge:kb-detail", args=[base.id])).status_code == 200
    assert client.get(reverse("knowledge:kb-detail", args=[other.id])).status_code == 404
    assert client.get(reverse("knowledge:kb-edit", args=[base.id])).status_code == 403


def test_the_wrong_method_answers_405(client, owner, base):
    client.force_login(owner)
    assert client.get(reverse("knowledge:kb-upload", args=[base.id])).status_code == 405
    assert client.get(reverse("knowledge:kb-add-text", args=[base.id])).status_code == 405
    assert client.post(reverse("knowledge:kb-detail", args=[base.id])).status_code == 405
    assert client.post(reverse("knowledge:kb-list")).status_code == 405


def test_the_navigation_links_to_knowledge_for_those_who_may_view_it(client, owner):
    client.force_login(owner)
    assertContains(
        client.get(reverse("knowledge:kb-list")),
        f'<a href="{reverse("knowledge:kb-list")}">Knowledge</a>',
    )
