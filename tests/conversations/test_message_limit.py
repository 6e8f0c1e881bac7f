"""A chat message past the limit is refused wherever it enters (the chat page, the widget, the
conversations API, the runs API), with the limit named, and nothing is stored or echoed."""

from __future__ import annotations

import json
import secrets

import pytest
from django.test import Client
from django.urls import reverse

from conversations.limits import MAX_MESSAGE_CHARS
from conversations.models import Conversation, Message
from conversations.widget import EmbedSettings, embed_settings_change
from flows.models import Run

HUGE = "All work and no play. " * 95_000  # about 2 MB
OVER = "x" * (MAX_MESSAGE_CHARS + 1)
LIMIT = f"{MAX_MESSAGE_CHARS:,} characters"
SITE = "https://shop.example"


@pytest.fixture
def flow(echo_model, make_flow):
    return make_flow(echo_model)


def test_the_chat_page_refuses_a_two_megabyte_message_without_echoing_it(client, owner, flow):
    client.force_login(owner)
    response = client.post(reverse("conversations:chat-send", args=[flow.slug]), {"message": HUGE})
    assert response.status_code == 400
    body = response.content.decode()
    assert LIMIT in body and "Nothing was sent" in body
    assert len(body) < 10_000  # no bubble of the refused text
    assert not Conversation.objects.exists() and not Message.objects.exists()
    assert not Run.objects.exists()


def test_the_chat_page_refuses_a_long_message_in_a_conversation(client, owner, flow):
    from conversations.services import conversation_start

    conversation = conversation_start(flow=flow, user=owner)
    client.force_login(owner)
    response = client.post(
        reverse("conversations:chat-send", args=[flow.slug]),
        {"message": OVER, "conversation": str(conversation.id)},
    )
    assert response.status_code == 400 and LIMIT in response.content.decode()
    assert not Message.objects.exists()


def test_the_chat_page_gives_its_script_the_limit(client, owner, flow):
    client.force_login(owner)
    page = client.get(reverse("conversations:chat", args=[flow.slug])).content.decode()
    assert f'data-max-chars="{MAX_MESSAGE_CHARS}"' in page
    assert 'maxlength="200000"' not in page  # the browser would cut a paste silently


def test_the_widget_refuses_a_long_message(owner, flow):
    embedded = embed_settings_change(
        flow=flow,
        user=owner,
        embed=EmbedSettings(
            enabled=True,
            allowed_origins=[SITE],
            title="Help",
            colour="#112233",
            sign_in_required=False,
            remote_images=False,
            requests_per_minute=None,
            tokens_per_day=None,
        ),
    )
    browser = Client(REMOTE_ADDR=f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.9")
    session = browser.post(
        reverse("conversations:widget-session", args=[embedded.embed_id]),
        json.dumps({"origin": SITE, "visitor": ""}),
        content_type="application/json",
        headers={"Origin": SITE},
    )
    token = session.json()["token"]
    response = browser.post(
        reverse("conversations:widget-send", args=[embedded.embed_id]),
        {"message": HUGE, "conversation": ""},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert LIMIT in response.content.decode() and len(response.content) < 10_000
    assert not Conversation.objects.exists() and not Message.objects.exists()


def _api(client, api_key, name: str, args, body) -> object:
    return client.post(
        reverse(name, args=args),
        json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )


def test_the_conversations_api_refuses_a_long_message(client, flow, api_key):
    started = _api(client, api_key, "conversations:api-flow-conversations", [flow.slug], {})
    assert started.status_code == 201, started.content
    url_args = [started.json()["id"]]
    over = _api(
        client, api_key, "conversations:api-conversation-messages", url_args, {"text": OVER}
    )
    assert over.status_code == 400 and LIMIT in over.json()["error"]["message"]
    huge = _api(
        client, api_key, "conversations:api-conversation-messages", url_args, {"text": HUGE}
    )
    assert huge.status_code == 413 and "1 MB" in huge.json()["error"]["message"]
    assert not Message.objects.exists()


def test_the_runs_api_refuses_a_long_input(client, flow, api_key):
    over = _api(
        client, api_key, "flows:api-runs-create", [flow.slug], {"inputs": {"message": OVER}}
    )
    assert over.status_code == 400 and "200,000 characters" in over.content.decode()
    assert not Run.objects.exists()
