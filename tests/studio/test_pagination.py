"""Every list of the public API pages the same way (``studio.json_api.page_response``):
``page`` from 1, ``per_page`` 1 to 100 (20 if unset), ``{"data", "page", "per_page",
"has_more"}``, an empty page past the end, and a 400 for values out of range or not numbers.
``/v1/models`` keeps OpenAI's whole list unless a page is asked for."""

from __future__ import annotations

import pytest

from conversations.models import Message
from conversations.services import conversation_start
from knowledge.models import Document
from knowledge.services.bases import BaseSettings, kb_create
from workspaces.models import ApiKey

BAD = [
    {"page": "0"},
    {"page": "-1"},
    {"page": "two"},
    {"page": "1.5"},
    {"per_page": "0"},
    {"per_page": "101"},
    {"per_page": ""},
    {"per_page": "9" * 40},
]


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def lists(workspace, owner, echo_model, make_flow, api_key) -> dict[str, tuple[str, list]]:
    """Each list endpoint, with the 5 items it holds, in its order."""
    from catalog.services import model_create

    key = ApiKey.objects.get(name="tests")
    flows = [make_flow(echo_model, slug=f"flow-{i}") for i in range(5)]
    embedder = model_create(
        slug="echo-embed", name="Echo embed", task="embedding", engine="echo", workspace=workspace
    )
    base = kb_create(
        workspace=workspace,
        slug="docs",
        values=BaseSettings(name="Docs", embedding_model=embedder),
        actor=owner,
    )
    documents = [
        Document.objects.create(knowledge_base=base, name=f"doc-{i}.txt", source="text")
        for i in range(5)
    ]
    conversations = [conversation_start(flow=flows[0], api_key=key, end_user="u") for _ in range(5)]
    messages = [
        Message.objects.create(conversation=conversations[0], role="user", text=f"m{i}")
        for i in range(5)
    ]
    return {
        "documents": ("/api/v1/knowledge/docs/documents", [d.name for d in documents]),
        "conversations": (
            "/api/v1/flows/flow-0/conversations",
            [str(c.id) for c in reversed(conversations)],
        ),
        "messages": (
            f"/api/v1/conversations/{conversations[0].id}/messages",
            [m.text for m in messages],
        ),
        "models": ("/v1/models", [f.slug for f in flows]),
    }


def _ids(name: str, data: list[dict]) -> list:
    field = {"documents": "name", "conversations": "id", "messages": "text", "models": "id"}
    return [item[field[name]] for item in data]


@pytest.mark.parametrize("name", ["documents", "conversations", "messages", "models"])
def test_a_list_pages_through_its_items(client, auth, lists, name):
    url, items = lists[name]
    first = client.get(url, {"per_page": 2}, headers=auth)
    assert first.status_code == 200, first.content
    body = first.json()
    assert (body["page"], body["per_page"], body["has_more"]) == (1, 2, True)
    assert _ids(name, body["data"]) == items[:2]
    second = client.get(url, {"page": 2, "per_page": 2}, headers=auth).json()
    assert _ids(name, second["data"]) == items[2:4] and second["has_more"] is True
    last = client.get(url, {"page": 3, "per_page": 2}, headers=auth).json()
    assert _ids(name, last["data"]) == items[4:] and last["has_more"] is False
    past = client.get(url, {"page": 99, "per_page": 2}, headers=auth).json()
    assert (past["data"], past["has_more"]) == ([], False)
    widest = client.get(url, {"per_page": 100}, headers=auth).json()
    assert _ids(name, widest["data"]) == items and widest["has_more"] is False


@pytest.mark.parametrize("name", ["documents", "conversations", "messages", "models"])
def test_a_list_refuses_paging_values_out_of_range_or_not_numbers(client, auth, lists, name):
    url, _ = lists[name]
    for params in BAD:
        refused = client.get(url, params, headers=auth)
        assert refused.status_code == 400, (params, refused.content)
        assert "per_page from 1 to 100" in refused.json()["error"]["message"]


@pytest.mark.parametrize("name", ["documents", "conversations", "messages"])
def test_a_list_without_paging_values_answers_its_first_20(client, auth, lists, name):
    url, items = lists[name]
    body = client.get(url, headers=auth).json()
    assert (body["page"], body["per_page"], body["has_more"]) == (1, 20, False)
    assert _ids(name, body["data"]) == items


def test_models_without_paging_values_is_openais_whole_list(client, auth, lists):
    body = client.get("/v1/models", headers=auth).json()
    assert set(body) == {"object", "data"} and body["object"] == "list"
    assert [m["id"] for m in body["data"]] == lists["models"][1]
    paged = client.get("/v1/models", {"page": 1}, headers=auth).json()
    assert paged["object"] == "list" and paged["per_page"] == 20
