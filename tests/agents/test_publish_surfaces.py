"""A published agent on every surface that serves published flows, end to end: the chat page,
the embed widget, ``POST /api/v1/agents/<slug>/runs``, ``/v1/chat/completions`` and the MCP
server, against the live studio (daphne and a worker) with the agent's model a scripted OpenAI
server at the network boundary. Each records its run's source; a key whose maker may not use
the agent is refused on each."""

from __future__ import annotations

import httpx
import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent
from agents.services import agent_create, agent_publish
from catalog.services import model_create
from conversations.models import Conversation, Message
from conversations.widget import embed_settings_change
from flows.models import Run, RunSource, RunStatus
from tests.agents.scripted_model import ScriptedModel, answer, calls
from tests.agents.test_mcp_server import _call, _tool_names
from tests.conversations.test_widget import SITE, _embed, _send, _session
from tests.flows.helpers import wait_for_run
from workspaces.services import KeyScopes, api_key_create

CALCULATE = ("calculator", '{"expression": "6 * 7"}')
ANSWER = "Six times seven is 42."

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


@pytest.fixture
def agent(worker_may_call_loopback, live_studio, server, workspace, owner) -> Agent:
    model_create(
        slug="remote",
        name="Remote",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{server.url}/v1", "retries": 0},
        workspace=workspace,
        actor=owner,
    )
    spec = {
        "instructions": {"text": "Compute with the calculator."},
        "model": "remote",
        "tools": [{"tool": "calculator"}],
    }
    agent = agent_create(workspace=workspace, name="Maths", slug="maths", spec=spec, actor=owner)
    agent_publish(agent=agent, actor=owner)
    server.plan(calls(CALCULATE), answer("Six times seven ", "is 42."))
    return agent


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_runs_api_runs_the_agent_once_per_idempotency_key(live_studio, agent, api_key):
    url = f"{live_studio}/api/v1/agents/maths/runs"
    headers = _bearer(api_key) | {"Idempotency-Key": "order-17"}
    body = {"inputs": {"message": "What is 6 × 7?"}}
    first = httpx.post(url, json=body, headers=headers, timeout=60)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "succeeded"
    assert first.json()["outputs"] == {"text": ANSWER}
    run = Run.objects.get(id=first.json()["run_id"])
    assert (run.source, run.flow_id) == (RunSource.API, Agent.objects.get().flow_id)
    again = httpx.post(url, json=body, headers=headers, timeout=60)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["run_id"] == first.json()["run_id"]
    missing = httpx.post(f"{live_studio}/api/v1/agents/nobody/runs", json=body, headers=headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "agent_not_found")
    assert Run.objects.count() == 1


def test_the_openai_api_answers_as_the_agent(live_studio, agent, api_key, echo_model, make_flow):
    listed = httpx.get(f"{live_studio}/v1/models", headers=_bearer(api_key)).json()
    assert [m["id"] for m in listed["data"]] == ["maths"]
    body = {"model": "maths", "messages": [{"role": "user", "content": "What is 6 × 7?"}]}
    completion = httpx.post(
        f"{live_studio}/v1/chat/completions", json=body, headers=_bearer(api_key), timeout=60
    )
    assert completion.status_code == 200, completion.text
    assert completion.json()["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}
    assert Run.objects.get().source == RunSource.OPENAI
    # A flow of the same slug keeps its name; the agent is then "agent.maths".
    make_flow(echo_model, slug="maths")
    listed = httpx.get(f"{live_studio}/v1/models", headers=_bearer(api_key)).json()
    assert [m["id"] for m in listed["data"]] == ["agent.maths", "maths"]
    body["model"] = "agent.maths"
    completion = httpx.post(
        f"{live_studio}/v1/chat/completions", json=body, headers=_bearer(api_key), timeout=60
    )
    assert completion.json()["choices"][0]["message"]["content"] == ANSWER


def test_the_mcp_server_offers_the_agent_as_a_tool(live_studio, agent, api_key):
    assert _tool_names(live_studio, api_key) == ["maths"]
    result = _call(live_studio, api_key, "maths", {"message": "What is 6 × 7?"})
    assert not result.is_error, result
    assert result.content[0].text == ANSWER
    assert Run.objects.get().source == RunSource.MCP


def test_a_key_whose_maker_may_not_use_the_agent_reaches_it_nowhere(
    live_studio, agent, workspace, make_member
):
    limited = make_member("operator", limited=True)
    key = api_key_create(
        workspace=workspace, name="limited", user=limited, scopes=KeyScopes(flow_access="run")
    )[1]
    body = {"inputs": {"message": "hi"}}
    refused = httpx.post(f"{live_studio}/api/v1/agents/maths/runs", json=body, headers=_bearer(key))
    assert refused.status_code == 404
    assert httpx.get(f"{live_studio}/v1/models", headers=_bearer(key)).json()["data"] == []
    chat = {"model": "maths", "messages": [{"role": "user", "content": "hi"}]}
    refused = httpx.post(f"{live_studio}/v1/chat/completions", json=chat, headers=_bearer(key))
    assert refused.status_code == 404
    assert _tool_names(live_studio, key) == []
    assert str(_call(live_studio, key, "maths", {"message": "hi"})) == "Unknown tool: maths"
    assert not Run.objects.exists()


def test_the_chat_page_holds_a_conversation_with_the_agent(client, agent, owner, server):
    client.force_login(owner)
    send = reverse("conversations:chat-send", args=["agent-maths"])
    response = client.post(send, {"message": "What is 6 × 7?"})
    assert response.status_code == 200, response.content.decode()[-2000:]
    run = wait_for_run(Run.objects.get().id)
    assert (run.status, run.source, run.outputs) == (
        RunStatus.SUCCEEDED,
        RunSource.CHAT,
        {"text": ANSWER},
    )
    conversation = Conversation.objects.get()
    assert conversation.flow_id == agent.flow_id
    trace = client.get(reverse("flows:run-detail", args=[run.id]))
    assert trace.status_code == 200
    assert "agent_1" in trace.content.decode()
    assert reverse("flows:flow-detail", args=["agent-maths"]) not in trace.content.decode()
    server.plan(answer("You asked what 6 × 7 is."))
    response = client.post(send, {"message": "What did I ask?", "conversation": conversation.id})
    assert response.status_code == 200
    second = wait_for_run(Run.objects.exclude(id=run.id).get().id)
    assert second.outputs == {"text": "You asked what 6 × 7 is."}
    # The agent was given the conversation before the new message.
    contents = [m.get("content") for m in server.messages(-1)]
    assert "What is 6 × 7?" in contents and ANSWER in contents
    assert Message.objects.filter(conversation=conversation).count() == 4


def test_the_widget_chats_with_the_agent(agent, owner):
    browser = Client(REMOTE_ADDR="10.9.8.7")
    embedded = embed_settings_change(
        flow=agent.flow, user=owner, embed=_embed(allowed_origins=[SITE])
    )
    token = _session(browser, embedded).json()["token"]
    sent = _send(browser, embedded, token, "What is 6 × 7?")
    assert sent.status_code == 200, sent.content.decode()[-2000:]
    run = wait_for_run(Run.objects.get().id)
    assert (run.status, run.source, run.created_by) == (RunStatus.SUCCEEDED, RunSource.WIDGET, None)
    assert run.outputs == {"text": ANSWER}
    embed_settings_change(flow=agent.flow, user=owner, embed=_embed(enabled=False))
    assert _send(browser, embedded, token, "again").status_code == 404
    assert Run.objects.count() == 1
