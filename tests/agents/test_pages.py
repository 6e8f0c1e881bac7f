"""The agent pages: the list, a new agent, the builder's settings, publishing, versions and
deleting, as each persona sees them."""

from __future__ import annotations

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from agents.models import Agent
from agents.services import agent_create, agent_draft_save, agent_publish
from workspaces.sharing import object_grant


@pytest.fixture
def agent(workspace, owner, echo_model):
    agent = agent_create(workspace=workspace, name="Helper", slug="helper", actor=owner)
    agent_draft_save(agent=agent, spec={"model": "echo"}, actor=owner)
    return agent


def _settings(**changes) -> dict:
    """What the builder's form posts for a valid agent on the echo model with no tools."""
    data = {
        "name": "Helper",
        "description": "",
        "instructions": "Answer in one sentence.",
        "library_prompt": "",
        "library_version": "",
        "target": "model:echo",
        "strategy": "auto",
        "temperature": "",
        "window_tokens": "2000",
        "summarise_older": "on",
        "max_steps": "8",
        "max_tokens": "20000",
        "max_seconds": "120",
        "max_tool_calls_per_step": "4",
        "max_answer_tokens": "",
        "opening": "Hello!",
        "suggestions": "What can you do?\nWho are you?",
        "tools-TOTAL_FORMS": "1",
        "tools-INITIAL_FORMS": "0",
        "tools-MIN_NUM_FORMS": "0",
        "tools-MAX_NUM_FORMS": "32",
        "tools-0-tool": "",
        "tools-0-name": "",
        "tools-0-config": "",
    }
    return data | changes


def test_the_list_shows_the_agents_and_the_new_button_to_editors(client, owner, viewer, agent):
    client.force_login(owner)
    response = client.get(reverse("agents:agent-list"))
    assertContains(response, "Helper")
    assertContains(response, reverse("agents:agent-new"))
    assertContains(response, reverse("workspaces:share", args=["agent", agent.id]))
    client.force_login(viewer)
    response = client.get(reverse("agents:agent-list"))
    assertContains(response, "Helper")
    assertNotContains(response, reverse("agents:agent-new"))


def test_the_nav_links_to_the_agents(client, owner):
    client.force_login(owner)
    assertContains(client.get(reverse("flows:flow-list")), reverse("agents:agent-list"))


def test_a_new_agent_gets_its_slug_from_its_name(client, owner, workspace):
    client.force_login(owner)
    response = client.post(reverse("agents:agent-new"), {"name": "Support Bot", "slug": ""})
    assertRedirects(
        response,
        reverse("agents:agent-detail", args=["support-bot"]),
        fetch_redirect_response=False,
    )
    agent = Agent.objects.get(workspace=workspace, slug="support-bot")
    assert agent.draft is None
    page = client.get(reverse("agents:agent-detail", args=["support-bot"]))
    assertContains(page, "Save the settings first: the preview talks to the saved draft.")


def test_a_viewer_may_not_create_agents(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("agents:agent-new")).status_code == 403
    assert client.post(reverse("agents:agent-new"), {"name": "Mine"}).status_code == 403
    assert not Agent.objects.exists()


def test_saving_the_settings_stores_the_draft(client, owner, agent):
    client.force_login(owner)
    response = client.post(reverse("agents:agent-save", args=["helper"]), _settings())
    assertRedirects(
        response, reverse("agents:agent-detail", args=["helper"]), fetch_redirect_response=False
    )
    agent.refresh_from_db()
    assert agent.draft["instructions"]["text"] == "Answer in one sentence."
    assert agent.draft["suggestions"] == ["What can you do?", "Who are you?"]
    assert agent.draft["memory"]["summarise_older"] is True


def test_a_refused_save_shows_the_errors_and_keeps_the_typed_values(client, owner, agent):
    client.force_login(owner)
    data = _settings(instructions="Typed, not lost.", max_steps="500")
    response = client.post(reverse("agents:agent-save", args=["helper"]), data)
    assert response.status_code == 400
    assertContains(response, "Nothing was saved", status_code=400)
    assertContains(response, "Typed, not lost.", status_code=400)
    assertContains(response, "less than or equal to 50", status_code=400)
    agent.refresh_from_db()
    assert agent.draft["instructions"]["text"] == ""


def test_an_htmx_save_swaps_only_the_form_or_reloads_the_page(client, owner, agent):
    client.force_login(owner)
    url = reverse("agents:agent-save", args=["helper"])
    refused = client.post(url, _settings(max_steps="0"), headers={"HX-Request": "true"})
    assert refused.status_code == 400
    body = refused.content.decode()
    assert body.lstrip().startswith("<form") and "<html" not in body
    assert "Nothing was saved" in body
    saved = client.post(url, _settings(opening="Hi there"), headers={"HX-Request": "true"})
    assert saved["HX-Redirect"] == reverse("agents:agent-detail", args=["helper"])
    agent.refresh_from_db()
    assert agent.draft["opening"] == "Hi there"


def test_a_tool_the_workspace_cannot_serve_is_shown_on_its_row(client, owner, agent):
    client.force_login(owner)
    data = _settings(
        **{"tools-0-tool": "knowledge_search", "tools-0-config": '{"knowledge_base": "nope"}'}
    )
    response = client.post(reverse("agents:agent-save", args=["helper"]), data)
    assertContains(
        response, "knowledge base &#x27;nope&#x27; is not in this workspace", status_code=400
    )
    assertContains(response, "&quot;knowledge_base&quot;: &quot;nope&quot;", status_code=400)
    agent.refresh_from_db()
    assert agent.draft["tools"] == []


def test_a_tool_row_is_added_then_removed(client, owner, agent, workspace):
    from knowledge.services.bases import BaseSettings, kb_create

    kb_create(workspace=workspace, slug="handbook", values=BaseSettings(name="Handbook"))
    client.force_login(owner)
    config = '{"knowledge_base": "handbook"}'
    data = _settings(
        **{
            "tools-0-tool": "knowledge_search",
            "tools-0-config": config,
            "tools-0-needs_approval": "on",
        }
    )
    assert client.post(reverse("agents:agent-save", args=["helper"]), data).status_code == 302
    agent.refresh_from_db()
    assert agent.draft["tools"] == [
        {
            "tool": "knowledge_search",
            "name": None,
            "config": {"knowledge_base": "handbook"},
            "needs_approval": True,
        }
    ]
    page = client.get(reverse("agents:agent-detail", args=["helper"]))
    assertContains(page, 'name="tools-1-tool"')  # the kept row, and an empty one to add another
    data = _settings(
        **{
            "tools-TOTAL_FORMS": "2",
            "tools-INITIAL_FORMS": "1",
            "tools-0-tool": "knowledge_search",
            "tools-0-config": config,
            "tools-0-DELETE": "on",
        }
    )
    assert client.post(reverse("agents:agent-save", args=["helper"]), data).status_code == 302
    agent.refresh_from_db()
    assert agent.draft["tools"] == []


def test_bad_tool_json_is_shown_on_its_row(client, owner, agent):
    client.force_login(owner)
    data = _settings(**{"tools-0-tool": "knowledge_search", "tools-0-config": "{not json"})
    response = client.post(reverse("agents:agent-save", args=["helper"]), data)
    assertContains(response, "This is not JSON", status_code=400)
    assertContains(response, "{not json", status_code=400)


def test_publish_then_versions_list(client, owner, agent):
    client.force_login(owner)
    response = client.post(reverse("agents:agent-publish", args=["helper"]), {"note": "first"})
    assertRedirects(
        response, reverse("agents:agent-detail", args=["helper"]), fetch_redirect_response=False
    )
    agent.refresh_from_db()
    assert agent.published_version.number == 1
    page = client.get(reverse("agents:agent-versions", args=["helper"]))
    assertContains(page, "v1")
    assertContains(page, "first")


def test_a_viewer_sees_the_builder_read_only_and_may_not_save(client, viewer, agent):
    client.force_login(viewer)
    page = client.get(reverse("agents:agent-detail", args=["helper"]))
    assertContains(page, "Helper")
    assertNotContains(page, "Save the draft")
    assertNotContains(page, reverse("agents:agent-publish", args=["helper"]))
    assert (
        client.post(reverse("agents:agent-save", args=["helper"]), _settings()).status_code == 403
    )
    assert client.post(reverse("agents:agent-publish", args=["helper"])).status_code == 403
    assert client.post(reverse("agents:agent-delete", args=["helper"])).status_code == 403
    agent.refresh_from_db()
    assert agent.published_version is None and Agent.objects.exists()


def test_an_outsider_gets_404_everywhere(client, outsider, agent):
    client.force_login(outsider)
    for name in ("agent-detail", "agent-versions", "agent-delete"):
        assert client.get(reverse(f"agents:{name}", args=["helper"])).status_code == 404
    assert (
        client.post(reverse("agents:agent-save", args=["helper"]), _settings()).status_code == 404
    )


def test_wrong_methods_answer_405(client, owner, agent):
    client.force_login(owner)
    assert client.get(reverse("agents:agent-save", args=["helper"])).status_code == 405
    assert client.get(reverse("agents:agent-publish", args=["helper"])).status_code == 405
    assert client.post(reverse("agents:agent-versions", args=["helper"])).status_code == 405


def test_a_grant_opens_the_builder_to_a_limited_member(client, owner, agent, make_member):
    limited = make_member("viewer", limited=True)
    client.force_login(limited)
    assert client.get(reverse("agents:agent-detail", args=["helper"])).status_code == 404
    object_grant(obj=agent, subject=limited, level="view", actor=owner)
    assertContains(client.get(reverse("agents:agent-detail", args=["helper"])), "Helper")


def test_the_access_page_shares_an_agent(client, owner, agent, make_member):
    limited = make_member("viewer", limited=True)
    client.force_login(owner)
    url = reverse("workspaces:share", args=["agent", agent.id])
    assertContains(client.get(url), "Helper")
    response = client.post(
        reverse("workspaces:share-grant", args=["agent", agent.id]),
        {"subject": f"user:{limited.id}", "level": "use"},
    )
    assertRedirects(response, url, fetch_redirect_response=False)
    client.force_login(limited)
    assert client.get(reverse("agents:agent-detail", args=["helper"])).status_code == 200


def test_delete_asks_then_deletes(client, owner, agent):
    agent_publish(agent=agent, actor=owner)
    client.force_login(owner)
    assertContains(client.get(reverse("agents:agent-delete", args=["helper"])), "1 version")
    response = client.post(reverse("agents:agent-delete", args=["helper"]))
    assertRedirects(response, reverse("agents:agent-list"), fetch_redirect_response=False)
    assert not Agent.objects.exists()
