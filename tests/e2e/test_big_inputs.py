"""Big inputs say so before any work starts: the knowledge paste form shows the paste's size and
estimated chunks and holds back a paste past the limit; the chat box holds back a message past
the limit and says why, and nothing is sent."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conversations.limits import MAX_MESSAGE_CHARS
from conversations.models import Message
from knowledge.models import Document
from knowledge.services.bases import BaseSettings, kb_create
from knowledge.services.documents import MAX_PASTE_CHARS
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def test_the_paste_form_shows_size_and_chunks_and_holds_back_a_big_paste(
    page, owner, workspace, embedding_model
):
    base = kb_create(
        workspace=workspace,
        slug="pastes",
        values=BaseSettings(name="Pastes", chunk_size=100, chunk_overlap=20),
        actor=owner,
    )
    log_in(page, "olive", PASSWORD)
    page.goto(f"/knowledge/{base.id}/")
    form = page.locator("#text-form")
    size = page.locator("#paste-size")
    add = form.get_by_role("button", name="Add text")

    form.get_by_label("Text").fill("x" * 8000)  # 2,000 tokens: 25 chunks of 80 new tokens
    expect(size).to_have_text("8,000 characters (7.8 KB), about 25 chunks.")
    expect(add).to_be_enabled()

    form.get_by_label("Text").fill("é" * 160_000)  # 40,000 tokens: 500+ chunks, a warning
    expect(size).to_contain_text("160,000 characters (312.5 KB), about 500 chunks.")
    form.get_by_label("Text").fill("é" * 180_000)
    expect(size).to_contain_text("about 563 chunks. Ingesting this many chunks takes a while")

    form.get_by_label("Name").fill("big.txt")
    form.get_by_label("Text").fill("y" * (MAX_PASTE_CHARS + 1))
    expect(size).to_contain_text(f"at most {MAX_PASTE_CHARS:,} characters; upload it as a file")
    expect(add).to_be_disabled()
    page.locator("#add-documents").screenshot(path="/tmp/paste-limit.png")
    assert not Document.objects.exists()


def test_the_chat_box_holds_back_a_message_past_the_limit(page, owner, echo_model, make_flow):
    make_flow(echo_model)
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")
    box = page.get_by_label("Message")
    send = page.get_by_role("button", name="Send")

    box.fill("z" * (MAX_MESSAGE_CHARS + 1))
    note = page.locator("#message-limit")
    expect(note).to_be_visible()
    expect(note).to_contain_text(f"a message is at most {MAX_MESSAGE_CHARS:,}")
    expect(send).to_be_disabled()
    page.screenshot(path="/tmp/chat-limit.png")
    box.press("Enter")  # nothing is sent, the box keeps the whole text
    expect(box).to_have_value("z" * (MAX_MESSAGE_CHARS + 1))
    assert not Message.objects.exists()
    assert page.locator(".bubble.user").count() == 0

    box.fill("short enough")
    expect(note).to_be_hidden()
    expect(send).to_be_enabled()
