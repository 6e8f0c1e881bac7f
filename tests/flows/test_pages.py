"""The HTML pages: what each persona sees, and what they may change."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains, assertRedirects

from catalog.services import model_create
from flows.demo import assistant_graph
from flows.models import Flow, FlowVersion, RunSource
from flows.services import run_create, run_fail
from flows.services.drafts import flow_draft_save
from tests.conftest import PASSWORD
from workspaces.models import ApiKey
from workspaces.services import api_key_create, workspace_create


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model)


@pytest.fixture
def run(flow):
    """A queued run: no worker picks it up in these tests."""
    return run_create(
        flow=flow,
        version=flow.published_version,
        inputs={"message": "hello there"},
        source=RunSource.CHAT,
    )


def page_urls(flow, run) -> list[str]:
    return [
        reverse("flows:flow-list"),
        reverse("flows:flow-detail", args=[flow.slug]),
        reverse("conversations:chat", args=[flow.slug]),
        reverse("flows:run-detail", args=[run.id]),
        reverse("catalog:model-list"),
        reverse("workspaces:key-list"),
    ]


# --- every page --------------------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_page(client, flow, run):
    for url in page_urls(flow, run):
        response = client.get(url)
        assertRedirects(response, f"{reverse('login')}?next={url}", fetch_redirect_response=False)


def test_every_page_shows_the_workspace_and_the_user(client, owner, flow, run):
    client.force_login(owner)
    for url in page_urls(flow, run):
        response = client.get(url)
        assert response.status_code == 200, url
        assertContains(response, "Acme")  # the workspace
        assertContains(response, "olive")
        assertContains(response, f'action="{reverse("logout")}"')
        assertContains(response, "/static/vendor/htmx/htmx.min.js")


def test_htmx_requests_carry_the_csrf_token(client, owner):
    client.force_login(owner)
    response = client.get(reverse("flows:flow-list"))
    body = response.content.decode()
    token = response.context["csrf_token"]
    assert f"""hx-headers='{{"X-CSRFToken": "{token}"}}'""" in body


def test_login_page_logs_in_and_shows_errors(client, owner):
    response = client.get(reverse("login"))
    assertContains(response, 'name="username"')
    assertContains(response, 'name="password"')

    response = client.post(reverse("login"), {"username": "olive", "password": "wrong"})
    assertContains(response, "Please enter a correct username and password")

    response = client.post(reverse("login"), {"username": "olive", "password": PASSWORD})
    assertRedirects(response, reverse("flows:home"), fetch_redirect_response=False)


def test_wrong_methods_are_refused(client, owner, flow, run, api_key):
    client.force_login(owner)
    forms = [
        reverse("flows:flow-version-create", args=[flow.slug]),
        reverse("flows:flow-publish", args=[flow.slug]),
        reverse("conversations:chat-send", args=[flow.slug]),
        reverse("workspaces:key-create"),
        reverse("workspaces:key-revoke", args=[ApiKey.objects.get().id]),
    ]
    for url in forms:
        assert client.get(url).status_code == 405, url
    for url in page_urls(flow, run):
        assert client.post(url).status_code == 405, url
    assert flow.versions.count() == 1
    assert ApiKey.objects.get().revoked_at is None


def test_outsider_cannot_see_another_workspaces_flow_or_run(client, outsider, flow, run):
    client.force_login(outsider)
    for url in [
        reverse("flows:flow-detail", args=[flow.slug]),
        reverse("conversations:chat", args=[flow.slug]),
        reverse("flows:run-detail", args=[run.id]),
    ]:
        assert client.get(url).status_code == 404, url
    for url in [
        reverse("flows:flow-version-create", args=[flow.slug]),
        reverse("flows:flow-publish", args=[flow.slug]),
        reverse("conversations:chat-send", args=[flow.slug]),
    ]:
        assert client.post(url, {"message": "hi", "graph": "{}"}).status_code == 404, url
    assert flow.versions.count() == 1
    assert flow.runs.count() == 1


# --- the flow list and a flow's page -----------------------------------------------------------


def test_flow_list_shows_each_flow_and_whether_it_is_published(
    client, owner, make_flow, echo_model
):
    make_flow(echo_model, slug="assistant")
    make_flow(echo_model, slug="draft", publish=False)
    client.force_login(owner)

    response = client.get(reverse("flows:flow-list"))

    assertContains(response, "Assistant")
    assertContains(response, "v1")
    assertContains(response, "not published")
    assertContains(response, f'href="{reverse("flows:flow-detail", args=["draft"])}"')
    assertContains(response, f'href="{reverse("conversations:chat", args=["assistant"])}"')


def test_flow_page_shows_versions_runs_and_the_editor(client, owner, flow, run):
    client.force_login(owner)

    response = client.get(reverse("flows:flow-detail", args=[flow.slug]))

    assert response.status_code == 200
    assertContains(response, "Published version")
    assertContains(response, "llm_1")
    assertContains(response, "v1")
    assertContains(response, f'href="{reverse("flows:run-detail", args=[run.id])}"')
    assertContains(response, "Queued")
    assertContains(response, "Chat page")  # the run's source
    assertContains(response, 'name="graph"')
    assertContains(response, "&quot;max_tokens&quot;: 64")  # the latest graph, as JSON
    assertContains(response, f'action="{reverse("flows:flow-publish", args=[flow.slug])}"')


def test_viewer_sees_the_flow_but_not_the_editor(client, viewer, flow):
    client.force_login(viewer)

    response = client.get(reverse("flows:flow-detail", args=[flow.slug]))

    assert response.status_code == 200
    assertContains(response, "Versions")
    assertNotContains(response, 'name="graph"')
    assertNotContains(response, reverse("flows:flow-publish", args=[flow.slug]))


def test_viewer_cannot_save_a_version_or_publish(client, viewer, make_flow, echo_model):
    flow = make_flow(echo_model, publish=False)
    client.force_login(viewer)
    graph = json.dumps(assistant_graph(model="echo", max_tokens=8))

    saved = client.post(reverse("flows:flow-version-create", args=[flow.slug]), {"graph": graph})
    published = client.post(reverse("flows:flow-publish", args=[flow.slug]))

    assert saved.status_code == 403
    assert published.status_code == 403
    flow.refresh_from_db()
    assert flow.versions.count() == 1
    assert flow.published_version is None


def test_an_invalid_graph_is_refused_naming_the_node(client, owner, flow):
    client.force_login(owner)
    graph = assistant_graph(model="echo")
    graph["nodes"][1]["type"] = "telepathy"
    typed = json.dumps(graph, indent=1)

    response = client.post(reverse("flows:flow-version-create", args=[flow.slug]), {"graph": typed})

    assert response.status_code == 400
    assert list(flow.versions.values_list("number", flat=True)) == [1]
    assertContains(
        response, "node &#x27;llm_1&#x27;: unknown node type &#x27;telepathy&#x27;", status_code=400
    )
    assert response.context["graph_text"] == typed  # the textarea keeps what was typed


def test_text_that_is_not_json_is_refused(client, owner, flow):
    client.force_login(owner)

    response = client.post(
        reverse("flows:flow-version-create", args=[flow.slug]), {"graph": "{nodes"}
    )

    assertContains(response, "not valid JSON", status_code=400)
    assertContains(response, "{nodes</textarea>", status_code=400)
    assert flow.versions.count() == 1


def test_a_valid_graph_is_saved_as_version_2(client, owner, flow):
    client.force_login(owner)
    graph = assistant_graph(model="echo", max_tokens=7)

    response = client.post(
        reverse("flows:flow-version-create", args=[flow.slug]), {"graph": json.dumps(graph)}
    )

    assertRedirects(
        response, reverse("flows:flow-detail", args=[flow.slug]), fetch_redirect_response=False
    )
    version = FlowVersion.objects.get(flow=flow, number=2)
    assert version.graph == graph
    assert version.created_by == owner
    flow.refresh_from_db()
    assert flow.published_version.number == 1  # saving does not publish
    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))
    assertContains(page, "Saved version 2.")
    assertContains(page, "Publish v2")


def test_publishing_publishes_the_latest_version(client, owner, make_flow, echo_model):
    flow = make_flow(echo_model, publish=False)
    client.force_login(owner)

    response = client.post(reverse("flows:flow-publish", args=[flow.slug]))

    assertRedirects(
        response, reverse("flows:flow-detail", args=[flow.slug]), fetch_redirect_response=False
    )
    flow.refresh_from_db()
    assert flow.published_version == flow.versions.get(number=1)
    assertContains(
        client.get(reverse("flows:flow-detail", args=[flow.slug])), "Published version 1."
    )


# --- chat --------------------------------------------------------------------------------------


def test_chat_page_has_the_message_form(client, owner, flow):
    client.force_login(owner)

    response = client.get(reverse("conversations:chat", args=[flow.slug]))

    assertContains(response, f'hx-post="{reverse("conversations:chat-send", args=[flow.slug])}"')
    assertContains(response, 'hx-target="#messages"')
    assertContains(response, 'name="message"')
    assertContains(response, "/static/conversations/chat.js")


def test_viewer_cannot_chat(client, viewer, flow):
    client.force_login(viewer)

    assert client.get(reverse("conversations:chat", args=[flow.slug])).status_code == 403
    send = reverse("conversations:chat-send", args=[flow.slug])
    assert client.post(send, {"message": "hi"}).status_code == 403
    assert flow.runs.count() == 0


def test_sending_a_message_starts_a_run_and_renders_both_bubbles(client, owner, flow):
    client.force_login(owner)

    response = client.post(
        reverse("conversations:chat-send", args=[flow.slug]),
        {"message": "<b>hi</b>"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    run = flow.runs.get()
    assert run.inputs == {"message": "<b>hi</b>"}
    assert run.created_by == owner
    assertContains(response, "&lt;b&gt;hi&lt;/b&gt;")  # escaped, never markup
    assertContains(response, f'data-run-id="{run.id}"')
    assertNotContains(response, "<html")  # only the fragment


def test_an_empty_message_renders_an_error_bubble(client, owner, flow):
    client.force_login(owner)

    response = client.post(reverse("conversations:chat-send", args=[flow.slug]), {"message": "  "})

    assertContains(response, "Type a message first.", status_code=400)
    assertNotContains(response, "data-run-id", status_code=400)
    assert flow.runs.count() == 0


# --- runs --------------------------------------------------------------------------------------


def test_run_page_follows_the_runs_events_while_the_run_is_not_over(client, owner, run):
    client.force_login(owner)
    url = reverse("flows:run-detail", args=[run.id])
    follow = f'data-follow="{reverse("flows:run-events", args=[run.id])}"'

    page = client.get(url)
    fragment = client.get(url, HTTP_HX_REQUEST="true")

    assertContains(page, "hello there")
    assertContains(page, "Queued")
    assertContains(page, f'data-refresh="{url}"')
    assertContains(page, follow)
    assertContains(fragment, 'id="trace"')
    assertContains(fragment, follow)
    assertNotContains(fragment, "<html")


def test_a_failed_run_shows_its_reason_and_stops_following(client, owner, run):
    assert run_fail(run_id=run.id, reason="the model fell over")
    client.force_login(owner)

    response = client.get(reverse("flows:run-detail", args=[run.id]), HTTP_HX_REQUEST="true")

    assertContains(response, "the model fell over")
    assertContains(response, "Failed")
    assertNotContains(response, "hx-trigger")
    assertNotContains(response, "data-follow")


# --- catalog and keys --------------------------------------------------------------------------


def test_catalog_lists_shared_and_own_models(client, owner, workspace, echo_model):
    other = workspace_create(slug="other", name="Other")
    model_create(slug="mine", name="My model", engine="echo", workspace=workspace)
    model_create(slug="theirs", name="Their model", engine="echo", workspace=other)
    client.force_login(owner)

    response = client.get(reverse("catalog:model-list"))

    assertContains(response, "Echo")
    assertContains(response, "My model")
    assertNotContains(response, "Their model")
    assertContains(response, "shared")
    assertContains(response, "own")
    assertContains(response, "2048")


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(client, owner, flow):
    client.force_login(owner)

    response = client.post(reverse("workspaces:key-create"), {"name": "backend"})

    assert response.status_code == 200
    key = response.context["new_key"]
    api_key = ApiKey.objects.get(name="backend")
    assert key.startswith(f"sk-studio-{api_key.prefix}.")
    assert api_key.secret_hash != key and key.split(".", 1)[1] not in api_key.secret_hash
    assertContains(response, key)
    assertContains(response, "will not be shown again")
    assert "no-store" in response["Cache-Control"]
    listing = client.get(reverse("workspaces:key-list"))
    assertNotContains(listing, key)
    assertContains(listing, f"sk-studio-{api_key.prefix}…")
    assertContains(listing, "/api/v1/flows/assistant/runs")
    assertContains(listing, "/v1/chat/completions")


def test_a_revoked_key_shows_as_revoked(client, owner, api_key):
    client.force_login(owner)
    row = ApiKey.objects.get()

    response = client.post(reverse("workspaces:key-revoke", args=[row.id]))

    assertRedirects(response, reverse("workspaces:key-list"))
    row.refresh_from_db()
    assert row.revoked_at is not None
    assertContains(client.get(reverse("workspaces:key-list")), "revoked")


def test_viewer_cannot_manage_keys(client, viewer, workspace):
    hidden, _ = api_key_create(workspace=workspace, name="hidden-from-viewers")
    client.force_login(viewer)

    page = client.get(reverse("workspaces:key-list"))
    assert page.status_code == 200
    assertNotContains(page, "hidden-from-viewers")
    assertNotContains(page, "Create key")
    assert client.post(reverse("workspaces:key-create"), {"name": "x"}).status_code == 403
    assert client.post(reverse("workspaces:key-revoke", args=[hidden.id])).status_code == 404
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["hidden-from-viewers"]


# --- the API panel ----------------------------------------------------------------------------


def _snippets(page) -> dict[str, str]:
    return {s.key: s.code for s in page.context["api_snippets"]}


def test_the_api_panel_shows_requests_with_the_flows_address_and_slug(client, owner, flow):
    client.force_login(owner)

    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))

    snippets = _snippets(page)
    assert list(snippets) == ["curl", "httpx", "openai", "fetch"]
    runs_url = f"http://testserver/api/v1/flows/{flow.slug}/runs"
    assert snippets["curl"].startswith(f"curl {runs_url} \\\n")
    assert f'"{runs_url}"' in snippets["httpx"] and f'"{runs_url}"' in snippets["fetch"]
    assert 'base_url="http://testserver/v1"' in snippets["openai"]
    assert f'model="{flow.slug}"' in snippets["openai"]
    assertContains(page, '<section class="api-panel" id="api">')
    assertContains(page, 'data-copy="api-curl"')
    assertContains(page, "flows/copy.js")


def test_an_unpublished_flow_has_no_api_panel(client, owner, make_flow, echo_model):
    flow = make_flow(echo_model, publish=False)
    client.force_login(owner)

    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))

    assert page.context["api_snippets"] == []
    assertNotContains(page, 'id="api"')


def test_the_curl_body_runs_the_flow(client, owner, flow, api_key, worker):
    client.force_login(owner)
    curl = _snippets(client.get(reverse("flows:flow-detail", args=[flow.slug])))["curl"]
    url = curl.split()[1]
    body = json.loads(curl.split(" -d '", 1)[1].removesuffix("'"))

    response = client.post(
        url.removeprefix("http://testserver"),
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    )

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == "succeeded"
    assert answer["outputs"]["text"] == "Hello!"  # the echo model answers the example message


def test_the_openai_snippet_names_a_model_the_openai_endpoint_runs(
    client, owner, flow, api_key, worker
):
    client.force_login(owner)
    code = _snippets(client.get(reverse("flows:flow-detail", args=[flow.slug])))["openai"]
    model = code.split('model="', 1)[1].split('"', 1)[0]

    response = client.post(
        "/v1/chat/completions",
        {"model": model, "messages": [{"role": "user", "content": "Hello!"}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key}",
    )

    assert response.status_code == 200, response.content
    assert response.json()["choices"][0]["message"]["content"] == "Hello!"


# --- version numbers and greyed buttons -------------------------------------------------------


def _new_flow(client, workspace) -> Flow:
    client.post(reverse("flows:flow-new"), {"starter": "blank", "name": "Mine"})
    return Flow.objects.get(workspace=workspace)


def test_a_new_flow_published_unchanged_from_its_page_is_version_1(client, owner, workspace):
    client.force_login(owner)
    flow = _new_flow(client, workspace)
    # The editor autosaves the draft as it opens it (with the schema's defaults filled in).
    flow_draft_save(flow=flow, graph=flow.draft, user=owner)
    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))
    assertContains(page, "Publish v1")
    assertContains(page, '<span class="why-disabled" id="why-no-chat">Publish a version')

    response = client.post(reverse("flows:flow-publish", args=[flow.slug]), follow=True)

    flow.refresh_from_db()
    assert flow.published_version.number == 1
    assert flow.versions.filter(number__isnull=False).count() == 1
    assertContains(response, "Published version 1.")
    assertContains(response, "Version <strong>1</strong> runs on the chat page")


def test_publishing_from_the_page_publishes_the_editors_changed_draft(client, owner, workspace):
    client.force_login(owner)
    flow = _new_flow(client, workspace)
    graph = json.loads(json.dumps(flow.draft))
    graph["nodes"][1]["config"]["fields"][0]["label"] = "Reply"
    flow_draft_save(flow=flow, graph=graph, user=owner)
    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))
    assertContains(page, "Publish the draft as v2")
    assertContains(page, "The editor's draft has changes that v1 has not")

    response = client.post(reverse("flows:flow-publish", args=[flow.slug]), follow=True)

    flow.refresh_from_db()
    assert flow.published_version.number == 2
    assert flow.published_version.graph["nodes"][1]["config"]["fields"][0]["label"] == "Reply"
    assertContains(response, "Published version 2.")


def test_a_greyed_publish_button_says_why(client, owner, flow):
    client.force_login(owner)

    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))

    assertContains(page, 'disabled aria-describedby="why-no-publish"')
    assertContains(page, "Nothing new to publish: v1 is live")
    assertNotContains(page, "why-no-chat")  # published: the chat link is live


def test_the_published_version_is_drawn_and_each_version_shows_its_note(client, owner, workspace):
    client.force_login(owner)
    flow = _new_flow(client, workspace)
    client.post(reverse("flows:flow-publish", args=[flow.slug]))

    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))

    assertContains(page, '<div class="flow-picture"><svg class="graph-picture"')
    assertContains(page, "<title>The graph of Mine</title>")
    assertContains(page, "<td>Created from the starter “Blank”</td>", html=True)


def test_a_member_who_may_edit_but_not_delete_sees_a_greyed_delete_with_the_reason(
    client, make_member, owner, flow
):
    from workspaces.sharing import object_grant

    editor = make_member("editor", limited=True)
    object_grant(obj=flow, subject=editor, level="edit", actor=owner)
    client.force_login(editor)

    page = client.get(reverse("flows:flow-detail", args=[flow.slug]))

    assertNotContains(page, reverse("flows:flow-delete", args=[flow.slug]))
    assertContains(page, 'disabled aria-describedby="why-no-delete"')
    assertContains(page, "You may edit this flow but not delete it")


def test_a_starter_link_opens_the_new_flow_page_with_that_starter_chosen(client, owner):
    client.force_login(owner)
    page = client.get(reverse("flows:flow-new"), {"starter": "translate"}).content.decode()
    chosen = re.findall(r'value="([a-z_]+)" id="starter-[a-z_]+"[^>]*checked>', page)
    assert chosen == ["translate"]
    page = client.get(reverse("flows:flow-new"), {"starter": "../nope"}).content.decode()
    chosen = re.findall(r'value="([a-z_]+)" id="starter-[a-z_]+"[^>]*checked>', page)
    assert chosen == ["blank"]
