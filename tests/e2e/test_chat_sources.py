"""The chat page shows where an answer came from: the knowledge retrieval node's citations
appear under the answer, as text."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from flows.services import flow_create, flow_publish
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import document_add_text
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.flows.test_knowledge_node import rag_graph
from tests.knowledge.helpers import PARAGRAPHS, wait_for

pytestmark = pytest.mark.e2e


def test_the_answer_lists_its_sources(page, workspace, owner, echo_model, embedding_model):
    base = kb_create(
        workspace=workspace,
        slug="facts",
        values=BaseSettings(name="Facts", chunk_size=48, chunk_overlap=0, top_k=2),
        actor=owner,
    )
    document, _ = document_add_text(
        knowledge_base=base,
        name="<img src=x onerror=alert(1)>cells.md",
        text="# Biology\n\n" + "\n\n".join(PARAGRAPHS),
        actor=owner,
    )
    assert wait_for(document).status == "ready", document.error
    flow_publish(
        flow=flow_create(
            workspace=workspace, slug="assistant", name="RAG", graph=rag_graph("facts"), user=owner
        ),
        user=owner,
    )
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")
    page.get_by_label("Message").fill("Which organelle produces ATP?")
    page.get_by_role("button", name="Send").click()
    bubble = page.locator(".bubble.assistant").last
    expect(bubble).to_have_class(re.compile(r"\bdone\b"))
    sources = bubble.get_by_role("list", name="Sources")
    expect(sources.locator("li")).to_have_count(2)
    # The document's name is shown as text, never as markup.
    expect(sources.locator("li").first).to_have_text(
        re.compile(r"^\[1\] <img src=x onerror=alert\(1\)>cells\.md")
    )
    assert sources.locator("img").count() == 0
    expect(sources.locator("li").first).to_contain_text("Biology")

    # Reopened later, the answer still lists its sources (kept with the message), as text.
    page.reload()
    kept = page.locator(".bubble.assistant").last.get_by_role("list", name="Sources")
    expect(kept.locator("li")).to_have_count(2)
    expect(kept.locator("li").first).to_have_text(
        re.compile(r"^\[1\] <img src=x onerror=alert\(1\)>cells\.md")
    )
    assert kept.locator("img").count() == 0
