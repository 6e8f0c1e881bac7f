"""Conversation variables: a flow's variable assigner keeps values for the conversation's later
turns (``scope: conversation``), its nodes read them as ``{{conversation.<name>}}``, a failed
turn changes none, the limits hold against a hostile message, and a run outside a conversation
keeps what it writes to itself. Driven through the real worker and the echo model, which
answers with its prompt."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from conversations.models import Conversation
from conversations.services import conversation_start, message_send, messages_settle
from flows.models import NodeResult, Run, RunSource, RunStatus
from flows.schema import GraphError, check_graph
from flows.services import flow_create, flow_publish, run_create
from flows.services.drafts import flow_draft_run
from flows.variables import MAX_BYTES, MAX_VARIABLES
from tests.flows.helpers import wait_for_run
from tests.flows.nodes.graphs import edge, graph, node
from workspaces.services import api_key_create


def _assigner(node_id: str, scope: str, **values: str) -> dict:
    variables = [{"name": name, "value": value} for name, value in values.items()]
    return node(node_id, "variable_assigner", {"variables": variables, "scope": scope})


def _greeter(model) -> dict:
    """The model greets the name kept by the turn before, then the message becomes the name;
    a run-scoped assigner after it reads the new name back within the same run."""
    llm = node(
        "llm_1",
        "llm",
        {"model": model.slug, "prompt": "Hello {{conversation.name}}: {{input_1.message}}"},
    )
    return graph(
        llm,
        _assigner("keep", "conversation", name="{{input_1.message}}"),
        _assigner("seen", "run", now="{{conversation.name}}"),
        edges=[
            edge("llm_1.text", "output_1.text"),
            edge("llm_1.text", "keep._trigger"),
            edge("keep.name", "seen._trigger"),
            edge("seen.now", "output_1.seen"),
        ],
        outputs={"text": "text", "seen": "text"},
    )


def _publish(workspace, owner, spec: dict, slug: str = "talk"):
    flow = flow_create(workspace=workspace, slug=slug, name=slug.title(), graph=spec, user=owner)
    return flow_publish(flow=flow, user=owner)


def _say(conversation, text: str, user, status: str = RunStatus.SUCCEEDED) -> Run:
    exchange = message_send(conversation=conversation, text=text, source=RunSource.CHAT, user=user)
    run = wait_for_run(exchange.run.id)
    assert run.status == status, run.error
    messages_settle(conversation)
    return run


def test_a_variable_kept_by_one_turn_is_read_by_the_next(worker, workspace, owner, echo_model):
    flow = _publish(workspace, owner, _greeter(echo_model))
    conversation = conversation_start(flow=flow, user=owner)

    first = _say(conversation, "Ada", owner)
    second = _say(conversation, "Bob", owner)

    # Turn 1 had no name yet (a missing variable renders empty); turn 2 reads turn 1's.
    assert first.outputs["text"] == "Hello : Ada"
    assert second.outputs["text"] == "Hello Ada: Bob"
    # Later nodes of the same run see the value written before them.
    assert first.outputs["seen"] == "Ada" and second.outputs["seen"] == "Bob"
    assert first.variables == {"name": "Ada"} and second.variables == {"name": "Bob"}
    conversation.refresh_from_db()
    assert conversation.variables == {"name": "Bob"}
    answers = [m.text for m in conversation.messages.filter(role="assistant")]
    assert answers == ["Hello : Ada", "Hello Ada: Bob"]


def test_a_failed_turn_changes_no_variable(worker, workspace, owner, echo_model):
    # The name is kept, then a number is read from the message: a word fails the run after the
    # write.
    spec = graph(
        _assigner("keep", "conversation", name="{{input_1.message}}"),
        node(
            "count",
            "variable_assigner",
            {"variables": [{"name": "n", "type": "number", "value": "{{input_1.message}}"}]},
        ),
        edges=[edge("keep.name", "count._trigger"), edge("count.n", "output_1.n")],
        outputs={"n": "number"},
    )
    flow = _publish(workspace, owner, spec)
    conversation = conversation_start(flow=flow, user=owner)
    _say(conversation, "42", owner)

    failed = _say(conversation, "not a number", owner, status=RunStatus.FAILED)

    assert failed.variables == {"name": "not a number"}  # written on the run
    conversation.refresh_from_db()
    assert conversation.variables == {"name": "42"}  # never kept


def test_the_api_shows_a_conversations_variables(worker, client, workspace, owner, echo_model):
    flow = _publish(workspace, owner, _greeter(echo_model), slug="greeter")
    key = api_key_create(workspace=workspace, name="tests")[1]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    started = client.post(
        f"/api/v1/flows/{flow.slug}/conversations", {}, content_type="application/json", **auth
    )
    assert started.status_code == 201, started.content
    path = f"/api/v1/conversations/{started.json()['id']}"
    assert client.get(path, **auth).json()["variables"] == {}

    said = client.post(f"{path}/messages", {"text": "Ada"}, content_type="application/json", **auth)

    assert said.status_code == 200, said.content
    assert said.json()["answer"]["text"] == "Hello : Ada"
    assert client.get(path, **auth).json()["variables"] == {"name": "Ada"}


# --- limits -----------------------------------------------------------------------------------


def _keeper(workspace, owner):
    return _publish(
        workspace,
        owner,
        graph(
            _assigner("keep", "conversation", note="{{input_1.message}}"),
            edges=[edge("keep.note", "output_1.text")],
        ),
    )


def _failed_reason(run: Run) -> str:
    return NodeResult.objects.get(run=run, node_id="keep").error


def test_a_write_past_the_number_of_variables_fails_and_keeps_nothing(
    worker, workspace, owner, echo_model
):
    conversation = conversation_start(flow=_keeper(workspace, owner), user=owner)
    full = {f"v{i}": i for i in range(MAX_VARIABLES)}
    Conversation.objects.filter(id=conversation.id).update(variables=full)
    conversation.refresh_from_db()

    run = _say(conversation, "one more", owner, status=RunStatus.FAILED)

    assert f"at most {MAX_VARIABLES} variables" in _failed_reason(run)
    conversation.refresh_from_db()
    assert conversation.variables == full
    # At the limit, a variable already kept may still change: no new one is made.
    at_limit = {"note": "old", **{f"v{i}": i for i in range(MAX_VARIABLES - 1)}}
    Conversation.objects.filter(id=conversation.id).update(variables=at_limit)
    conversation.refresh_from_db()
    _say(conversation, "new", owner)
    conversation.refresh_from_db()
    assert conversation.variables == {**at_limit, "note": "new"}


def test_a_write_past_the_size_fails_and_keeps_nothing(worker, workspace, owner, echo_model):
    conversation = conversation_start(flow=_keeper(workspace, owner), user=owner)
    _say(conversation, "small", owner)

    run = _say(conversation, "x" * (MAX_BYTES + 1), owner, status=RunStatus.FAILED)

    assert f"at most {MAX_BYTES:,} may be kept" in _failed_reason(run)
    conversation.refresh_from_db()
    assert conversation.variables == {"note": "small"}


def test_a_bad_name_is_refused_at_save_and_at_the_runs_start(db, workspace, owner, echo_model):
    with pytest.raises(GraphError) as refused:
        check_graph(graph(_assigner("keep", "conversation", **{"bad-name": "x"}), edges=[]))
    assert any(e.startswith("node 'keep': variables.0.name") for e in refused.value.errors)
    flow = _keeper(workspace, owner)
    for variables, said in [
        ({"bad-name": 1}, "is not a conversation variable name"),
        ({f"v{i}": i for i in range(MAX_VARIABLES + 1)}, "at most 100 variables"),
        ({"big": "x" * MAX_BYTES}, "may be kept"),
        (["not", "an", "object"], "must be an object"),
    ]:
        with pytest.raises(ValidationError, match=said):
            run_create(
                flow=flow,
                version=flow.published_version,
                inputs={"message": "hi"},
                source=RunSource.API,
                variables=variables,
            )
    assert not Run.objects.exists()


def test_outside_a_conversation_the_writes_live_on_the_run(
    worker, client, workspace, owner, echo_model
):
    flow = _publish(workspace, owner, _greeter(echo_model), slug="greeter")
    key = api_key_create(workspace=workspace, name="tests")[1]

    # The editor's test run of the draft, and a run through the run API.
    tested = wait_for_run(flow_draft_run(flow=flow, inputs={"message": "Ada"}, user=owner).id)
    answered = client.post(
        f"/api/v1/flows/{flow.slug}/runs",
        {"inputs": {"message": "Bob"}},
        "application/json",
        headers={"Authorization": f"Bearer {key}"},
    )

    assert tested.status == RunStatus.SUCCEEDED, tested.error
    assert tested.outputs == {"text": "Hello : Ada", "seen": "Ada"}
    assert tested.variables == {"name": "Ada"}
    assert answered.status_code == 200, answered.content
    assert answered.json()["outputs"] == {"text": "Hello : Bob", "seen": "Bob"}
    assert Run.objects.get(id=answered.json()["run_id"]).variables == {"name": "Bob"}
    assert not Conversation.objects.exists()


def test_a_jinja_template_reads_conversation_variables(worker, workspace, owner):
    spec = graph(
        _assigner("keep", "conversation", name="{{input_1.message}}"),
        node("shout", "template", {"template": "{{ conversation.name | upper }}!"}),
        edges=[edge("keep.name", "shout._trigger"), edge("shout.text", "output_1.text")],
    )
    flow = _publish(workspace, owner, spec)

    run = wait_for_run(flow_draft_run(flow=flow, inputs={"message": "Ada"}, user=owner).id)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "ADA!"}
