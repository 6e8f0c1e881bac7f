"""Conversation variables across a sub-flow: the child run starts from the parent's variables,
and what it writes with a conversation-scope assigner reaches the parent run (its later nodes,
then the conversation) when the child succeeds; a failed child changes none. Real runs of a
parent flow calling a published child flow, on the real worker."""

from __future__ import annotations

from conversations.models import Conversation
from conversations.services import conversation_start, message_send, messages_settle
from flows.models import NodeResult, Run, RunSource, RunStatus
from flows.services import flow_create, flow_publish
from tests.flows.helpers import wait_for_run
from tests.flows.test_engine import edge, node, output, text_input


def _keep(node_id: str, name: str, value: str, scope: str = "conversation") -> dict:
    config = {"variables": [{"name": name, "value": value}], "scope": scope}
    return node(node_id, "variable_assigner", config)


def _child(fails: bool = False) -> dict:
    """Keeps ``greeted`` from the conversation's ``name`` and the message; with ``fails``, a
    node after the write fails (the message is not a number)."""
    nodes = [
        text_input(),
        _keep("keep", "greeted", "{{conversation.name}} via {{input_1.message}}"),
    ]
    edges = [edge("keep", "greeted", "output_1", "text")]
    if fails:
        count = {"variables": [{"name": "n", "type": "number", "value": "{{input_1.message}}"}]}
        nodes.append(node("count", "variable_assigner", count))
        edges = [
            edge("keep", "greeted", "count", "_trigger"),
            edge("count", "n", "output_1", "text"),
        ]
    return {"nodes": [*nodes, output("text")], "edges": edges}


def _parent(**policy) -> dict:
    """Calls the child, then reads back the conversation's ``greeted`` within the same run."""
    call = node(
        "call",
        "subflow",
        {
            "flow": "child",
            "inputs": {"message": "{{input_1.message}}"},
            "outputs": [{"name": "text"}],
        },
        **policy,
    )
    return {
        "nodes": [
            text_input(),
            call,
            _keep("after", "seen", "{{conversation.greeted}}", scope="run"),
            output("text", "seen"),
        ],
        "edges": [
            edge("call", "text", "output_1", "text"),
            edge("call", "text", "after", "_trigger"),
            edge("after", "seen", "output_1", "seen"),
        ],
    }


def _publish(workspace, owner, graph: dict, slug: str):
    flow = flow_create(workspace=workspace, slug=slug, name=slug.title(), graph=graph, user=owner)
    return flow_publish(flow=flow, user=owner)


def _turn(workspace, owner, parent: dict, variables: dict) -> tuple[Run, Conversation]:
    """One turn of a conversation with the parent flow that holds ``variables``."""
    flow = _publish(workspace, owner, parent, "parent")
    conversation = conversation_start(flow=flow, user=owner)
    Conversation.objects.filter(id=conversation.id).update(variables=variables)
    conversation.refresh_from_db()
    exchange = message_send(conversation=conversation, text="hi", source=RunSource.CHAT, user=owner)
    run = wait_for_run(exchange.run.id)
    messages_settle(conversation)
    conversation.refresh_from_db()
    return run, conversation


def test_a_sub_flow_reads_the_conversations_variables_and_its_writes_reach_it(
    worker, workspace, owner
):
    _publish(workspace, owner, _child(), "child")

    run, conversation = _turn(workspace, owner, _parent(), {"name": "Ada"})

    assert run.status == RunStatus.SUCCEEDED, run.error
    # The child read the parent's ``name``; the parent's node after it reads the child's write.
    assert run.outputs == {"text": "Ada via hi", "seen": "Ada via hi"}
    (child,) = Run.objects.filter(parent=run)
    assert child.variables == {"name": "Ada", "greeted": "Ada via hi"}
    assert run.variables == {"name": "Ada", "greeted": "Ada via hi"}
    call = NodeResult.objects.get(run=run, node_id="call")
    assert call.details["conversation_variables"] == ["greeted"]
    assert conversation.variables == {"name": "Ada", "greeted": "Ada via hi"}


def test_a_failed_sub_flow_changes_no_variable(worker, workspace, owner):
    _publish(workspace, owner, _child(fails=True), "child")
    lenient = _parent(on_error="default", default={"text": "fallback"})

    run, conversation = _turn(workspace, owner, lenient, {"name": "Ada", "greeted": "before"})

    assert run.status == RunStatus.SUCCEEDED, run.error
    (child,) = Run.objects.filter(parent=run)
    assert child.status == RunStatus.FAILED
    assert child.variables["greeted"] == "Ada via hi"  # written on the child only
    assert run.outputs == {"text": "fallback", "seen": "before"}
    assert run.variables == {"name": "Ada", "greeted": "before"}
    assert conversation.variables == {"name": "Ada", "greeted": "before"}
