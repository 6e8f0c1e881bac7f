"""Publishing an agent: its hidden backing flow (made on the first publish, pinned to each new
version, deleted with the agent), whose access is the agent's; and the pages that serve it to
members: the Apps page, the chat page, the builder's buttons and the widget's settings."""

from __future__ import annotations

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from agents.models import Agent
from agents.services import agent_create, agent_delete, agent_draft_save, agent_publish
from conversations.models import ChatSettings
from conversations.selectors import chat_apps
from conversations.widget import EmbedSettings, embed_settings_change
from flows.models import Flow, FlowKind
from flows.selectors import flows_for_workspace, published_flows
from studio import access, openapi
from workspaces.sharing import object_grant

SPEC = {"model": "echo", "opening": "Hello, I compute.", "suggestions": ["What is 6 × 7?"]}


@pytest.fixture
def agent(workspace, owner, echo_model) -> Agent:
    agent = agent_create(workspace=workspace, name="Maths", slug="maths", spec=SPEC, actor=owner)
    agent_publish(agent=agent, actor=owner)
    agent.refresh_from_db()
    return agent


def test_the_first_publish_makes_the_backing_flow_pinned_to_the_version(agent):
    flow = agent.flow
    assert (flow.kind, flow.slug, flow.name) == (FlowKind.AGENT, "agent-maths", "Maths")
    nodes = {n["id"]: n for n in flow.published_version.graph["nodes"]}
    assert nodes["agent_1"]["config"] == {"agent": "maths", "version": 1}
    greeting = ChatSettings.objects.get(flow=flow)
    assert greeting.opening == "Hello, I compute."
    assert greeting.suggestions == ["What is 6 × 7?"]


def test_a_new_version_is_served_by_the_same_flow(agent, owner):
    flow = agent.flow
    agent_draft_save(agent=agent, spec=SPEC | {"opening": "Hi again."}, actor=owner)
    agent_publish(agent=agent, actor=owner)
    agent_publish(agent=agent, actor=owner)  # nothing changed: no new flow version
    flow.refresh_from_db()
    assert Flow.objects.filter(kind=FlowKind.AGENT).count() == 1
    assert flow.versions.count() == 2
    nodes = {n["id"]: n for n in flow.published_version.graph["nodes"]}
    assert nodes["agent_1"]["config"]["version"] == 2
    assert ChatSettings.objects.get(flow=flow).opening == "Hi again."


def test_a_taken_slug_gets_a_suffix(workspace, owner, echo_model, make_flow):
    make_flow(echo_model, slug="agent-maths")
    agent = agent_create(workspace=workspace, name="Maths", slug="maths", spec=SPEC, actor=owner)
    agent_publish(agent=agent, actor=owner)
    assert agent.flow.slug == "agent-maths-2"


def test_the_backing_flow_is_in_no_flow_list_and_on_no_flow_page(client, agent, owner):
    assert agent.flow not in flows_for_workspace(agent.workspace_id)
    assert agent.flow not in published_flows(agent.workspace_id)
    client.force_login(owner)
    assertNotContains(client.get(reverse("flows:flow-list")), "agent-maths")
    slug = agent.flow.slug
    assert client.get(reverse("flows:flow-detail", args=[slug])).status_code == 404
    assert client.get(reverse("flows:flow-editor", args=[slug])).status_code == 404
    assert client.post(reverse("flows:flow-publish", args=[slug])).status_code == 404


def test_deleting_the_agent_deletes_its_flow(agent, owner):
    flow_id = agent.flow_id
    agent_delete(agent=agent, actor=owner)
    assert not Flow.objects.filter(id=flow_id).exists()


def test_the_flows_access_is_the_agents(agent, owner, viewer, make_member):
    flow = agent.flow
    assert access.object_actions(owner, flow) == {"view", "run"}
    assert access.object_actions(viewer, flow) == {"view"}
    limited = make_member("operator", limited=True)
    assert not access.has_perm(limited, flow, "view")
    assert not access.scope(limited, flow.workspace_id, Flow.objects.all(), "run").exists()
    object_grant(obj=agent, subject=limited, level="use", actor=owner)
    assert access.object_actions(limited, flow) == {"view", "run"}
    assert list(access.scope(limited, flow.workspace_id, Flow.objects.all(), "run")) == [flow]
    object_grant(obj=agent, subject=limited, level="view", actor=owner)
    assert access.object_actions(limited, flow) == {"view"}


def test_the_apps_page_lists_the_agents_a_member_may_use(client, agent, owner, make_member):
    apps = chat_apps(owner, agent.workspace)
    assert [(a.kind, a.slug) for a in apps] == [("agent", "maths")]
    assert apps[0].chat_url == reverse("conversations:chat", args=["agent-maths"])
    assert apps[0].open_url == reverse("agents:agent-detail", args=["maths"])
    client.force_login(owner)
    response = client.get(reverse("conversations:apps"))
    assertContains(response, apps[0].chat_url)
    assertContains(response, apps[0].open_url)
    limited = make_member("operator", limited=True)
    assert chat_apps(limited, agent.workspace) == []
    client.force_login(limited)
    assertNotContains(client.get(reverse("conversations:apps")), "Maths")


def test_the_chat_page_greets_as_the_agent_says(client, agent, owner, make_member):
    client.force_login(owner)
    builder = client.get(reverse("agents:agent-detail", args=["maths"]))
    chat_url = reverse("conversations:chat", args=["agent-maths"])
    assertContains(builder, chat_url)
    assertContains(builder, reverse("agents:agent-widget", args=["maths"]))
    page = client.get(chat_url)
    assertContains(page, "Hello, I compute.")
    assertContains(page, "What is 6 × 7?")
    assertNotContains(page, reverse("flows:flow-detail", args=["agent-maths"]))
    client.force_login(make_member("operator", limited=True))
    assert client.get(chat_url).status_code == 404
    send = reverse("conversations:chat-send", args=["agent-maths"])
    assert client.post(send, {"message": "hi"}).status_code == 404


def test_the_widget_is_set_from_the_agents_page(client, agent, owner, viewer, make_member):
    url = reverse("agents:agent-widget", args=["maths"])
    client.force_login(owner)
    assertContains(client.get(url), "Embed on a web site")
    response = client.post(
        url,
        {
            "enabled": "on",
            "allowed_origins": "https://shop.example",
            "title": "Ask maths",
            "colour": "#336699",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    settings = ChatSettings.objects.get(flow=agent.flow)
    assert settings.embed_enabled and settings.allowed_origins == ["https://shop.example"]
    assertContains(client.get(url), settings.embed_id)
    client.force_login(viewer)
    assert client.get(url).status_code == 403
    client.force_login(make_member("operator", limited=True))
    assert client.get(url).status_code == 404
    assert client.put(url).status_code in (404, 405)


def test_the_widget_signs_in_only_members_who_may_use_the_agent(client, agent, owner, make_member):
    embedded = embed_settings_change(
        flow=agent.flow,
        user=owner,
        embed=EmbedSettings(
            enabled=True,
            allowed_origins=["https://shop.example"],
            title="Maths",
            colour="#112233",
            sign_in_required=True,
            remote_images=False,
            requests_per_minute=None,
            tokens_per_day=None,
        ),
    )
    url = reverse("conversations:widget-sign-in", args=[embedded.embed_id])
    client.force_login(owner)
    assertContains(client.get(url, {"origin": "https://shop.example"}), "data-token=")
    client.force_login(make_member("operator", limited=True))
    assert client.get(url, {"origin": "https://shop.example"}).status_code == 404


def test_the_openapi_document_lists_the_agent_runs_api():
    operation = openapi.document()["paths"]["/api/v1/agents/{agent_slug}/runs"]["post"]
    assert operation["summary"] == "Start a run of a published agent"
    assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
