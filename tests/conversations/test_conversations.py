"""Multi-turn conversations with a published flow: the history each run is given, the memory of
its model nodes, and who may reach a conversation. The echo model answers with the message; it
counts every message it was shown in its input tokens, which is how a test sees the memory."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from conversations.access import access_conversation
from conversations.models import Message
from conversations.selectors import conversation_history
from conversations.services import (
    conversation_start,
    message_feedback,
    message_send,
    messages_settle,
)
from flows.models import NodeResult, RunSource
from flows.services import flow_create, flow_publish
from tests.flows.helpers import wait_for_run
from tests.flows.nodes.graphs import edge, graph, node


def _flow(workspace, owner, model, *, memory: str = "off", history_port: bool = False, **llm):
    config = {"model": model.slug, "prompt": "{{input_1.message}}", "memory": memory, **llm}
    spec = graph(node("llm_1", "llm", config), edges=[edge("llm_1.text", "output_1.text")])
    if history_port:
        spec["nodes"][0]["config"]["history"] = True
        config["prompt"] = "{{input_1.history}} || {{input_1.message}}"
    flow = flow_create(workspace=workspace, slug="talk", name="Talk", graph=spec, user=owner)
    return flow_publish(flow=flow, user=owner)


def _say(conversation, text: str, user):
    exchange = message_send(conversation=conversation, text=text, source=RunSource.CHAT, user=user)
    run = wait_for_run(exchange.run.id)
    assert run.status == "succeeded", run.error
    return run


def _input_tokens(run) -> int:
    return NodeResult.objects.get(run=run, node_id="llm_1").input_tokens


def test_a_second_turn_is_given_the_first_and_the_model_remembers_it(
    worker, workspace, owner, echo_model
):
    flow = _flow(workspace, owner, echo_model, memory="turns", memory_turns=5)
    conversation = conversation_start(flow=flow, user=owner)

    first = _say(conversation, "what is the capital of France", owner)
    second = _say(conversation, "and its population", owner)

    assert first.history == []
    assert second.history == [
        {"role": "user", "content": "what is the capital of France"},
        {"role": "assistant", "content": "what is the capital of France"},
    ]
    # The model was shown both earlier turns (6 words each) before the new message (3 words).
    assert _input_tokens(first) == 6
    assert _input_tokens(second) == 6 + 6 + 3
    messages_settle(conversation)
    stored = [(m.role, m.text) for m in conversation.messages.all()]
    assert stored == [
        ("user", "what is the capital of France"),
        ("assistant", "what is the capital of France"),
        ("user", "and its population"),
        ("assistant", "and its population"),
    ]
    assert conversation.title == "what is the capital of France"


def test_a_model_without_memory_sees_only_the_message(worker, workspace, owner, echo_model):
    flow = _flow(workspace, owner, echo_model)
    conversation = conversation_start(flow=flow, user=owner)
    _say(conversation, "one two three", owner)

    second = _say(conversation, "four five", owner)

    assert len(second.history) == 2  # the run has it; this node does not show it
    assert _input_tokens(second) == 2


def test_memory_by_tokens_keeps_the_recent_turns_that_fit(worker, workspace, owner, echo_model):
    flow = _flow(workspace, owner, echo_model, memory="tokens", memory_tokens=5)
    conversation = conversation_start(flow=flow, user=owner)
    _say(conversation, "a long first message of many many words here", owner)
    _say(conversation, "short", owner)

    third = _say(conversation, "last", owner)

    # About 20 characters fit: the first exchange is dropped, the second ("short" twice) kept.
    assert _input_tokens(third) == 1 + 1 + 1


def test_the_input_node_offers_the_history_as_a_transcript(worker, workspace, owner, echo_model):
    flow = _flow(workspace, owner, echo_model, history_port=True)
    conversation = conversation_start(flow=flow, user=owner)
    first = _say(conversation, "hello", owner)

    second = _say(conversation, "again", owner)

    said = first.outputs["text"]
    assert said.split() == ["||", "hello"]  # no history yet: an empty transcript
    assert second.outputs["text"] == f"User: hello\n\nAssistant: {said} || again"


def test_a_failed_answer_leaves_the_history_without_it(worker, workspace, owner, echo_model):
    flow = _flow(workspace, owner, echo_model)
    conversation = conversation_start(flow=flow, user=owner)
    exchange = message_send(
        conversation=conversation, text="will fail", source=RunSource.CHAT, user=owner
    )
    from flows.services import run_fail

    run_fail(run_id=exchange.run.id, reason="stopped by the test")
    wait_for_run(exchange.run.id)

    messages_settle(conversation)
    answer = Message.objects.get(id=exchange.answer.id)
    assert answer.settled and answer.text == ""
    assert conversation_history(conversation) == [{"role": "user", "content": "will fail"}]


def test_an_empty_message_is_refused_and_starts_nothing(db, workspace, owner, echo_model):
    flow = _flow(workspace, owner, echo_model)
    conversation = conversation_start(flow=flow, user=owner)
    with pytest.raises(ValidationError, match="Type a message"):
        message_send(conversation=conversation, text="   ", source=RunSource.CHAT, user=owner)
    assert not conversation.messages.exists()


def test_only_its_own_user_reaches_a_conversation_and_reviewers_only_read(
    db, workspace, owner, make_member, echo_model
):
    flow = _flow(workspace, owner, echo_model)
    operator = make_member("operator")
    theirs = conversation_start(flow=flow, user=operator)

    assert access_conversation(operator, theirs.id, "send") == theirs
    other = make_member("operator", username="another-operator")
    with pytest.raises(Http404):
        access_conversation(other, theirs.id, "view")
    # The flow's editors review its conversations, and cannot speak in them.
    assert access_conversation(owner, theirs.id, "view") == theirs
    with pytest.raises(PermissionDenied):
        access_conversation(owner, theirs.id, "send")
    with pytest.raises(Http404):
        access_conversation(other, "not-a-uuid", "view")


def test_feedback_is_for_answers_and_is_bounded(db, workspace, owner, echo_model):
    flow = _flow(workspace, owner, echo_model)
    conversation = conversation_start(flow=flow, user=owner)
    exchange = message_send(conversation=conversation, text="hi", source=RunSource.CHAT, user=owner)

    rated = message_feedback(message=exchange.answer, rating=-1, comment=" too short ")
    assert (rated.feedback, rated.feedback_comment) == (-1, "too short")
    with pytest.raises(ValidationError):
        message_feedback(message=exchange.question, rating=1)
    with pytest.raises(ValidationError):
        message_feedback(message=exchange.answer, rating=5)
    with pytest.raises(ValidationError):
        message_feedback(message=exchange.answer, rating=1, comment="x" * 2001)


def test_regenerating_the_last_answer_replaces_the_exchange(worker, workspace, owner, echo_model):
    from conversations.services import message_regenerate

    flow = _flow(workspace, owner, echo_model, memory="turns")
    conversation = conversation_start(flow=flow, user=owner)
    _say(conversation, "first question", owner)
    exchange = message_send(
        conversation=conversation, text="second question", source=RunSource.CHAT, user=owner
    )
    wait_for_run(exchange.run.id)

    again = message_regenerate(answer=exchange.answer, source=RunSource.CHAT, user=owner)
    rerun = wait_for_run(again.run.id)

    # The old exchange is gone, and not part of the new run's history.
    assert [t["content"] for t in rerun.history] == ["first question", "first question"]
    texts = [m.text for m in conversation.messages.filter(role="user")]
    assert texts == ["first question", "second question"]
    assert not Message.objects.filter(id__in=[exchange.question.id, exchange.answer.id]).exists()
    # Only the last answer may be asked again.
    first_answer = conversation.messages.filter(role="assistant").first()
    with pytest.raises(ValidationError, match="last answer"):
        message_regenerate(answer=first_answer, source=RunSource.CHAT, user=owner)


def test_stopping_an_answer_fails_its_run_as_stopped(db, workspace, owner, echo_model):
    from conversations.services import STOPPED, message_stop

    flow = _flow(workspace, owner, echo_model)
    conversation = conversation_start(flow=flow, user=owner)
    exchange = message_send(conversation=conversation, text="hi", source=RunSource.CHAT, user=owner)

    assert message_stop(answer=exchange.answer) is True
    exchange.run.refresh_from_db()
    assert (exchange.run.status, exchange.run.error) == ("failed", STOPPED)
    assert message_stop(answer=exchange.answer) is False  # already ended
    with pytest.raises(ValidationError):
        message_stop(answer=exchange.question)
