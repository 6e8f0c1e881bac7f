"""The flow editor's agent picker: the agent node's settings offer the workspace's published
agents the member may use, and the chosen agent's versions to pin (the node type supplies the
choices: ``NodeType.pickers``); an agent out of the member's reach is not offered, and a graph
naming one shows it as not available with the check's problem."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from agents.services import agent_create, agent_draft_save, agent_publish
from catalog.services import model_create
from tests.agents.test_agent_node import agent_graph, published_agent
from workspaces.services import workspace_create
from workspaces.sharing import object_grant


@pytest.fixture
def agents(workspace, owner):
    model_create(slug="remote", name="Remote", engine="echo", workspace=workspace, actor=owner)
    maths = published_agent(workspace, owner, "maths")
    # A second version of maths: the node may pin either.
    agent_draft_save(
        agent=maths,
        spec={"instructions": {"text": "Compute."}, "model": "remote", "tools": []},
        actor=owner,
    )
    agent_publish(agent=maths, actor=owner)
    secret = published_agent(workspace, owner, "secret")
    agent_create(workspace=workspace, name="Unpublished", slug="unpublished", actor=owner)
    elsewhere = workspace_create(slug="far", name="Far")
    model_create(slug="remote", name="Remote", engine="echo", workspace=elsewhere)
    agent_create(workspace=elsewhere, name="Far away", slug="far-away", spec={"model": "remote"})
    return maths, secret


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model)


def _panel(client, flow, graph: dict, **fields):
    route = "flows:flow-editor-node" if fields else "flows:flow-editor-panel"
    data = {"node": "agent_1", "graph": json.dumps(graph), **fields}
    return client.post(reverse(route, args=[flow.slug]), data)


def test_the_agent_node_offers_the_published_agents_and_the_chosen_one_s_versions(
    client, owner, flow, agents
):
    client.force_login(owner)
    response = _panel(client, flow, agent_graph("maths"))

    assert response.status_code == 200
    assertContains(response, '<select id="f-config-agent" name="config.agent">')
    assertContains(response, '<option value="maths" selected>Maths (maths), v2</option>')
    assertContains(response, '<option value="secret">Secret (secret), v1</option>')
    assertNotContains(response, "unpublished")
    assertNotContains(response, "far-away")
    assertContains(response, '<select id="f-config-version" name="config.version">')
    assertContains(response, "The version published when it runs (now v2)</option>")
    assertContains(response, '<option value="2">v2 (published now)</option>')
    assertContains(response, '<option value="1">v1</option>')

    # Pinning a version: the canvas receives the number.
    form = {
        "title": "",
        "config.agent": "maths",
        "config.version": "1",
        "policy.timeout_s": "",
        "policy.retries": "0",
        "policy.retry_backoff_s": "1.0",
        "policy.on_error": "fail",
        "policy.default": "{}",
    }
    applied = _panel(client, flow, agent_graph("maths"), **form)
    assert applied.status_code == 200
    settings = json.loads(applied.headers["HX-Trigger"])["studio:node-config"]
    assert settings["config"]["agent"] == "maths" and settings["config"]["version"] == 1
    assert settings["valid"] is True
    assertContains(applied, '<option value="1" selected>v1</option>')

    # Choosing another agent lists its versions; a pin it does not have is a problem.
    form.update({"config.agent": "secret", "config.version": "2"})
    switched = _panel(client, flow, agent_graph("maths", version=1), **form)
    assertContains(switched, '<option value="1">v1 (published now)</option>')
    assertContains(switched, '<option value="2" selected>2 (not available to you)</option>')
    assertContains(switched, "agent &#x27;secret&#x27; has no version 2 that this flow may use")


def test_an_agent_the_member_may_not_use_is_not_offered_and_is_a_problem(
    client, owner, flow, agents, make_member
):
    maths, _ = agents
    member = make_member("editor", limited=True)
    object_grant(obj=flow, subject=member, level="edit", actor=owner)
    object_grant(obj=maths, subject=member, level="use", actor=owner)
    client.force_login(member)

    offered = _panel(client, flow, agent_graph("maths"))
    assertContains(offered, '<option value="maths" selected>Maths (maths), v2</option>')
    assertNotContains(offered, 'value="secret"')

    named = _panel(client, flow, agent_graph("secret"))
    assert named.status_code == 200
    assertContains(named, '<option value="secret" selected>secret (not available to you)</option>')
    refusal = "agent &#x27;secret&#x27; has no published version that this flow may use"
    assertContains(named, refusal)
    # No versions of an agent out of reach are listed.
    assertNotContains(named, '<option value="1">')
