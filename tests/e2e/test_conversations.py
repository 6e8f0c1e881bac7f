"""Conversations in a real browser: a follow-up is sent with the turns before it, the page's
address names the conversation, and a reload (even mid-answer) reopens it where it was."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


def say(page, message: str):
    """Send ``message``; the new answer's bubble (once it is on the page)."""
    answers = page.locator(".bubble.assistant")
    before = answers.count()
    page.get_by_label("Message").fill(message)
    page.get_by_role("button", name="Send").click()
    expect(answers).to_have_count(before + 1)
    return answers.nth(before)


def test_a_follow_up_carries_the_conversation_and_a_reload_reopens_it(
    page, owner, echo_model, make_flow
):
    from flows.models import NodeResult, Run

    make_flow(echo_model)
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")

    first = say(page, "what is the capital of France")
    expect(first.locator(".meta")).to_contain_text("Done")
    # The address now names the conversation: a reload or a shared link reopens it.
    expect(page).to_have_url(re.compile(r"/chat/assistant/c/[0-9a-f-]{36}/$"))
    second = say(page, "and its population")
    expect(second.locator(".meta")).to_contain_text("Done")

    latest = Run.objects.order_by("-created_at").first()
    assert [turn["role"] for turn in latest.history] == ["user", "assistant"]
    # The assistant remembers: the model was shown both earlier turns before the message.
    assert NodeResult.objects.get(run=latest, node_id="llm_1").input_tokens > 3 + 6 + 6

    page.reload()
    bubbles = page.locator("#messages .bubble")
    expect(bubbles).to_have_count(4)
    expect(bubbles.nth(2)).to_have_text("and its population")
    expect(page.locator("nav.conversations [aria-current=page]")).to_contain_text(
        "what is the capital of France"
    )

    page.get_by_role("link", name="New conversation").click()
    expect(page.locator("#messages .bubble")).to_have_count(0)
    expect(page.locator("nav.conversations li")).to_have_count(1)


def test_a_reload_mid_answer_follows_the_answer_to_its_end(page, owner, slow_echo_model, make_flow):
    make_flow(slow_echo_model, max_tokens=64)
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")

    bubble = say(page, "one two three four five six seven eight")
    expect(bubble.locator(".text")).to_contain_text("one")
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    page.reload()

    answer = page.locator(".bubble.assistant").last
    expect(answer.locator(".text")).to_have_text("one two three four five six seven eight")
    expect(answer.locator(".meta")).to_contain_text("Done · 8 tokens")


def test_the_chat_fits_a_phone(page, owner, echo_model, make_flow):
    make_flow(echo_model)
    page.set_viewport_size({"width": 375, "height": 740})
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")

    bubble = say(page, "hello from a phone")

    expect(bubble.locator(".meta")).to_contain_text("Done")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways: {width} px wide"
    composer = page.get_by_label("Message").bounding_box()
    assert composer["x"] >= 0 and composer["x"] + composer["width"] <= 375


def test_an_answer_is_rated_and_commented_from_the_keyboard(page, owner, echo_model, make_flow):
    from conversations.models import Message

    make_flow(echo_model)
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")
    answer = say(page, "rate this answer")
    expect(answer.locator(".meta")).to_contain_text("Done")

    answer.get_by_role("button", name="Bad answer").focus()
    page.keyboard.press("Enter")
    expect(answer.get_by_role("status")).to_have_text("Thanks for the feedback.")
    bad = answer.get_by_role("button", name="Bad answer")
    expect(bad).to_have_attribute("aria-pressed", "true")
    comment = answer.get_by_label("Comment on this answer")
    comment.fill("it only repeated me")
    with page.expect_response(lambda response: "/feedback" in response.url) as saved:
        comment.press("Enter")
    assert saved.value.status == 200
    expect(answer.get_by_label("Comment on this answer")).to_have_value("it only repeated me")

    rated = Message.objects.get(role="assistant")
    assert (rated.feedback, rated.feedback_comment) == (-1, "it only repeated me")


def test_an_answer_is_stopped_then_asked_again(page, owner, slow_echo_model, make_flow):
    make_flow(slow_echo_model, max_tokens=64)
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")

    answer = say(page, "one two three four five six seven eight nine ten")
    expect(answer.locator(".text")).to_contain_text("two")
    answer.get_by_role("button", name="Stop").click()
    expect(answer.locator(".meta")).to_contain_text("Stopped")
    assert "ten" not in answer.locator(".text").text_content()

    answer.get_by_role("button", name="Regenerate").click()
    answers = page.locator("#messages .bubble.assistant")
    # The stopped exchange left the page; the question was asked again and answered whole.
    expect(answers).to_have_count(1)
    expect(page.locator("#messages .bubble.user")).to_have_count(1)
    expect(answers.first.locator(".text")).to_have_text(
        "one two three four five six seven eight nine ten", timeout=30_000
    )


def test_a_suggested_question_is_sent_with_a_click(page, owner, echo_model, make_flow):
    from conversations.services import chat_settings_change

    flow = make_flow(echo_model)
    chat_settings_change(
        flow=flow, opening="Hi! I answer *briefly*.", suggestions=["what is a flow"], user=owner
    )
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")

    expect(page.locator(".bubble.opening em")).to_have_text("briefly")  # Markdown
    page.get_by_role("button", name="what is a flow").click()

    expect(page.locator("#messages .bubble.user")).to_have_text("what is a flow")
    expect(page.locator(".bubble.assistant").last.locator(".text")).to_have_text("what is a flow")
    expect(page.locator(".suggestions")).to_have_count(0)


def test_the_review_page_renders_answers_as_markdown(page, owner, echo_model, make_flow):
    from conversations.models import Conversation

    flow = make_flow(echo_model)
    log_in(page, "olive", PASSWORD)
    page.goto("/chat/assistant/")
    expect(say(page, "a **bold** claim").locator(".meta")).to_contain_text("Done")

    conversation = Conversation.objects.get()
    page.goto(f"/flows/{flow.slug}/conversations/{conversation.id}/")

    expect(page.locator("#messages .bubble.assistant strong")).to_have_text("bold")
