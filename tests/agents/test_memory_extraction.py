"""Automatic fact extraction on the real worker, the agent's model a scripted OpenAI server at
the network boundary and the facts embedded by the bundled embedder: after the answer, one
more call asks for the lasting facts about the end user; new ones are stored (a near-duplicate
is not), metered as the agent's, shown in the trace, and recalled in a new conversation. A bad
answer or a failed call changes nothing in the run. Widget visitors have memories of their own.
"""

from __future__ import annotations

import secrets

import pytest
from django.test import Client

from agents.extraction import EXTRACT_SYSTEM
from agents.memory import user_subject
from agents.models import Fact, FactSource
from agents.services import agent_create, agent_publish
from catalog.models import Usage
from conversations.models import Conversation
from conversations.widget import embed_settings_change
from flows.models import NodeResult, Run, RunSource, RunStatus
from flows.services import flow_create, flow_publish, run_create
from tests.agents.scripted_model import answer, calls
from tests.agents.test_agent_node import agent_graph
from tests.catalog.remote_server import Reply
from tests.conversations.test_widget import SITE, _embed, _send, _session
from tests.flows.helpers import wait_for_run

BEES = "The user keeps bees on a roof in Lyon."
RECALL = ("recall", '{"query": "What are the user\'s hobbies?"}')
SPEC = {
    "instructions": {"text": "Chat with the user."},
    "model": "remote",
    "memory": {"long_term": True, "extract_facts": True},
}


@pytest.fixture
def keeper(model, workspace, owner):  # noqa: F811
    agent = agent_create(workspace=workspace, name="Keeper", slug="keeper", spec=SPEC, actor=owner)
    agent_publish(agent=agent, actor=owner)
    return agent


@pytest.fixture
def flow(keeper, workspace, owner):
    graph = agent_graph("keeper")
    flow = flow_create(
        workspace=workspace, slug="keeper-flow", name="Keeper", graph=graph, user=owner
    )
    return flow_publish(flow=flow, user=owner)


def _ask(flow, owner, message: str) -> Run:
    run = run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": message},
        source=RunSource.STUDIO,
        user=owner,
    )
    return wait_for_run(run.id)


def _memory(run: Run) -> dict:
    return NodeResult.objects.get(run=run, node_id="agent_1").details["memory"]


def test_facts_extracted_after_the_answer_are_recalled_in_a_new_conversation(
    keeper,
    flow,
    server,  # noqa: F811
    owner,
):
    server.plan(answer("Bees are lovely."), answer(f'["{BEES}", "  "]'))

    first = _ask(flow, owner, "I keep bees on a roof in Lyon.")

    assert first.status == RunStatus.SUCCEEDED, first.error
    assert first.outputs["text"] == "Bees are lovely."  # the answer is the agent's, unchanged
    extraction = server.messages(1)
    assert extraction[0]["content"] == EXTRACT_SYSTEM
    assert "I keep bees on a roof in Lyon." in extraction[1]["content"]
    assert "Bees are lovely." in extraction[1]["content"]
    (fact,) = Fact.objects.filter(agent=keeper)
    assert (fact.subject, fact.text, fact.source) == (
        user_subject(owner.id),
        BEES,
        FactSource.EXTRACTION,
    )
    assert _memory(first) == {"extracted": [BEES], "duplicates": 0}
    rows = Usage.objects.filter(run_id=first.id).order_by("created_at", "id")
    assert [(r.source, r.agent_slug, r.node_id) for r in rows] == [
        ("agent", "keeper", "step-1"),
        ("agent", "keeper", "extract"),
    ]

    # A new conversation: the agent recalls the extracted fact; the same fact extracted again
    # (another case, more spaces) is a duplicate, not stored twice.
    server.plan(calls(RECALL), answer("You keep bees."), answer(f'["{BEES.lower()}  "]'))

    second = _ask(flow, owner, "What are my hobbies?")

    assert second.status == RunStatus.SUCCEEDED, second.error
    assert second.outputs["text"] == "You keep bees."
    (recalled,) = [m for m in server.messages(1) if m["role"] == "tool"]
    assert BEES in recalled["content"]
    assert Fact.objects.filter(agent=keeper).count() == 1
    assert _memory(second) == {"extracted": [], "duplicates": 1}


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (answer("The user keeps bees."), "not JSON"),
        (answer('{"facts": ["The user keeps bees."]}'), "not a JSON list of strings"),
        (answer('["The user keeps bees.", 7]'), "not a JSON list of strings"),
        (Reply(status=400, body='{"error": {"message": "refused"}}'), "refused"),
    ],
)
def test_a_bad_or_failed_extraction_stores_nothing_and_changes_nothing(
    keeper,
    flow,
    server,  # noqa: F811
    owner,
    reply,
    error,
):
    server.plan(answer("Bees are lovely."), reply)

    run = _ask(flow, owner, "I keep bees.")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["text"] == "Bees are lovely."
    assert not Fact.objects.filter(agent=keeper).exists()
    memory = _memory(run)
    assert memory["extracted"] == [] and error in memory["extraction_error"], memory


def test_without_extraction_no_extra_call_is_made(model, server, workspace, owner):  # noqa: F811
    spec = {**SPEC, "memory": {"long_term": True, "extract_facts": False}}
    agent = agent_create(workspace=workspace, name="Plain", slug="plain", spec=spec, actor=owner)
    agent_publish(agent=agent, actor=owner)
    flow = flow_create(
        workspace=workspace, slug="plain-flow", name="Plain", graph=agent_graph("plain"), user=owner
    )
    flow = flow_publish(flow=flow, user=owner)
    server.plan(answer("Bees are lovely."))

    run = _ask(flow, owner, "I keep bees.")

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(server.chats()) == 1
    assert "memory" not in NodeResult.objects.get(run=run, node_id="agent_1").details


def _visitor_says(embedded, text: str) -> tuple[Run, Conversation]:
    """A new anonymous visitor (a browser of its own) sends ``text`` through the widget."""
    browser = Client(REMOTE_ADDR=f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.9")
    token = _session(browser, embedded).json()["token"]
    sent = _send(browser, embedded, token, text)
    assert sent.status_code == 200, sent.content.decode()[-2000:]
    run = wait_for_run(Run.objects.latest("created_at").id)
    conversation = Conversation.objects.get(messages__run=run)
    return run, conversation


def test_widget_visitors_have_memories_of_their_own(keeper, server, owner):  # noqa: F811
    keeper.refresh_from_db()  # its backing flow, made when it was published
    embedded = embed_settings_change(
        flow=keeper.flow, user=owner, embed=_embed(allowed_origins=[SITE])
    )
    server.plan(answer("Bees are lovely."), answer(f'["{BEES}"]'))
    first, alice = _visitor_says(embedded, "I keep bees on a roof in Lyon.")
    assert (first.status, first.source, first.created_by) == (
        RunStatus.SUCCEEDED,
        RunSource.WIDGET,
        None,
    )
    (fact,) = Fact.objects.filter(agent=keeper)
    assert fact.subject == alice.end_user and fact.subject.startswith("visitor:")

    # Another visitor: offered memory (their own), they recall nothing of the first one's.
    server.plan(calls(RECALL), answer("I know nothing about you yet."), answer("[]"))
    second, bob = _visitor_says(embedded, "What are my hobbies?")

    assert second.status == RunStatus.SUCCEEDED, second.error
    assert bob.end_user != alice.end_user
    offered = [t["function"]["name"] for t in server.chats()[0].json["tools"]]
    assert offered == ["remember", "recall"]
    (recalled,) = [m for m in server.messages(1) if m["role"] == "tool"]
    assert "bees" not in recalled["content"].lower()
    assert list(Fact.objects.values_list("subject", flat=True)) == [alice.end_user]
