"""The agent's short-term memory on the real worker, its model a scripted OpenAI server at the
network boundary: the conversation's turns that do not fit the agent's window are summarised
by the agent's own model (the LLM node's summariser) into a note after its instructions; the
summary is metered as the agent's; a summary that fails leaves the turns out and the run goes
on."""

from __future__ import annotations

from agents.services import agent_create, agent_publish
from catalog.models import Usage
from flows.models import NodeResult, RunSource, RunStatus
from flows.nodes.memory import NOTE, SUMMARY_SYSTEM
from flows.services import flow_create, flow_publish, run_create
from tests.agents.scripted_model import answer
from tests.agents.test_agent_node import agent_graph
from tests.catalog.remote_server import Reply
from tests.flows.helpers import wait_for_run
from tests.flows.nodes.graphs import edge

# Four turns of about 60 tokens each (counted as 4 characters a token): a window of 70 tokens
# keeps the last exchange and drops the first.
OLD_QUESTION = "My name is Ada and I grow tomatoes on my balcony in Porto. " * 4
OLD_ANSWER = "Lovely, tomatoes like the sun of Porto and a deep pot of good soil. " * 4
RECENT_QUESTION = "Which pot size do you advise?"
RECENT_ANSWER = "A pot of at least twenty litres."
TURNS = [
    {"role": "user", "content": OLD_QUESTION},
    {"role": "assistant", "content": OLD_ANSWER},
    {"role": "user", "content": RECENT_QUESTION},
    {"role": "assistant", "content": RECENT_ANSWER},
]
SUMMARY = "The user, Ada, grows tomatoes on a balcony in Porto."


def _run(workspace, owner, *, summarise: bool = True, slug: str = "gardener"):
    spec = {
        "instructions": {"text": "Help with gardening."},
        "model": "remote",
        "memory": {"window_tokens": 70, "summarise_older": summarise},
    }
    agent = agent_create(workspace=workspace, name="Gardener", slug=slug, spec=spec, actor=owner)
    agent_publish(agent=agent, actor=owner)
    data = agent_graph(slug, history=True)
    data["nodes"][0]["config"]["fields"].append({"name": "history", "type": "json"})
    data["edges"].append(edge("input_1.history", "agent_1.history"))
    flow = flow_create(workspace=workspace, slug="garden", name="Garden", graph=data, user=owner)
    flow = flow_publish(flow=flow, user=owner)
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "And what about watering?", "history": TURNS},
        source=RunSource.STUDIO,
        user=owner,
    )
    return wait_for_run(run.id)


def test_older_turns_are_summarised_into_a_note_and_metered_as_the_agent_s(
    model,  # noqa: F811
    server,  # noqa: F811
    workspace,
    owner,
):
    server.plan(answer(SUMMARY), answer("Water in the morning, Ada."))

    run = _run(workspace, owner)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "Water in the morning, Ada."
    summary_call, step = server.messages(0), server.messages(1)
    assert summary_call[0]["content"] == SUMMARY_SYSTEM
    assert "grow tomatoes on my balcony" in summary_call[1]["content"]  # the dropped turns
    assert RECENT_QUESTION not in summary_call[1]["content"]  # not the kept ones
    # The step sees its instructions, then the summary, then the recent turns only.
    system = step[0]["content"]
    assert system.index("Help with gardening.") < system.index(NOTE + SUMMARY)
    assert [m["content"] for m in step[1:]] == [
        RECENT_QUESTION,
        RECENT_ANSWER,
        "And what about watering?",
    ]
    details = NodeResult.objects.get(run=run, node_id="agent_1").details
    assert details["memory"]["dropped_turns"] == 2
    assert (details["memory"]["summary"], details["memory"]["note"]) == ("written", SUMMARY)
    rows = Usage.objects.filter(run_id=run.id).order_by("created_at", "id")
    assert [(r.source, r.agent_slug, r.node_id) for r in rows] == [
        ("agent", "gardener", "summary"),
        ("agent", "gardener", "step-1"),
    ]


def test_a_summary_that_fails_leaves_the_turns_out_and_the_run_goes_on(
    model,  # noqa: F811
    server,  # noqa: F811
    workspace,
    owner,
):
    refused = Reply(status=400, body='{"error": {"message": "the summary was refused"}}')
    server.plan(refused, answer("Water in the morning."))

    run = _run(workspace, owner, slug="unlucky")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "Water in the morning."
    step = server.messages(1)
    assert "Help with gardening." in step[0]["content"]
    assert NOTE not in step[0]["content"]
    assert OLD_QUESTION not in [m["content"] for m in step]
    details = NodeResult.objects.get(run=run, node_id="agent_1").details
    assert "could not be summarised" in details["memory"]["summary_error"]
    assert "they were left out" in details["memory"]["summary_error"]


def test_without_summarising_the_older_turns_are_only_dropped(
    model,  # noqa: F811
    server,  # noqa: F811
    workspace,
    owner,
):
    server.plan(answer("Water in the morning."))

    run = _run(workspace, owner, summarise=False, slug="forgetful")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(server.chats()) == 1  # no summary call
    assert NOTE not in server.messages(0)[0]["content"]
    details = NodeResult.objects.get(run=run, node_id="agent_1").details
    assert details["memory"] == {"dropped_turns": 2}
