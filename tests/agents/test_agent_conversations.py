"""An agent's conversations: a client keeps them over the REST API (the flows' conversations API,
on the agent's backing flow) and the agent's editors review them, read only, with their ratings.
The API over real HTTP to a real server and worker, the agent's model scripted at the network
boundary."""

from __future__ import annotations

import httpx
import pytest
from django.urls import reverse

from agents.models import Agent
from agents.services import agent_create, agent_publish
from catalog.services import model_create
from conversations.models import Conversation, Message
from conversations.services import conversation_start
from studio import openapi
from tests.agents.scripted_model import ScriptedModel, answer, calls
from workspaces.services import KeyScopes, api_key_create

CALCULATE = ("calculator", '{"expression": "6 * 7"}')
ANSWER = "Six times seven is 42."


@pytest.fixture(scope="module")
def server():
    scripted = ScriptedModel().start()
    yield scripted
    scripted.stop()


def _agent(workspace, owner, model: str, slug: str = "maths", publish: bool = True) -> Agent:
    spec = {
        "instructions": {"text": "Compute with the calculator."},
        "model": model,
        "tools": [{"tool": "calculator"}],
    }
    agent = agent_create(workspace=workspace, name="Maths", slug=slug, spec=spec, actor=owner)
    if publish:
        agent_publish(agent=agent, actor=owner)
    return Agent.objects.get(id=agent.id)


@pytest.fixture
def remote_agent(server, workspace, owner) -> Agent:
    model_create(
        slug="remote",
        name="Remote",
        engine="openai_compatible",
        weights="served-model",
        settings={"base_url": f"{server.url}/v1", "retries": 0},
        workspace=workspace,
        actor=owner,
    )
    return _agent(workspace, owner, "remote")


def _api(base: str, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


# --- the REST API -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_client_holds_a_conversation_with_an_agent(
    worker_may_call_loopback, live_studio, server, remote_agent, api_key
):
    server.plan(calls(CALCULATE), answer("Six times seven ", "is 42."))
    client = _api(live_studio, api_key)

    started = client.post("/agents/maths/conversations", json={"user": "ann", "title": "Sums"})
    assert started.status_code == 201, started.text
    conversation = started.json()
    assert (conversation["user"], conversation["title"]) == ("ann", "Sums")
    assert Conversation.objects.get().flow_id == remote_agent.flow_id

    path = f"/conversations/{conversation['id']}"
    sent = client.post(f"{path}/messages", json={"text": "What is 6 × 7?"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["answer"]["text"] == ANSWER
    server.plan(answer("You asked what 6 × 7 is."))
    again = client.post(f"{path}/messages", json={"text": "What did I ask?"})
    assert again.json()["answer"]["text"] == "You asked what 6 × 7 is."
    # The agent was given the conversation before the new message.
    contents = [m.get("content") for m in server.messages(-1)]
    assert "What is 6 × 7?" in contents and ANSWER in contents

    listed = client.get("/agents/maths/conversations", params={"user": "ann"}).json()
    assert [c["id"] for c in listed["data"]] == [conversation["id"]]
    messages = client.get(f"{path}/messages").json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    rated = client.post(f"/messages/{messages[1]['id']}/feedback", json={"rating": 1})
    assert (rated.status_code, rated.json()["feedback"]) == (200, 1)
    assert Message.objects.get(id=messages[1]["id"]).feedback == 1

    assert client.delete(path).status_code == 204
    assert not Conversation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_agent_out_of_reach_has_no_conversations_api(
    live_studio, workspace, owner, echo_model, make_member, api_key
):
    _agent(workspace, owner, "echo")
    _agent(workspace, owner, "echo", slug="draft-only", publish=False)
    client = _api(live_studio, api_key)
    for slug in ("nobody", "draft-only"):
        missing = client.post(f"/agents/{slug}/conversations", json={})
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "agent_not_found")
    # The backing flow is not a flow of the flows' API, nor a flow's slug an agent's.
    assert client.get("/flows/agent-maths/conversations").status_code == 404
    # A key whose maker may not use the agent, and a key limited to chosen flows.
    limited = make_member("operator", limited=True)
    key = api_key_create(
        workspace=workspace, name="limited", user=limited, scopes=KeyScopes(flow_access="run")
    )[1]
    assert _api(live_studio, key).post("/agents/maths/conversations", json={}).status_code == 404
    assert _api(live_studio, key).get("/agents/maths/conversations").status_code == 404
    # Another workspace's key does not see this one's agent.
    from workspaces.services import workspace_create

    other = workspace_create(slug="other", name="Other")
    theirs = _api(live_studio, api_key_create(workspace=other, name="theirs")[1])
    assert theirs.post("/agents/maths/conversations", json={}).status_code == 404
    assert not Conversation.objects.exists()
    bad = client.post("/agents/maths/conversations", json={"colour": "red"})
    assert bad.status_code == 400
    assert client.put("/agents/maths/conversations", json={}).status_code == 405


@pytest.mark.django_db(transaction=True)
def test_a_key_reaches_only_its_own_agent_conversations(
    live_studio, workspace, owner, echo_model, api_key
):
    agent = _agent(workspace, owner, "echo")
    mine = _api(live_studio, api_key)
    conversation = mine.post("/agents/maths/conversations", json={}).json()
    theirs = _api(live_studio, api_key_create(workspace=workspace, name="other")[1])
    assert theirs.get(f"/conversations/{conversation['id']}").status_code == 404
    assert theirs.delete(f"/conversations/{conversation['id']}").status_code == 404
    assert theirs.get("/agents/maths/conversations").json()["data"] == []
    assert Conversation.objects.filter(flow=agent.flow).count() == 1


def test_the_openapi_document_lists_the_agent_conversations_api():
    operations = openapi.document()["paths"]["/api/v1/agents/{agent_slug}/conversations"]
    assert set(operations) == {"get", "post"}
    assert operations["post"]["operationId"] == "agent_conversations_post"


# --- the review pages -------------------------------------------------------------------------


@pytest.fixture
def reviewed(workspace, owner, echo_model, make_member) -> tuple[Agent, Conversation]:
    agent = _agent(workspace, owner, "echo")
    person = make_member("operator", "ursula")
    conversation = conversation_start(flow=agent.flow, user=person)
    conversation.title = "Sums with Ursula"
    conversation.save(update_fields=["title"])
    Message.objects.create(conversation=conversation, role="user", text="What is 6 × 7?")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        text="It is 42.",
        settled=True,
        feedback=-1,
        feedback_comment="show the working",
    )
    return agent, conversation


def test_an_agent_s_editor_reviews_its_conversations_with_their_ratings(
    client, reviewed, make_member
):
    agent, conversation = reviewed
    client.force_login(make_member("editor"))
    versions = client.get(reverse("agents:agent-versions", args=[agent.slug])).content.decode()
    listing = reverse("agents:agent-conversations", args=[agent.slug])
    assert listing in versions

    page = client.get(listing)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Conversations with Maths" in text and "Sums with Ursula" in text and "ursula" in text
    assert "👎 1" in text
    detail = reverse("agents:agent-conversation", args=[agent.slug, conversation.id])
    assert detail in text

    page = client.get(detail)
    assert page.status_code == 200
    text = page.content.decode()
    assert "It is 42." in text and "rated bad" in text and "show the working" in text
    assert listing in text
    assert client.post(detail).status_code == 405
    Message.objects.get(role="assistant").refresh_from_db()
    assert Message.objects.get(role="assistant").feedback == -1


def test_only_those_who_may_change_the_agent_review_its_conversations(
    client, reviewed, make_member, outsider, workspace, owner, echo_model
):
    agent, conversation = reviewed
    listing = reverse("agents:agent-conversations", args=[agent.slug])
    detail = reverse("agents:agent-conversation", args=[agent.slug, conversation.id])
    # An operator uses the agent (chats with it) but may not review others' conversations.
    client.force_login(make_member("operator"))
    assert client.get(listing).status_code == 403
    assert client.get(detail).status_code == 403
    versions = client.get(reverse("agents:agent-versions", args=[agent.slug])).content.decode()
    assert listing not in versions
    # The flows' review pages do not open the backing flow, even for its editors.
    client.force_login(owner)
    flow_review = reverse("conversations:review-list", args=[agent.flow.slug])
    assert client.get(flow_review).status_code == 404
    # A conversation with another agent is not this one's.
    other = _agent(workspace, owner, "echo", slug="other")
    theirs = conversation_start(flow=other.flow, user=owner)
    assert (
        client.get(reverse("agents:agent-conversation", args=[agent.slug, theirs.id])).status_code
        == 404
    )
    # An agent never published has no conversations to review.
    _agent(workspace, owner, "echo", slug="draft-only", publish=False)
    assert client.get(reverse("agents:agent-conversations", args=["draft-only"])).status_code == 404
    # Another workspace's member does not see the agent.
    client.force_login(outsider)
    assert client.get(listing).status_code == 404
    assert client.get(detail).status_code == 404
