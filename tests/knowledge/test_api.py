"""The knowledge REST API with a Bearer key: add documents (a multipart file with metadata,
JSON text, an address), list, read, re-label and delete them, retrieve with metadata filters
through the real worker; refusals answer JSON errors in the flows API's shape."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from knowledge.models import Chunk, Document, DocumentStatus
from knowledge.services.bases import BaseSettings, kb_create
from tests.knowledge.helpers import PARAGRAPHS, wait_for
from workspaces.models import ApiKey, AuditEvent
from workspaces.services import api_key_create, api_key_revoke, workspace_create

SCIENCE = "\n\n".join(PARAGRAPHS[1:4])
TRAVEL = "\n\n".join([PARAGRAPHS[2], PARAGRAPHS[5]])


@pytest.fixture
def base(workspace, owner, embedding_model):
    return kb_create(
        workspace=workspace,
        slug="handbook",
        values=BaseSettings(name="Handbook", chunk_size=64, chunk_overlap=0),
        actor=owner,
    )


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


def documents_url(slug: str = "handbook") -> str:
    return reverse("knowledge:api-kb-documents", args=[slug])


def document_url(document_id: int, slug: str = "handbook") -> str:
    return reverse("knowledge:api-kb-document", args=[slug, document_id])


def retrieve_url(slug: str = "handbook") -> str:
    return reverse("knowledge:api-kb-retrieve", args=[slug])


def post_json(client, url: str, body, headers: dict):
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


def upload_file(client, auth, name: str, text: str, metadata=None):
    data = {"file": SimpleUploadedFile(name, text.encode(), content_type="text/plain")}
    if metadata is not None:
        data["metadata"] = json.dumps(metadata)
    return client.post(documents_url(), data, headers=auth)


def test_a_file_uploaded_with_metadata_is_ingested_listed_and_relabelled(
    client, worker, base, auth
):
    response = upload_file(client, auth, "science.txt", SCIENCE, {"team": "research", "year": 3})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["name"] == "science.txt"
    assert body["metadata"] == {"team": "research", "year": 3}
    assert body["source"] == "file" and body["size"] == len(SCIENCE.encode())
    document = Document.objects.get(id=body["id"])
    assert AuditEvent.objects.get(action="document.add").actor_label.startswith("API key")

    wait_for(document, timeout=60)
    assert document.status == DocumentStatus.READY, document.error
    detail = client.get(document_url(document.id), headers=auth)
    assert detail.status_code == 200
    assert detail.json()["status"] == "ready" and detail.json()["chunk_count"] >= 1

    listed = client.get(documents_url(), headers=auth)
    assert listed.status_code == 200
    assert [(d["id"], d["name"], d["status"]) for d in listed.json()["data"]] == [
        (document.id, "science.txt", "ready")
    ]
    assert set(listed.json()["data"][0]) >= {
        "id",
        "name",
        "status",
        "error",
        "chunk_count",
        "metadata",
        "source",
        "url",
        "updated_at",
    }

    patched = client.patch(
        document_url(document.id),
        json.dumps({"metadata": {"team": "biology"}}),
        content_type="application/json",
        headers=auth,
    )
    assert patched.status_code == 200
    assert patched.json()["metadata"] == {"team": "biology"}
    document.refresh_from_db()
    assert document.metadata == {"team": "biology"}
    assert all(c.metadata == {"team": "biology"} for c in Chunk.objects.filter(document=document))

    same = upload_file(client, auth, "science.txt", SCIENCE, {"team": "biology"})
    assert same.status_code == 200  # the same bytes: nothing queued
    assert same.json()["status"] == "ready"


def test_retrieval_returns_only_chunks_whose_metadata_match_the_filters(client, worker, base, auth):
    for name, text, team in (("science.txt", SCIENCE, "research"), ("travel.txt", TRAVEL, "trips")):
        response = upload_file(client, auth, name, text, {"team": team})
        assert response.status_code == 201
        wait_for(Document.objects.get(id=response.json()["id"]), timeout=60)

    unfiltered = post_json(client, retrieve_url(), {"query": "Eiffel Tower in Paris"}, auth)
    assert unfiltered.status_code == 200, unfiltered.content
    documents = {c["document"] for c in unfiltered.json()["chunks"]}
    assert documents == {"science.txt", "travel.txt"}

    response = post_json(
        client,
        retrieve_url(),
        {"query": "Eiffel Tower in Paris", "top_k": 3, "filters": {"team": "trips"}},
        auth,
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["chunks"] and {c["document"] for c in body["chunks"]} == {"travel.txt"}
    assert all(c["metadata"] == {"team": "trips"} for c in body["chunks"])
    assert "Eiffel" in body["chunks"][0]["text"]
    assert body["chunks"][0]["index"] == 1 and body["chunks"][0]["knowledge_base"] == "handbook"
    assert {"embed", "hybrid"} <= set(body["timings_ms"]) and body["mode"] == "hybrid"

    either = post_json(
        client,
        retrieve_url(),
        {"query": "Eiffel", "mode": "keyword", "filters": {"team": ["nobody", "research"]}},
        auth,
    )
    assert {c["document"] for c in either.json()["chunks"]} == {"science.txt"}


def test_text_and_address_documents_are_added_from_json(client, base, auth):
    text = post_json(
        client,
        documents_url(),
        {"name": "faq.md", "text": "# FAQ\n\nBecause.", "metadata": {"kind": "faq"}},
        auth,
    )
    assert text.status_code == 201, text.content
    assert text.json()["source"] == "text" and text.json()["metadata"] == {"kind": "faq"}
    page = post_json(client, documents_url(), {"url": "https://example.com/guide"}, auth)
    assert page.status_code == 201, page.content
    assert page.json()["url"] == "https://example.com/guide"
    assert page.json()["name"] == "example.com_guide"
    assert Document.objects.count() == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "a.txt", "text": "  "}, "the text is empty"),
        ({"url": "file:///etc/passwd"}, "enter an http:// or https:// address"),
        ({"name": "a.txt", "text": "x", "metadata": {"": "blank key"}}, "metadata keys are 1"),
        ({"name": "a.txt", "text": "x", "colour": "red"}, "colour: Extra inputs"),
        ({"text": "no name"}, "name: Field required"),
    ],
)
def test_bad_json_documents_answer_400_with_the_reason(client, base, auth, body, message):
    response = post_json(client, documents_url(), body, auth)
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"
    assert not Document.objects.exists()


def test_bad_uploads_answer_400_or_413(client, base, auth, settings):
    wrong = client.post(
        documents_url(),
        {"file": SimpleUploadedFile("tool.exe", b"MZ", content_type="application/octet-stream")},
        headers=auth,
    )
    assert wrong.status_code == 400
    assert "Files of type .exe are not supported" in wrong.json()["error"]["message"]

    bad_metadata = client.post(
        documents_url(),
        {"file": SimpleUploadedFile("a.txt", b"x"), "metadata": "{not json"},
        headers=auth,
    )
    assert bad_metadata.status_code == 400
    assert "metadata is not valid JSON" in bad_metadata.json()["error"]["message"]

    settings.STUDIO_KNOWLEDGE_MAX_FILE_MB = 1
    big = client.post(
        documents_url(),
        {"file": SimpleUploadedFile("big.txt", b"a" * (1024 * 1024 + 1))},
        headers=auth,
    )
    assert big.status_code == 413
    assert "at most 1 MB" in big.json()["error"]["message"]

    huge_json = post_json(client, documents_url(), {"name": "a", "text": "a" * 1_100_000}, auth)
    assert huge_json.status_code == 413
    assert not Document.objects.exists()


def test_a_document_is_deleted_with_204(client, base, auth):
    created = post_json(client, documents_url(), {"name": "a.txt", "text": "Some text."}, auth)
    document_id = created.json()["id"]
    response = client.delete(document_url(document_id), headers=auth)
    assert response.status_code == 204
    assert not Document.objects.filter(id=document_id).exists()
    missing = client.get(document_url(document_id), headers=auth)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "document_not_found"


def test_retrieve_refuses_bad_requests(client, base, auth):
    for body, message in (
        ({}, "query: Field required"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "rerank": True}, "has no reranker"),
        ({"query": "x", "filters": {"k": []}}, "a list holds 1 to 100 values"),
    ):
        response = post_json(client, retrieve_url(), body, auth)
        assert response.status_code == 400, (body, response.content)
        assert message in response.json()["error"]["message"], (body, response.json())


def test_a_missing_or_revoked_key_gets_401(client, base, workspace, auth):
    assert client.get(documents_url()).status_code == 401
    bogus = client.get(documents_url(), headers={"Authorization": "Bearer sk-nope.nope"})
    assert bogus.status_code == 401
    assert bogus.json()["error"]["code"] == "invalid_api_key"
    assert bogus["WWW-Authenticate"].startswith("Bearer")

    api_key_revoke(api_key=ApiKey.objects.get(workspace=workspace))
    for response in (
        client.get(documents_url(), headers=auth),
        post_json(client, documents_url(), {"name": "a", "text": "b"}, auth),
        post_json(client, retrieve_url(), {"query": "x"}, auth),
    ):
        assert response.status_code == 401
    assert not Document.objects.exists()


def test_another_workspaces_base_and_documents_are_404(client, base, owner, auth):
    other_workspace = workspace_create(slug="other", name="Other")
    theirs = kb_create(workspace=other_workspace, slug="theirs", values=BaseSettings(name="Theirs"))
    document = Document.objects.create(knowledge_base=theirs, name="secret.txt", source="text")
    _, their_key = api_key_create(workspace=other_workspace, name="theirs")

    for response in (
        client.get(documents_url("theirs"), headers=auth),
        post_json(client, documents_url("theirs"), {"name": "a", "text": "b"}, auth),
        post_json(client, retrieve_url("theirs"), {"query": "x"}, auth),
        client.get(document_url(document.id, "theirs"), headers=auth),
        client.delete(document_url(document.id, "theirs"), headers=auth),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "knowledge_base_not_found"
    # Their document through our base's slug: not found either.
    assert client.get(document_url(document.id), headers=auth).status_code == 404
    # Their key does not reach our base.
    mine = client.get(documents_url(), headers={"Authorization": f"Bearer {their_key}"})
    assert mine.status_code == 404
    assert Document.objects.filter(id=document.id).exists()
    assert not Document.objects.filter(knowledge_base=theirs).exclude(id=document.id).exists()


def test_the_wrong_method_answers_405(client, base, auth):
    assert client.get(retrieve_url(), headers=auth).status_code == 405
    assert client.post(document_url(1), headers=auth).status_code == 405
    assert client.put(documents_url(), headers=auth).status_code == 405


# --- key scopes -------------------------------------------------------------------------------


def scoped_auth(workspace, owner, **scopes) -> dict[str, str]:
    from workspaces.services import KeyScopes

    _, key = api_key_create(
        workspace=workspace, name="scoped", user=owner, scopes=KeyScopes(**scopes)
    )
    return {"Authorization": f"Bearer {key}"}


def test_a_read_only_key_reads_but_cannot_upload_relabel_or_delete(client, base, workspace, owner):
    kept = Document.objects.create(
        knowledge_base=base, name="kept.txt", source="text", metadata={"v": 1}
    )
    reader = scoped_auth(workspace, owner, knowledge_access="read")

    listed = client.get(documents_url(), headers=reader)
    assert listed.status_code == 200
    assert [d["name"] for d in listed.json()["data"]] == ["kept.txt"]
    for response in (
        upload_file(client, reader, "new.txt", SCIENCE),
        post_json(client, documents_url(), {"name": "new.txt", "text": SCIENCE}, reader),
        client.patch(
            document_url(kept.id),
            json.dumps({"metadata": {"v": 2}}),
            content_type="application/json",
            headers=reader,
        ),
        client.delete(document_url(kept.id), headers=reader),
    ):
        assert response.status_code == 403, response.content
        assert response.json()["error"] == {
            "message": "This API key may not change the knowledge base.",
            "type": "permission_error",
            "code": "insufficient_scope",
        }
    assert list(Document.objects.values_list("name", flat=True)) == ["kept.txt"]
    kept.refresh_from_db()
    assert kept.metadata == {"v": 1}
    assert not AuditEvent.objects.filter(action__startswith="document.").exists()


def test_a_key_without_knowledge_scope_gets_403_everywhere(client, base, workspace, owner):
    kept = Document.objects.create(knowledge_base=base, name="kept.txt", source="text")
    flows_only = scoped_auth(workspace, owner, flow_access="run")

    for response in (
        client.get(documents_url(), headers=flows_only),
        client.get(document_url(kept.id), headers=flows_only),
        post_json(client, documents_url(), {"name": "a", "text": "b"}, flows_only),
        post_json(client, retrieve_url(), {"query": "x"}, flows_only),
        client.delete(document_url(kept.id), headers=flows_only),
        # Not even whether a base exists.
        client.get(documents_url("nope"), headers=flows_only),
    ):
        assert response.status_code == 403, response.content
        assert (
            response.json()["error"]["message"] == "This API key has no access to knowledge bases."
        )
    assert list(Document.objects.values_list("id", flat=True)) == [kept.id]


def test_a_key_scoped_to_one_base_does_not_reach_another(client, base, workspace, owner):
    other = kb_create(
        workspace=workspace, slug="other", values=BaseSettings(name="Other"), actor=owner
    )
    hidden = Document.objects.create(knowledge_base=other, name="hidden.txt", source="text")
    writer = scoped_auth(workspace, owner, knowledge_access="write", knowledge_base_ids=[base.id])

    assert client.get(documents_url(), headers=writer).status_code == 200
    for response in (
        client.get(documents_url("other"), headers=writer),
        client.delete(document_url(hidden.id, "other"), headers=writer),
        post_json(client, documents_url("other"), {"name": "a", "text": "b"}, writer),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "knowledge_base_not_found"
    assert list(Document.objects.values_list("id", flat=True)) == [hidden.id]
