"""The agent tool: an agent asks another published agent, which runs as a child run of its
backing flow on the real worker (every model a scripted OpenAI server at the network boundary),
its own steps and usage on its own run; an agent calling itself, or a chain coming back to an
agent already in it, gets a tool error instead of recursing; an agent may only name an agent
its author may use; and the builder offers the flows and agents its author may call."""

from __future__ import annotations

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from agents.services import SpecRefused, agent_create, agent_draft_save, agent_publish
from catalog.models import Usage
from catalog.services import model_create
from flows.models import Run, RunSource, RunStatus
from tests.agents.scripted_model import answer, calls
from tests.agents.test_agent_node import CALCULATE, agent_graph, published_agent
from tests.agents.test_tools_flow import shout_flow
from tests.flows.nodes.graphs import run_graph


def asking(slug: str, name: str | None = None) -> dict:
    return {"tool": "agent", "name": name, "config": {"agent": slug}}


def test_an_agent_asks_another_and_reads_its_answer(model, server, workspace, owner):
    maths = published_agent(workspace, owner)
    published_agent(workspace, owner, slug="boss", tools=[asking("maths", "ask_maths")])
    server.plan(
        calls(("ask_maths", '{"message": "What is 6 x 7?"}')),  # boss
        calls(CALCULATE),  # maths
        answer("42"),  # maths
        answer("Maths says 42."),  # boss
    )

    run = run_graph(
        workspace=workspace, owner=owner, graph=agent_graph("boss"), inputs={"message": "6 x 7?"}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "Maths says 42."
    child = Run.objects.get(parent=run)
    maths.refresh_from_db()
    assert child.flow_id == maths.flow_id and child.source == RunSource.SUBFLOW
    assert child.status == RunStatus.SUCCEEDED and child.outputs == {"text": "42"}
    assert child.inputs == {"message": "What is 6 x 7?"}
    # The other agent's model calls are metered on its own run.
    assert Usage.objects.filter(run_id=child.id).count() == 2
    assert Usage.objects.filter(run_id=run.id).count() == 2
    told = str(server.messages(3)[-1]["content"])
    assert '<tool_output source="agent maths">' in told and "42" in told


def test_an_agent_calling_itself_gets_a_tool_error(model, server, workspace, owner):
    agent = published_agent(workspace, owner, slug="narcissus", tools=[])
    agent_draft_save(
        agent=agent,
        spec={"model": "remote", "tools": [asking("narcissus")]},
        actor=owner,
    )
    agent_publish(agent=agent, actor=owner)
    server.plan(calls(("agent", '{"message": "again"}')), answer("I cannot ask myself."))

    run = run_graph(
        workspace=workspace, owner=owner, graph=agent_graph("narcissus"), inputs={"message": "hi"}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "I cannot ask myself."
    assert not Run.objects.filter(parent=run).exists()
    told = str(server.messages(1)[-1]["content"])
    assert "'narcissus' is already running in this chain of calls" in told


def test_a_cycle_through_another_agent_ends_at_its_first_return(model, server, workspace, owner):
    ping = published_agent(workspace, owner, slug="ping", tools=[])
    published_agent(workspace, owner, slug="pong", tools=[asking("ping")])
    agent_draft_save(agent=ping, spec={"model": "remote", "tools": [asking("pong")]}, actor=owner)
    agent_publish(agent=ping, actor=owner)
    server.plan(
        calls(("agent", '{"message": "to pong"}')),  # ping
        calls(("agent", '{"message": "back to ping"}')),  # pong: refused
        answer("pong gave up"),  # pong
        answer("done"),  # ping
    )

    run = run_graph(
        workspace=workspace, owner=owner, graph=agent_graph("ping"), inputs={"message": "go"}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "done"
    pong_run = Run.objects.get(parent=run)
    assert pong_run.outputs == {"text": "pong gave up"}
    assert not Run.objects.filter(parent=pong_run).exists()
    assert "'ping' is already running in this chain" in str(server.messages(2)[-1]["content"])


def test_an_agent_may_name_only_a_published_agent_its_author_may_use(
    db, workspace, owner, make_member
):
    model_create(slug="remote", name="Remote", engine="echo", workspace=workspace, actor=owner)
    agent_create(workspace=workspace, name="Draft", slug="draft", spec={"model": "remote"})
    published = published_agent(workspace, owner, slug="maths")
    wanted = "agent 'draft' is not a published agent of this workspace that you may use"
    with pytest.raises(SpecRefused) as unpublished:
        agent_create(
            workspace=workspace,
            name="Boss",
            slug="boss",
            spec={"model": "remote", "tools": [asking("draft")]},
            actor=owner,
        )
    assert [p.message for p in unpublished.value.problems] == [wanted]

    limited = make_member("editor", limited=True)
    with pytest.raises(SpecRefused) as hidden:
        agent_create(
            workspace=workspace,
            name="Mine",
            slug="mine",
            spec={"model": "remote", "tools": [asking(published.slug)]},
            actor=limited,
        )
    assert "agent 'maths' is not a published agent of this workspace that you may use" in [
        p.message for p in hidden.value.problems
    ]


def test_the_builder_offers_the_flows_and_agents_its_author_may_call(
    client, workspace, owner, make_member, echo_model
):
    model_create(slug="remote", name="Remote", engine="echo", workspace=workspace, actor=owner)
    shout_flow(workspace, owner)
    published_agent(workspace, owner, slug="maths")
    boss = agent_create(workspace=workspace, name="Boss", slug="boss", actor=owner)
    client.force_login(owner)
    url = reverse("agents:agent-detail", args=["boss"])

    page = client.get(url)
    assertContains(page, '<option value="flow:shout">Shout</option>', html=True)
    assertContains(page, '<option value="agent:maths">Maths</option>', html=True)
    # The backing flow of an agent is not offered as a flow.
    assertNotContains(page, 'value="flow:agent-maths"')

    data = {
        "name": "Boss",
        "target": "model:remote",
        "strategy": "auto",
        "window_tokens": "2000",
        "max_steps": "8",
        "max_tokens": "20000",
        "max_seconds": "120",
        "max_tool_calls_per_step": "4",
        "tools-TOTAL_FORMS": "2",
        "tools-INITIAL_FORMS": "0",
        "tools-MIN_NUM_FORMS": "0",
        "tools-MAX_NUM_FORMS": "32",
        "tools-0-tool": "flow",
        "tools-0-target": "flow:shout",
        "tools-0-name": "shout",
        "tools-1-tool": "agent",
        "tools-1-target": "agent:maths",
    }
    response = client.post(reverse("agents:agent-save", args=["boss"]), data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    boss.refresh_from_db()
    assert [(t["tool"], t["config"]) for t in boss.draft["tools"]] == [
        ("flow", {"flow": "shout"}),
        ("agent", {"agent": "maths"}),
    ]
    chosen = '<option value="agent:maths" selected>Maths</option>'
    assertContains(client.get(url), chosen, html=True)

    refused = client.post(
        reverse("agents:agent-save", args=["boss"]),
        data | {"tools-1-target": "flow:shout"},
    )
    assertContains(refused, "A flow is chosen here for the agent tool.", status_code=400)

    limited = make_member("editor", limited=True)
    client.force_login(limited)
    mine = agent_create(workspace=workspace, name="Mine", slug="mine", actor=limited)
    page = client.get(reverse("agents:agent-detail", args=[mine.slug]))
    assertNotContains(page, "flow:shout")
    assertNotContains(page, "agent:maths")


def test_an_agent_whose_time_runs_out_while_asking_fails_the_child_run(
    model, server, workspace, owner
):
    published_agent(workspace, owner)
    published_agent(
        workspace, owner, slug="boss", tools=[asking("maths")], limits={"max_seconds": 2}
    )
    slow = answer("too late")
    slow.delay_s = 6
    server.plan(calls(("agent", '{"message": "6 x 7?"}')), slow)  # boss, then maths

    run = run_graph(
        workspace=workspace, owner=owner, graph=agent_graph("boss"), inputs={"message": "go"}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["outcome"] == "limited"
    child = Run.objects.get(parent=run)
    assert child.status == RunStatus.FAILED
    assert "the agent that called it stopped waiting" in child.error
