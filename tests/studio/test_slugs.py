"""Slugs made from names: the rule itself, and forms that fill an empty slug on the server
(so that a form works without slug.js)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.models import Model, Prompt
from knowledge.models import KnowledgeBase
from studio.slugs import slug_from

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Support Bot", "my-support-bot"),
        ("  Café  Support -- Bot!  ", "cafe-support-bot"),
        ("snake_case.name v2", "snake-case-name-v2"),
        ("日本語", ""),
    ],
)
def test_a_slug_is_made_from_a_name(name, slug):
    assert slug_from(name) == slug


def test_a_slug_is_cut_to_the_field_without_a_trailing_hyphen():
    assert slug_from("abc def", max_length=4) == "abc"


MODEL = {
    "name": "My Support Bot",
    "slug": "",
    "task": "chat",
    "source": "open_weight",
    "status": "available",
    "engine": "echo",
    "context_length": "2048",
    "price_input": "0",
    "price_output": "0",
}


def test_a_model_left_without_a_slug_gets_one_from_its_name_free_in_the_workspace(
    client, owner, workspace
):
    client.force_login(owner)
    first = client.post(reverse("catalog:model-create"), MODEL)
    assert first.status_code == 302, first.content.decode()[:2000]
    second = client.post(reverse("catalog:model-create"), MODEL)
    assert second.status_code == 302
    slugs = set(Model.objects.filter(workspace=workspace).values_list("slug", flat=True))
    assert slugs == {"my-support-bot", "my-support-bot-2"}


def test_a_slug_typed_by_hand_is_kept(client, owner, workspace):
    client.force_login(owner)
    response = client.post(reverse("catalog:model-create"), {**MODEL, "slug": "bot-one"})
    assert response.status_code == 302
    assert Model.objects.get(workspace=workspace).slug == "bot-one"


def test_a_name_without_letters_asks_for_a_slug(client, owner, workspace):
    client.force_login(owner)
    response = client.post(reverse("catalog:model-create"), {**MODEL, "name": "日本語"})
    assert response.status_code == 400
    assert "Give a slug" in response.content.decode()
    assert not Model.objects.filter(workspace=workspace).exists()


def test_a_prompt_left_without_a_slug_gets_one_from_its_name(client, owner, workspace):
    client.force_login(owner)
    for _ in range(2):
        response = client.post(
            reverse("catalog:prompt-create"),
            {"name": "Ticket Triage", "slug": "", "system": "", "template": "Sort {{ ticket }}"},
        )
        assert response.status_code == 302
    slugs = set(Prompt.objects.filter(workspace=workspace).values_list("slug", flat=True))
    assert slugs == {"ticket-triage", "ticket-triage-2"}


def test_the_form_pages_put_the_name_first_and_tie_the_slug_to_it(client, owner, workspace):
    client.force_login(owner)
    for url in ("catalog:model-create", "catalog:prompt-create", "catalog:route-create"):
        body = client.get(reverse(url)).content.decode()
        assert body.index('name="name"') < body.index('name="slug"'), url
        assert 'data-slug-from="id_name"' in body, url


def test_a_knowledge_base_left_without_a_slug_gets_one_from_its_name(
    client, owner, workspace, embedding_model
):
    client.force_login(owner)
    page = client.get(reverse("knowledge:kb-create")).content.decode()
    assert 'data-slug-from="id_name"' in page
    form = {
        "name": "Staff Handbook",
        "slug": "",
        "embedding_model": embedding_model.id,
        "splitter": "sentence",
        "chunk_size": "200",
        "chunk_overlap": "20",
        "search_mode": "dense",
        "top_k": "5",
        "score_threshold": "0",
    }
    for _ in range(2):
        response = client.post(reverse("knowledge:kb-create"), form)
        assert response.status_code == 302, response.content.decode()[:3000]
    slugs = set(KnowledgeBase.objects.filter(workspace=workspace).values_list("slug", flat=True))
    assert slugs == {"staff-handbook", "staff-handbook-2"}
