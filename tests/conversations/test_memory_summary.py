"""An LLM node whose token budget drops a conversation's older turns may summarise them: the
summary, written by the node's own model and metered with the node, reaches the model as a
system note before the turns it keeps; the same dropped turns are summarised once, and more
dropped turns extend the summary instead of starting again. The echo model answers with the
last user message (so a summary is the echo of the summary request) and counts every message it
was shown in its input tokens, which is how these tests see what the model received."""

from __future__ import annotations

import re

from catalog.models import Usage
from conversations.services import conversation_start, message_send
from flows.models import NodeResult, RunSource
from flows.nodes.memory import NOTE, SUMMARY_SYSTEM
from flows.services import flow_create, flow_publish
from tests.flows.helpers import wait_for_run
from tests.flows.nodes.graphs import edge, graph, node

WORD = re.compile(r"\s*\S+")  # the echo engine's tokens
FIRST = "my name is Ada and I keep bees in Lyon"


def words(text: str) -> int:
    return len(WORD.findall(text))


def _flow(workspace, owner, model, overflow: str = "summarise"):
    config = {
        "model": model.slug,
        "prompt": "{{input_1.message}}",
        "memory": "tokens",
        "memory_tokens": 5,  # about 20 characters of recent turns
        "memory_overflow": overflow,
    }
    spec = graph(node("llm_1", "llm", config), edges=[edge("llm_1.text", "output_1.text")])
    flow = flow_create(workspace=workspace, slug="talk", name="Talk", graph=spec, user=owner)
    return flow_publish(flow=flow, user=owner)


def _say(conversation, text: str, user) -> NodeResult:
    exchange = message_send(conversation=conversation, text=text, source=RunSource.CHAT, user=user)
    run = wait_for_run(exchange.run.id)
    assert run.status == "succeeded", run.error
    return NodeResult.objects.get(run=run, node_id="llm_1")


def _calls(result: NodeResult) -> list[Usage]:
    return list(Usage.objects.filter(run_id=result.run_id, node_id="llm_1").order_by("id"))


def test_dropped_turns_reach_the_model_as_a_summary_made_once(worker, workspace, owner, echo_model):
    conversation = conversation_start(flow=_flow(workspace, owner, echo_model), user=owner)
    _say(conversation, FIRST, owner)

    # The first exchange does not fit the budget: it is summarised.
    second = _say(conversation, "short", owner)

    memory = second.details["memory"]
    assert memory["dropped_turns"] == 2 and memory["summary"] == "written"
    note = memory["note"]
    assert f"User: {FIRST}\n\nAssistant: {FIRST}" in note
    summary_call, answer_call = _calls(second)
    # The summary request: its instructions and the dropped turns.
    assert summary_call.input_tokens == words(SUMMARY_SYSTEM) + words(note)
    assert summary_call.output_tokens == words(note)
    # The answer's request: the note as a system message, then the message (nothing else fits).
    assert answer_call.input_tokens == words(NOTE + note) + 1
    assert second.input_tokens == summary_call.input_tokens + answer_call.input_tokens
    assert second.output_tokens == summary_call.output_tokens + answer_call.output_tokens

    # The same turns dropped again: the kept summary serves, no model call is made for it.
    third = _say(conversation, "last", owner)

    assert third.details["memory"]["summary"] == "cached"
    assert third.details["memory"]["note"] == note
    (answer_call,) = _calls(third)
    assert answer_call.input_tokens == words(NOTE + note) + 1 + 1 + 1  # short, short, last


def test_more_dropped_turns_extend_the_summary(worker, workspace, owner, echo_model):
    conversation = conversation_start(flow=_flow(workspace, owner, echo_model), user=owner)
    _say(conversation, FIRST, owner)
    first_note = _say(conversation, "short", owner).details["memory"]["note"]
    _say(conversation, "last", owner)
    _say(conversation, "again", owner)  # "short", "last" and "again" still fit

    fifth = _say(conversation, "more", owner)

    memory = fifth.details["memory"]
    assert memory["dropped_turns"] == 4 and memory["summary"] == "extended"
    # Only the newly dropped exchange is sent, with the summary so far.
    assert memory["note"].startswith(f"The summary so far:\n{first_note}")
    assert "User: short\n\nAssistant: short" in memory["note"]
    assert FIRST not in memory["note"].removeprefix(f"The summary so far:\n{first_note}")
    assert len(_calls(fifth)) == 2


def test_with_drop_the_older_turns_are_only_left_out(worker, workspace, owner, echo_model):
    flow = _flow(workspace, owner, echo_model, overflow="drop")
    conversation = conversation_start(flow=flow, user=owner)
    _say(conversation, FIRST, owner)

    second = _say(conversation, "short", owner)

    assert "memory" not in second.details
    assert [call.input_tokens for call in _calls(second)] == [1]
