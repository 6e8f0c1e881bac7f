"""Conversation variables when two turns of one conversation run at once (two tabs, two API
calls): each run's writes are merged into the conversation's variables as they are when it
settles, under the conversation's lock, so neither loses the other's; past the limits the later
turn's writes are refused and said so on its answer. Driven through the real worker: both runs
start from the same variables before either ends."""

from __future__ import annotations

import threading
import time

from django.db import connection, transaction

from conversations.api import message_data
from conversations.models import Conversation, Message
from conversations.services import Exchange, conversation_start, message_send, messages_settle
from flows.models import Run, RunSource, RunStatus
from flows.services import flow_create, flow_publish
from flows.variables import MAX_VARIABLES
from tests.flows.helpers import wait_for_run
from tests.flows.nodes.graphs import edge, graph, node


def _assigner(node_id: str, **values: str) -> dict:
    variables = [{"name": name, "value": value} for name, value in values.items()]
    return node(node_id, "variable_assigner", {"variables": variables, "scope": "conversation"})


def _two_ways(workspace, owner):
    """A message "a" keeps ``a``, any other keeps ``b``; every message also keeps ``last``."""
    route = node(
        "route",
        "if_else",
        {
            "cases": [
                {
                    "id": "is_a",
                    "conditions": [
                        {"variable": "input_1.message", "operator": "equals", "value": "a"}
                    ],
                }
            ]
        },
    )
    spec = graph(
        route,
        _assigner("keep_a", a="{{input_1.message}}"),
        _assigner("keep_b", b="{{input_1.message}}"),
        _assigner("keep_last", last="{{input_1.message}}"),
        edges=[
            edge("route.is_a", "keep_a._trigger"),
            edge("route.else", "keep_b._trigger"),
            edge("keep_last.last", "output_1.text"),
        ],
    )
    flow = flow_create(workspace=workspace, slug="two", name="Two", graph=spec, user=owner)
    return flow_publish(flow=flow, user=owner)


def _at_once(conversation, owner, *texts: str) -> list[Exchange]:
    """Send ``texts`` as turns that all start before any ends: their runs are enqueued when the
    transaction commits, so each starts from the variables as they are now."""
    with transaction.atomic():
        sent = [
            message_send(conversation=conversation, text=text, source=RunSource.CHAT, user=owner)
            for text in texts
        ]
    for exchange in sent:
        run = wait_for_run(exchange.run.id)
        assert run.status == RunStatus.SUCCEEDED, run.error
    return sent


def _settle_in_thread(conversation_id, start: threading.Barrier | None = None) -> threading.Thread:
    def settle() -> None:
        try:
            if start is not None:
                start.wait(timeout=10)
            messages_settle(Conversation.objects.get(id=conversation_id))
        finally:
            connection.close()

    thread = threading.Thread(target=settle)
    thread.start()
    return thread


def test_two_turns_running_at_once_keep_each_others_variables(worker, workspace, owner, echo_model):
    conversation = conversation_start(flow=_two_ways(workspace, owner), user=owner)
    Conversation.objects.filter(id=conversation.id).update(variables={"kept": "before"})
    conversation.refresh_from_db()

    first, second = _at_once(conversation, owner, "a", "b")

    # Each run saw the variables before either turn, and its own writes only.
    assert Run.objects.get(id=first.run.id).variables == {
        "kept": "before",
        "a": "a",
        "last": "a",
    }
    # Two requests settle both answers at the same moment.
    start = threading.Barrier(2)
    threads = [_settle_in_thread(conversation.id, start) for _ in range(2)]
    for thread in threads:
        thread.join(timeout=30)
    conversation.refresh_from_db()
    # Both turns' names are kept, and the one both wrote has one of their values.
    assert {k: v for k, v in conversation.variables.items() if k != "last"} == {
        "kept": "before",
        "a": "a",
        "b": "b",
    }
    assert conversation.variables["last"] in {"a", "b"}
    answers = Message.objects.filter(conversation=conversation, role="assistant")
    assert [(m.settled, m.text, m.notice) for m in answers] == [(True, "a", ""), (True, "b", "")]


def test_a_settle_waits_for_a_concurrent_change_and_merges_over_it(
    worker, workspace, owner, echo_model
):
    conversation = conversation_start(flow=_two_ways(workspace, owner), user=owner)
    (sent,) = _at_once(conversation, owner, "a")

    # Another turn is settling: it holds the conversation and has written ``b`` and ``last``.
    with transaction.atomic():
        Conversation.objects.select_for_update().get(id=conversation.id)
        Conversation.objects.filter(id=conversation.id).update(variables={"b": "b", "last": "b"})
        thread = _settle_in_thread(conversation.id)
        time.sleep(0.5)
        assert thread.is_alive()  # waits for the other settle's lock
    thread.join(timeout=30)

    conversation.refresh_from_db()
    # The later settled turn's ``last`` wins; the other's ``b`` is not lost.
    assert conversation.variables == {"a": "a", "b": "b", "last": "a"}
    assert Message.objects.get(id=sent.answer.id).settled


def test_past_the_limit_the_later_turns_writes_are_refused_and_said_so(
    worker, client, workspace, owner, echo_model
):
    conversation = conversation_start(flow=_two_ways(workspace, owner), user=owner)
    # Room for two more names: each turn alone fits (``last`` and ``a`` or ``b``), not both.
    full = {f"v{i}": i for i in range(MAX_VARIABLES - 2)}
    Conversation.objects.filter(id=conversation.id).update(variables=full)
    conversation.refresh_from_db()

    first, second = _at_once(conversation, owner, "a", "b")
    messages_settle(conversation)

    conversation.refresh_from_db()
    assert conversation.variables == {**full, "a": "a", "last": "a"}  # the earlier's kept
    kept, refused = (Message.objects.get(id=e.answer.id) for e in (first, second))
    assert kept.notice == "" and refused.text == "b"  # the answer itself stands
    assert refused.notice == (
        "The variables this answer set (b, last) were not kept: a conversation holds at most "
        f"{MAX_VARIABLES} variables ({MAX_VARIABLES + 1} given)."
    )
    assert message_data(refused)["notice"] == refused.notice
    client.force_login(owner)
    page = client.get(f"/chat/{conversation.flow.slug}/c/{conversation.id}/")
    assert refused.notice in page.content.decode()
