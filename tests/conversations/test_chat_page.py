"""The chat page: a member's conversations with a flow, each one multi-turn, kept across
visits; the list, renaming and deleting; nobody reaches another member's conversation."""

from __future__ import annotations

from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from conversations.models import Conversation
from flows.models import Run
from tests.flows.helpers import wait_for_run


def _send(client, flow, message: str, conversation: Conversation | None = None):
    data = {"message": message, "conversation": str(conversation.id) if conversation else ""}
    return client.post(reverse("conversations:chat-send", args=[flow.slug]), data)


def test_a_first_message_starts_a_conversation_the_next_one_continues(
    client, worker, owner, echo_model, make_flow
):
    flow = make_flow(echo_model)
    client.force_login(owner)

    first = _send(client, flow, "capital of France")

    assert first.status_code == 200
    conversation = Conversation.objects.get()
    assert conversation.user == owner and conversation.title == "capital of France"
    opened = reverse("conversations:conversation", args=[flow.slug, conversation.id])
    assert first["HX-Push-Url"] == opened
    # The form's next message goes to this conversation (an out-of-band swap of its field).
    assertContains(first, f'value="{conversation.id}"')
    assertContains(first, 'hx-swap-oob="true"')
    wait_for_run(Run.objects.get().id)

    second = _send(client, flow, "and its population", conversation)

    assert second.status_code == 200
    assert "HX-Push-Url" not in second
    latest = Run.objects.order_by("-created_at").first()
    assert [turn["content"] for turn in latest.history] == ["capital of France"] * 2
    wait_for_run(latest.id)
    page = client.get(opened)
    assertContains(page, "capital of France")
    assertContains(page, "and its population")
    assertContains(page, 'aria-current="page"')


def test_a_message_names_only_the_users_own_conversation_of_this_flow(
    client, db, owner, make_member, echo_model, make_flow
):
    flow = make_flow(echo_model)
    operator = make_member("operator")
    client.force_login(operator)
    _send(client, flow, "mine")
    theirs = Conversation.objects.get()

    client.force_login(make_member("operator", username="someone-else"))
    assert _send(client, flow, "let me in", theirs).status_code == 404
    page = reverse("conversations:conversation", args=[flow.slug, theirs.id])
    assert client.get(page).status_code == 404
    # Its flow's editor may review it elsewhere, never speak in it.
    client.force_login(owner)
    assert _send(client, flow, "hijack", theirs).status_code == 403
    assert theirs.messages.count() == 2


def test_a_conversation_is_renamed_and_deleted_by_its_user_only(
    client, db, owner, make_member, echo_model, make_flow
):
    flow = make_flow(echo_model)
    client.force_login(owner)
    _send(client, flow, "hello")
    conversation = Conversation.objects.get()
    rename = reverse("conversations:conversation-rename", args=[flow.slug, conversation.id])
    delete = reverse("conversations:conversation-delete", args=[flow.slug, conversation.id])

    assert client.post(rename, {"title": "  Trip   planning "}).status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Trip planning"
    assert client.post(rename, {"title": "   "}).status_code == 400
    assertContains(client.get(reverse("conversations:chat", args=[flow.slug])), "Trip planning")

    client.force_login(make_member("operator"))
    assert client.post(delete).status_code == 404
    client.force_login(owner)
    assert client.post(delete).status_code == 302
    assert not Conversation.objects.exists()
    assertNotContains(client.get(reverse("conversations:chat", args=[flow.slug])), "Trip planning")


def test_an_empty_first_message_stores_no_conversation(client, db, owner, echo_model, make_flow):
    flow = make_flow(echo_model)
    client.force_login(owner)
    response = _send(client, flow, "   ")
    assert response.status_code == 400
    assertContains(response, "Type a message first.", status_code=400)
    assert not Conversation.objects.exists()


def test_an_answer_takes_feedback_from_its_own_user_only(
    client, db, owner, make_member, echo_model, make_flow
):
    flow = make_flow(echo_model)
    client.force_login(owner)
    _send(client, flow, "hello")
    answer = Conversation.objects.get().messages.get(role="assistant")
    feedback = reverse("conversations:message-feedback", args=[flow.slug, answer.id])

    # A comment before any rating is refused; then a rating; then Enter sends a comment alone.
    assert client.post(feedback, {"rating": "", "comment": "hm"}).status_code == 400
    rated = client.post(feedback, {"rating": "-1", "comment": ""})
    assert rated.status_code == 200
    assertContains(rated, 'aria-pressed="true"')
    assert client.post(feedback, {"rating": "", "comment": "too vague"}).status_code == 200
    answer.refresh_from_db()
    assert (answer.feedback, answer.feedback_comment) == (-1, "too vague")
    assert client.post(feedback, {"rating": "7"}).status_code == 400
    question = Conversation.objects.get().messages.get(role="user")
    on_question = reverse("conversations:message-feedback", args=[flow.slug, question.id])
    assert client.post(on_question, {"rating": "1"}).status_code == 400

    client.force_login(make_member("operator"))
    assert client.post(feedback, {"rating": "1"}).status_code == 404
    answer.refresh_from_db()
    assert answer.feedback == -1


def test_the_flows_editors_review_its_conversations_and_others_do_not(
    client, db, owner, make_member, echo_model, make_flow
):
    flow = make_flow(echo_model)
    operator = make_member("operator")
    client.force_login(operator)
    _send(client, flow, "a question from the operator")
    conversation = Conversation.objects.get()
    answer = conversation.messages.get(role="assistant")
    client.post(
        reverse("conversations:message-feedback", args=[flow.slug, answer.id]),
        {"rating": "1", "comment": "spot on"},
    )
    listing = reverse("conversations:review-list", args=[flow.slug])
    detail = reverse("conversations:review-detail", args=[flow.slug, conversation.id])

    # An operator may chat, not review.
    assert client.get(listing).status_code == 403
    assert client.get(detail).status_code == 403

    client.force_login(owner)
    page = client.get(listing)
    assertContains(page, "a question from the operator")
    assertContains(page, "👍 1")
    assertContains(page, operator.username)
    shown = client.get(detail)
    assertContains(shown, "spot on")
    assertContains(shown, "Read only.")
    assertNotContains(shown, 'id="chat-form"')


def test_an_unpublished_flows_greyed_send_says_why(client, db, owner, echo_model, make_flow):
    make_flow(echo_model, slug="draft-only", publish=False)
    client.force_login(owner)
    page = client.get(reverse("conversations:chat", args=["draft-only"]))
    assertContains(page, 'id="not-published"')
    assertContains(page, 'disabled title="Publish the flow first')
    assertContains(page, 'aria-describedby="not-published"')
