"""A flow's chat greets its end users: an opening message and suggested questions, set by those
who may change the flow, bounded, audited, and shown only before a conversation starts."""

from __future__ import annotations

from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from conversations.models import ChatSettings, Conversation
from workspaces.models import AuditEvent


def test_an_editor_sets_the_greeting_and_the_chat_shows_it(
    client, db, owner, echo_model, make_flow
):
    flow = make_flow(echo_model)
    client.force_login(owner)
    page = reverse("conversations:chat-settings", args=[flow.slug])

    saved = client.post(
        page,
        {
            "opening": "Hello! Ask me about **the studio**.",
            "suggestions": " How do I start?\n\nWhat is a flow? ",
        },
    )

    assert saved.status_code == 302
    settings_ = ChatSettings.objects.get(flow=flow)
    assert settings_.suggestions == ["How do I start?", "What is a flow?"]
    assert AuditEvent.objects.filter(action="flow.chat_settings").exists()
    chat = client.get(reverse("conversations:chat", args=[flow.slug]))
    assertContains(chat, "Hello! Ask me about **the studio**.")  # rendered as Markdown by the page
    assertContains(chat, 'data-text="How do I start?"')
    # Once the conversation has begun, the suggestions are gone; the greeting stays.
    client.post(reverse("conversations:chat-send", args=[flow.slug]), {"message": "hi"})
    opened = reverse("conversations:conversation", args=[flow.slug, Conversation.objects.get().id])
    later = client.get(opened)
    assertContains(later, "Ask me about")
    assertNotContains(later, 'class="suggestion"')


def test_the_greeting_is_bounded_and_only_editors_set_it(
    client, db, owner, make_member, echo_model, make_flow
):
    flow = make_flow(echo_model)
    page = reverse("conversations:chat-settings", args=[flow.slug])
    client.force_login(owner)

    too_many = client.post(page, {"suggestions": "\n".join(f"q{i}" for i in range(7))})
    too_long = client.post(page, {"suggestions": "x" * 201})
    huge = client.post(page, {"opening": "x" * 2001})
    assert too_many.status_code == too_long.status_code == huge.status_code == 400
    assertContains(too_many, "At most 6", status_code=400)
    assert not ChatSettings.objects.exists()

    client.force_login(make_member("operator"))
    assert client.get(page).status_code == 403
    assert client.post(page, {"opening": "hijacked"}).status_code == 403
    assert not ChatSettings.objects.exists()
