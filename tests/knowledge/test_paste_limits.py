"""Pasted text is refused past the paste limit, with the limit named, on the page and through
the API, and nothing is stored; the paste form says how big a paste is before it is sent."""

from __future__ import annotations

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import MAX_PASTE_CHARS

BIG = "All work and no play makes a dull chunk. " * 50_000  # about 2 MB


@pytest.fixture
def base(workspace, owner, embedding_model) -> KnowledgeBase:
    return kb_create(
        workspace=workspace,
        slug="pastes",
        values=BaseSettings(name="Pastes", chunk_size=100, chunk_overlap=20),
        actor=owner,
    )


def test_a_two_megabyte_paste_bypassing_the_page_is_refused_and_not_echoed(client, owner, base):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-add-text", args=[base.id]), {"name": "big.txt", "text": BIG}
    )
    assertContains(response, f"a paste is at most {MAX_PASTE_CHARS:,} characters", status_code=400)
    assertContains(response, "upload it as a file", status_code=400)
    assertContains(response, "the text is not kept here", status_code=400)
    assert len(response.content) < 200_000  # the refused text is not sent back
    assert not Document.objects.exists() and not Chunk.objects.exists()


def test_a_paste_at_the_limit_is_added(client, owner, base):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-add-text", args=[base.id]),
        {"name": "edge.txt", "text": "x" * MAX_PASTE_CHARS},
    )
    assert response.status_code == 302
    assert Document.objects.get().size == MAX_PASTE_CHARS


def test_a_refusal_for_another_reason_keeps_the_text(client, owner, base):
    client.force_login(owner)
    response = client.post(
        reverse("knowledge:kb-add-text", args=[base.id]),
        {"name": "", "text": "Keep me as typed."},
    )
    assertContains(response, "Keep me as typed.", status_code=400)


def test_the_api_refuses_a_big_text_with_the_limit(client, base, api_key):
    response = client.post(
        reverse("knowledge:api-kb-documents", args=[base.slug]),
        {"name": "big.txt", "text": "x" * (MAX_PASTE_CHARS + 1)},
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 400
    assert f"{MAX_PASTE_CHARS:,} characters" in response.content.decode()
    assert not Document.objects.exists()


def test_the_paste_form_carries_what_its_script_needs(client, owner, base):
    client.force_login(owner)
    page = client.get(reverse("knowledge:kb-detail", args=[base.id]))
    assertContains(page, f'data-max-chars="{MAX_PASTE_CHARS}"')
    assertContains(page, 'data-chunk-size="100" data-chunk-overlap="20"')
    assertContains(page, "knowledge/paste.js")
    assertNotContains(page, 'maxlength="5000000"')
