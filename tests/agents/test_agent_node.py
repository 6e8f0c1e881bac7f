"""The agent node: a published agent runs as one node of a flow on the real worker, its model a
scripted OpenAI server at the network boundary; its steps and its streamed answer are on the
run's events, a limit gives outcome ``limited``, and an agent that is not published (or a model
that cannot answer) fails the run with the reason."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from django.db.models import Sum

from agents.models import Agent
from agents.nodes.agent import history_turns
from agents.services import agent_create, agent_publish
from agents.state import AgentState, Status
from catalog.models import Usage
from catalog.services import model_create
from flows.models import NodeResult, NodeStatus, RunSource, RunStatus
from flows.nodes import node_types
from flows.nodes.base import NodeContext
from flows.schema import GraphError, check_graph
from flows.services import flow_create, flow_publish, run_create
from tests.agents.scripted_model import answer, calls
from tests.catalog.remote_server import Reply
from tests.flows.helpers import logged_events, wait_for_event, wait_for_run
from tests.flows.nodes.graphs import edge, graph, node, run_graph
from tests.knowledge.helpers import engine_for
from workspaces.sharing import object_grant

CALCULATE = ("calculator", '{"expression": "6 * 7"}')


def published_agent(workspace, owner, slug: str = "maths", **spec) -> Agent:
    spec = {
        "instructions": {"text": "Compute with the calculator."},
        "model": "remote",
        "tools": [{"tool": "calculator"}],
        **spec,
    }
    agent = agent_create(workspace=workspace, name=slug.title(), slug=slug, spec=spec, actor=owner)
    agent_publish(agent=agent, actor=owner)
    return agent


def agent_graph(slug: str = "maths", **config) -> dict:
    """input (message) → agent → output (answer, steps, outcome)."""
    return graph(
        node("agent_1", "agent", {"agent": slug, **config}),
        edges=[
            edge("input_1.message", "agent_1.message"),
            edge("agent_1.answer", "output_1.text"),
            edge("agent_1.steps", "output_1.steps"),
            edge("agent_1.outcome", "output_1.outcome"),
        ],
        outputs={"text": "text", "steps": "number", "outcome": "text"},
    )


def test_ports_and_the_history_input_when_asked_for():
    kind = node_types()["agent"]
    plain = kind.Config.model_validate({"agent": "maths"})
    assert kind.input_ports(plain) == {"message": "text"}
    with_history = kind.Config.model_validate({"agent": "maths", "history": True})
    assert kind.input_ports(with_history) == {"message": "text", "history": "json"}
    assert kind.output_ports(plain) == {"answer": "text", "steps": "number", "outcome": "text"}


def test_a_flow_refuses_an_agent_that_is_not_published(db, workspace, owner):
    model_create(slug="remote", name="Remote", engine="echo", workspace=workspace, actor=owner)
    agent_create(
        workspace=workspace,
        name="Draft only",
        slug="draft-only",
        spec={"model": "remote", "tools": [{"tool": "calculator"}]},
        actor=owner,
    )
    with pytest.raises(GraphError) as caught:
        check_graph(agent_graph("draft-only"), workspace=workspace, user=owner)
    wanted = "node 'agent_1': agent 'draft-only' has no published version that this flow may use"
    assert wanted in caught.value.errors, caught.value.errors


def test_a_member_who_may_not_use_the_agent_reads_the_same_refusal(db, workspace, owner, viewer):
    model_create(slug="remote", name="Remote", engine="echo", workspace=workspace, actor=owner)
    published_agent(workspace, owner)
    check_graph(agent_graph(), workspace=workspace, user=owner)  # the author may
    with pytest.raises(GraphError) as caught:
        check_graph(agent_graph(), workspace=workspace, user=viewer)
    wanted = "node 'agent_1': agent 'maths' has no published version that this flow may use"
    assert wanted in caught.value.errors, caught.value.errors
    with pytest.raises(GraphError) as pinned:
        check_graph(agent_graph(version=2), workspace=workspace, user=owner)
    assert "node 'agent_1': agent 'maths' has no version 2 that this flow may use" in (
        pinned.value.errors
    )


def test_the_agent_calls_a_tool_and_its_answer_streams(model, server, workspace, owner):
    published_agent(workspace, owner)
    server.plan(calls(CALCULATE), answer("Six times seven ", "is 42."))

    run = run_graph(
        workspace=workspace, owner=owner, graph=agent_graph(), inputs={"message": "6 × 7?"}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "Six times seven is 42.", "steps": 2, "outcome": "done"}
    result = NodeResult.objects.get(run=run, node_id="agent_1")
    assert result.details["agent"] == "maths" and result.details["version"] == 1
    assert "agent_state" not in result.details  # the checkpoint is not kept once it is done
    # The steps' tokens, as their usage rows metered them, are the node's and the run's.
    metered = Usage.objects.filter(run_id=run.id).aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens")
    )
    assert metered["i"] == 50  # 20, then 30, as the scripted server reports them
    assert (result.input_tokens, result.output_tokens) == (metered["i"], metered["o"])
    assert (run.usage["input_tokens"], run.usage["output_tokens"]) == (metered["i"], metered["o"])
    logged = [e for e in logged_events(run.id) if e.get("node") == "agent_1"]
    types = [e["type"] for e in logged]
    assert types.index("tool.call") < types.index("tool.result") < types.index("token")
    call = next(e for e in logged if e["type"] == "tool.call")
    assert call["data"]["tool"] == "calculator"
    assert call["data"]["arguments"] == {"expression": "6 * 7"}
    tool_result = next(e for e in logged if e["type"] == "tool.result")
    assert "42" in tool_result["data"]["content"]
    streamed = "".join(e["data"]["text"] for e in logged if e["type"] == "token")
    assert streamed == "Six times seven is 42."
    # The model read the calculator's result on its second call.
    assert "42" in str(server.messages(1)[-1]["content"])


def test_a_limit_ends_the_node_with_outcome_limited(model, server, workspace, owner):
    published_agent(workspace, owner, limits={"max_steps": 1})
    server.plan(calls(CALCULATE), answer("never asked"))

    run = run_graph(
        workspace=workspace, owner=owner, graph=agent_graph(), inputs={"message": "6 × 7?"}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["outcome"] == "limited"
    assert "limit of 1 steps" in run.outputs["text"]
    assert len(server.chats()) == 1


def test_an_agent_no_longer_published_fails_the_run_saying_so(model, server, workspace, owner):
    agent = published_agent(workspace, owner)
    server.plan(answer("never asked"))
    flow = flow_create(
        workspace=workspace, slug="withdrawn", name="Withdrawn", graph=agent_graph(), user=owner
    )
    flow = flow_publish(flow=flow, user=owner)
    # Withdrawn after the flow was published (no service withdraws one yet: the row says so).
    Agent.objects.filter(id=agent.id).update(published_version=None)
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": "hi"}, source=RunSource.STUDIO
    )
    run = wait_for_run(run.id)

    assert run.status == RunStatus.FAILED
    assert "agent 'maths' has no published version that this flow may use" in run.error
    assert server.chats() == []


def test_a_model_error_fails_the_run_with_the_reason(model, server, workspace, owner):
    published_agent(workspace, owner)
    server.plan(Reply(status=400, body='{"error": {"message": "the key was refused"}}'))

    run = run_graph(
        workspace=workspace, owner=owner, graph=agent_graph(), inputs={"message": "6 × 7?"}
    )

    assert run.status == RunStatus.FAILED
    assert "the agent could not answer" in run.error, run.error


def test_a_worker_killed_mid_step_resumes_without_repeating_the_tool_call(
    model, server, worker, workspace, owner
):
    published_agent(workspace, owner)
    stalled = answer("never heard")
    stalled.delay_s = 20  # the second step's model call is cut off by the kill
    server.plan(calls(CALCULATE), stalled, answer("It is 42."))
    flow = flow_create(
        workspace=workspace, slug="durable", name="Durable", graph=agent_graph(), user=owner
    )
    flow = flow_publish(flow=flow, user=owner)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "6 × 7?"},
        source=RunSource.STUDIO,
    )
    wait_for_event(run.id, "tool.result")
    deadline = time.monotonic() + 20
    while len(server.chats()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = NodeResult.objects.get(run=run, node_id="agent_1").details["agent_state"]
    assert stored["steps"] == 1 and "42" in str(stored["messages"][-1])  # checkpointed
    worker.kill()

    worker.start()  # its reaper finds the node whose heartbeat stopped and dispatches it again
    run = wait_for_run(run.id, timeout=60)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "It is 42.", "steps": 2, "outcome": "done"}
    assert NodeResult.objects.get(run=run, node_id="agent_1").attempts == 2
    assert [e["type"] for e in logged_events(run.id)].count("tool.call") == 1
    # Three model calls: the first step's was not made again, the cut-off one was retried.
    assert len(server.chats()) == 3
    assert "42" in str(server.messages(2)[-1]["content"])


def test_the_history_input_gives_the_agent_the_turns_before(model, server, workspace, owner):
    published_agent(workspace, owner)
    server.plan(answer("You asked about seven."))
    data = agent_graph(history=True)
    data["nodes"][0]["config"]["fields"].append({"name": "history", "type": "json"})
    data["edges"].append(edge("input_1.history", "agent_1.history"))
    turns = [
        {"role": "user", "content": "Remember seven."},
        {"role": "assistant", "content": "Noted."},
        {"role": "system", "content": "not a turn: left out"},
    ]

    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=data,
        inputs={"message": "What did I ask?", "history": turns},
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    sent = server.messages(0)
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert [m["content"] for m in sent[1:]] == ["Remember seven.", "Noted.", "What did I ask?"]


def test_a_run_started_by_a_member_who_may_not_use_the_agent_fails(
    model, server, workspace, owner, make_member
):
    published_agent(workspace, owner)
    server.plan(answer("never asked"))
    flow = flow_create(
        workspace=workspace, slug="theirs", name="Theirs", graph=agent_graph(), user=owner
    )
    flow = flow_publish(flow=flow, user=owner)
    # Shared the flow, not the agent.
    member = make_member("operator", limited=True)
    object_grant(obj=flow, subject=member, level="use", actor=owner)

    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "hi"},
        source=RunSource.STUDIO,
        user=member,
    )
    run = wait_for_run(run.id)

    assert run.status == RunStatus.FAILED
    assert "agent 'maths' has no published version that this flow may use" in run.error
    assert server.chats() == []


def test_a_retry_after_the_agent_ended_gives_its_answer_again_without_asking(db, workspace, owner):
    # The worker was lost after the agent's last checkpoint, before the node's result was
    # stored: the retried node finds the ended state and answers from it, no model called.
    model_create(slug="remote", name="Remote", engine="echo", workspace=workspace, actor=owner)
    published_agent(workspace, owner)
    flow = flow_create(
        workspace=workspace, slug="ended", name="Ended", graph=agent_graph(), user=owner
    )
    flow = flow_publish(flow=flow, user=owner)
    run = run_create(
        flow=flow, version=flow.published_version, inputs={"message": "6 × 7?"}, source="studio"
    )
    ended = AgentState(
        run_id=f"{run.id}:agent_1",
        status=Status.DONE,
        steps=2,
        tokens=60,
        started_at=0.0,
        messages=[],
        answer="It is 42.",
    )
    NodeResult.objects.create(
        run=run,
        node_id="agent_1",
        node_type="agent",
        status=NodeStatus.RUNNING,
        details={"agent_state": ended.model_dump(mode="json")},
    )
    emitted: list[tuple[str, dict]] = []

    async def emit(type_: str, data: dict) -> None:
        emitted.append((type_, data))

    ctx = NodeContext(
        run_id=str(run.id),
        node_id="agent_1",
        workspace_id=workspace.id,
        emit=emit,
        engine_for=engine_for(),
        user_id=owner.id,
    )
    kind = node_types()["agent"]
    config = kind.Config.model_validate({"agent": "maths"})

    output = async_to_sync(kind.arun)(ctx, config, {"message": "6 × 7?"})

    assert output.outputs == {"answer": "It is 42.", "steps": 2, "outcome": "done"}
    assert emitted == [("token", {"text": "It is 42."})]


def test_the_history_keeps_the_recent_turns_that_fit_the_agent_s_memory_window():
    turns = [
        {"role": "user", "content": "old question " * 40},
        {"role": "assistant", "content": "old answer " * 40},
        {"role": "user", "content": "Remember seven."},
        {"role": "assistant", "content": "Noted."},
        {"role": "tool", "content": "not a turn"},
        "not a turn either",
    ]
    assert history_turns(turns, 2_000) == turns[:4]
    assert history_turns(turns, 20) == turns[2:4]
    assert history_turns(turns, 0) == []
    assert history_turns("not a list", 2_000) == []
