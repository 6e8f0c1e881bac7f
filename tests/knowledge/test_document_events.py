"""The document and knowledge base pages follow their documents' changes instead of polling."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.urls import reverse

from knowledge.models import KnowledgeBase
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_text
from knowledge.services.ingestion import document_refuse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def base(workspace, owner, embedding_model) -> KnowledgeBase:
    return kb_create(
        workspace=workspace,
        slug="handbook",
        values=BaseSettings(name="Handbook", chunk_size=64, chunk_overlap=0),
        actor=owner,
    )


@pytest.fixture
def queued(base, owner):
    """Two queued documents of the base (no worker ingests them here)."""
    first, _ = document_add_text(knowledge_base=base, name="a.txt", text="Alpha.", actor=owner)
    second, _ = document_add_text(knowledge_base=base, name="b.txt", text="Beta.", actor=owner)
    return first, second


@pytest.fixture
async def signed_in(async_client):
    async def sign_in(user):
        await async_client.aforce_login(user)
        return async_client

    yield sign_in
    await sync_to_async(connections.close_all)()


async def frames_while(client, url: str, change) -> list[str]:
    """The frames of ``url``'s stream, to its end, as their names (a change as
    ``document.changed:<id>``); ``change()`` is called once the stream has said it is ready (the
    page renders then: later changes are heard)."""
    response = await client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    names: list[str] = []

    async def read() -> None:
        async for chunk in response.streaming_content:
            for line in chunk.decode().splitlines():
                if line.startswith("event: "):
                    names.append(line.removeprefix("event: "))
                    if names == ["stream.ready"]:
                        await sync_to_async(change)()
                elif line.startswith("data: ") and names[-1] == "document.changed":
                    names[-1] += f":{json.loads(line.removeprefix('data: '))['document']}"

    await asyncio.wait_for(read(), timeout=30)
    return names


def refuse(*documents) -> None:
    for document in documents:
        document_refuse(document_id=document.id, reason="permission revoked")


async def test_a_document_page_hears_its_document_fail_then_ends(signed_in, owner, queued):
    first, second = queued
    client = await signed_in(owner)
    url = reverse("knowledge:document-events", args=[first.id])

    # The other document's change is not this page's: only this one's are sent. (A worker left
    # running by an earlier test may ingest the documents first: their changes count too.)
    names = await frames_while(client, url, lambda: refuse(second, first))

    assert names[0] == "stream.ready" and names[-1] == "stream.end"
    assert set(names[1:-1]) == {f"document.changed:{first.id}"}


async def test_the_base_page_hears_every_document_of_the_base(signed_in, owner, queued):
    client = await signed_in(owner)
    url = reverse("knowledge:kb-events", args=[queued[0].knowledge_base_id])

    names = await frames_while(client, url, lambda: refuse(*queued))

    assert names[0] == "stream.ready" and names[-1] == "stream.end"
    assert set(names[1:-1]) == {f"document.changed:{document.id}" for document in queued}


async def test_the_streams_are_not_found_for_a_user_without_access(signed_in, outsider, queued):
    client = await signed_in(outsider)

    document = await client.get(reverse("knowledge:document-events", args=[queued[0].id]))
    base = await client.get(reverse("knowledge:kb-events", args=[queued[0].knowledge_base_id]))

    assert (document.status_code, base.status_code) == (404, 404)


def test_the_streams_need_a_login_and_a_get(client, owner, queued):
    urls = [
        reverse("knowledge:document-events", args=[queued[0].id]),
        reverse("knowledge:kb-events", args=[queued[0].knowledge_base_id]),
    ]

    assert [client.get(url).status_code for url in urls] == [302, 302]
    client.force_login(owner)
    assert [client.post(url).status_code for url in urls] == [405, 405]
