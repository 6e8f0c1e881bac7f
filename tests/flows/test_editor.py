"""The flow editor: its page, the draft's autosave and report, the node settings panel, test runs
of the draft, and publishing it."""

from __future__ import annotations

import copy
import json

import httpx
import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from catalog.services import model_create
from flows.demo import assistant_graph
from flows.editor.palette import GROUPS, palette
from flows.models import Flow, FlowVersion, RunSource, RunStatus, VersionKind
from flows.nodes import node_types
from flows.schema import GraphError
from flows.services.drafts import flow_draft_save, flow_publish_draft
from tests.flows.helpers import logged_events, wait_for_run
from workspaces.models import AuditEvent
from workspaces.services import workspace_create


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model)


def url(name: str, flow: Flow, *args) -> str:
    """The address of the flow pages' route ``name`` (without its ``flows:`` namespace)."""
    return reverse(f"flows:{name}", args=[flow.slug, *args])


def post_json(client, address: str, payload: dict):
    return client.post(address, data=json.dumps(payload), content_type="application/json")


def editor_data(response) -> dict:
    return response.context["editor"]


def graph_without_output() -> dict:
    graph = assistant_graph(model="echo", max_tokens=16)
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] != "output_1"]
    graph["edges"] = [e for e in graph["edges"] if e["target"] != "output_1"]
    return graph


def with_prompt(prompt: str, max_tokens: int = 16) -> dict:
    graph = assistant_graph(model="echo", max_tokens=max_tokens)
    graph["nodes"][1]["config"]["prompt"] = prompt
    return graph


def panel_post(client, name: str, flow: Flow, graph: dict, node: str, **fields):
    data = {"node": node, "graph": json.dumps(graph), **fields}
    return client.post(url(name, flow), data)


def llm_form(**changes) -> dict:
    """The LLM node's settings form as the browser posts it."""
    form = {
        "title": "",
        "config.model": "echo",
        "config.route": "",
        "config.adapter": "",
        "config.prompt": "{{message}}",
        "config.system": "",
        "config.library_prompt": "",
        "config.library_version": "",
        "config.variables": "",
        "config.temperature": "0",
        "config.top_p": "",
        "config.max_tokens": "16",
        "config.json_schema": "",
        "policy.timeout_s": "",
        "policy.retries": "0",
        "policy.retry_backoff_s": "1.0",
        "policy.on_error": "fail",
        "policy.default": "{}",
    }
    form.update(changes)
    return form


def node_event(response) -> dict:
    return json.loads(response.headers["HX-Trigger"])["studio:node-config"]


# --- the page -------------------------------------------------------------------------------


def test_the_editor_opens_the_latest_version_with_the_palette_and_what_the_user_may_do(
    client, owner, flow
):
    client.force_login(owner)

    response = client.get(url("flow-editor", flow))

    assert response.status_code == 200
    data = editor_data(response)
    assert data["graph"] == flow.published_version.graph
    assert data["can"] == {"change": True, "run": True, "publish": True}
    assert data["report"]["problems"] == []
    assert data["report"]["ports"]["llm_1"]["inputs"] == {"message": "text"}
    assert {entry["type"] for entry in data["palette"]} == set(node_types())
    body = response.content.decode()
    assert 'id="editor-data"' in body  # the island's data, as JSON in the page
    assert "/static/flows/editor/editor.js" in body
    assert "/static/flows/editor/editor.css" in body
    assertContains(response, 'id="node-panel"')


def test_the_editor_opens_the_draft_when_there_is_one(client, owner, flow):
    flow_draft_save(flow=flow, graph=with_prompt("Draft: {{message}}"), user=owner)
    client.force_login(owner)

    data = editor_data(client.get(url("flow-editor", flow)))

    assert data["graph"]["nodes"][1]["config"]["prompt"] == "Draft: {{message}}"
    assert data["draft"]["saved_by"] == "olive"
    assert data["draft"]["saved_at"]


def test_a_viewer_gets_a_read_only_editor(client, viewer, flow):
    client.force_login(viewer)

    response = client.get(url("flow-editor", flow))

    assert response.status_code == 200
    assert editor_data(response)["can"] == {"change": False, "run": False, "publish": False}


def test_the_flow_pages_link_to_the_editor(client, owner, flow):
    client.force_login(owner)
    editor = url("flow-editor", flow)

    assertContains(client.get(reverse("flows:flow-list")), f'href="{editor}"')
    assertContains(client.get(url("flow-detail", flow)), f'href="{editor}"')


def test_the_palette_lists_every_node_type_by_group_with_a_default_config():
    entries = palette({"model": "echo"})

    groups = [e["group"] for e in entries]
    known = [g for g in groups if g in GROUPS]
    assert known == sorted(known, key=GROUPS.index)  # the palette's order, others after
    llm = next(e for e in entries if e["type"] == "llm")
    assert llm["config"]["model"] == "echo"  # the first model the user may use
    assert llm["ports"]["inputs"] == {"message": "text"}
    assert llm["ports"]["outputs"] == {"text": "text"}
    keys = {"type", "label", "group", "description", "container", "config", "ports"}
    for entry in entries:
        assert set(entry) == keys and entry["label"]
        assert set(entry["ports"]) == {"inputs", "outputs", "inner"}
    containers = {e["type"] for e in entries if e["container"]}
    assert containers == {t for t, k in node_types().items() if k.container}


# --- the draft ------------------------------------------------------------------------------


def test_saving_a_draft_keeps_an_invalid_graph_and_reports_its_problems(client, owner, flow):
    client.force_login(owner)
    graph = graph_without_output()
    graph["nodes"][1]["config"]["prompt"] = "Tell me about {{topic}}"

    response = post_json(client, url("flow-editor-draft", flow), {"graph": graph})

    assert response.status_code == 200
    flow.refresh_from_db()
    assert flow.draft["nodes"][1]["config"]["prompt"] == "Tell me about {{topic}}"
    assert [n["id"] for n in flow.draft["nodes"]] == ["input_1", "llm_1"]
    assert flow.draft_saved_by == owner
    body = response.json()
    problems = [(p["node"], p["message"]) for p in body["report"]["problems"]]
    assert (None, "it needs an output node") in problems
    assert ("llm_1", "input 'topic' is not connected") in problems
    assert body["report"]["ports"]["llm_1"]["inputs"] == {"topic": "text"}
    assert body["saved_by"] == "olive"
    # The published version is untouched.
    assert flow.published_version.graph == assistant_graph(model="echo", max_tokens=64)


def test_a_reference_needs_no_edge_and_gets_its_port(client, owner, flow):
    client.force_login(owner)
    graph = with_prompt("Answer: {{input_1.message}}")
    graph["edges"] = [e for e in graph["edges"] if e["target"] != "llm_1"]

    response = post_json(client, url("flow-editor-draft", flow), {"graph": graph})

    report = response.json()["report"]
    assert report["problems"] == []
    assert report["ports"]["llm_1"]["inputs"] == {"input_1.message": "text"}


@pytest.mark.parametrize(
    "graph, named",
    [
        ({"nodes": "all of them"}, "nodes"),
        ({"nodes": [{"id": "1 bad id", "type": "llm"}]}, "nodes.0.id"),
        ({"nodes": [], "edges": [], "layout": "grid"}, "layout"),
        ({"nodes": [{"id": "a", "type": "llm", "colour": "red"}]}, "colour"),
        (
            {
                "nodes": [
                    {"id": f"n{i}", "type": "llm", "config": {"p": "x" * 5000}} for i in range(205)
                ]
            },
            "limit",
        ),
    ],
)
def test_a_graph_that_is_not_the_schema_is_refused_and_the_old_draft_kept(
    client, owner, flow, graph, named
):
    flow_draft_save(flow=flow, graph=with_prompt("kept {{message}}"), user=owner)
    client.force_login(owner)

    response = post_json(client, url("flow-editor-draft", flow), {"graph": graph})

    assert response.status_code == 400
    assert named in response.json()["error"]
    flow.refresh_from_db()
    assert flow.draft["nodes"][1]["config"]["prompt"] == "kept {{message}}"


def test_a_body_far_over_the_limit_is_refused_unread(client, owner, flow):
    client.force_login(owner)
    graph = {"nodes": [{"id": "a", "type": "llm", "config": {"prompt": "x" * 1_200_000}}]}

    response = post_json(client, url("flow-editor-draft", flow), {"graph": graph})

    assert response.status_code == 413
    flow.refresh_from_db()
    assert flow.draft is None


def test_a_body_that_is_not_json_is_refused(client, owner, flow):
    client.force_login(owner)

    response = client.post(url("flow-editor-draft", flow), "{nope", content_type="application/json")

    assert response.status_code == 400
    flow.refresh_from_db()
    assert flow.draft is None


def test_only_who_may_change_the_flow_saves_its_draft(client, viewer, make_member, outsider, flow):
    for user, status in [(viewer, 403), (make_member("operator"), 403), (outsider, 404)]:
        client.force_login(user)
        response = post_json(client, url("flow-editor-draft", flow), {"graph": with_prompt("x")})
        assert response.status_code == status, user
    flow.refresh_from_db()
    assert flow.draft is None


# --- the node panel -------------------------------------------------------------------------


def test_the_node_panel_renders_the_schema_with_labels_pickers_and_catalog_choices(
    client, owner, flow, workspace
):
    model_create(
        slug="other-ws-model",
        name="Elsewhere",
        engine="echo",
        workspace=workspace_create(slug="far", name="Far"),
    )
    client.force_login(owner)
    graph = assistant_graph(model="echo")

    response = panel_post(client, "flow-editor-panel", flow, graph, "llm_1")

    assert response.status_code == 200
    body = response.content.decode()
    assert "<h2>LLM <code>llm_1</code></h2>" in body
    assertContains(response, '<label for="f-config-prompt">Prompt')
    assertContains(response, '<textarea id="f-config-prompt" name="config.prompt"')
    # The model picker: the workspace's chat models the user may use, the current one chosen.
    assertContains(response, '<select id="f-config-model" name="config.model">')
    assertContains(response, '<option value="echo" selected>Echo (echo)</option>')
    assertNotContains(response, "other-ws-model")
    # The variable picker offers the upstream node's outputs, never a downstream one's.
    # The edge input_1.message → message is there: the picker writes the short {{message}}.
    assertContains(response, 'data-insert="{{message}}"')
    assertContains(response, "Write {{name}} to use an input; {{node_id.name}} also works.")
    assertNotContains(response, "output_1.")
    # Numbers, and the failure handling section with its choices.
    assertContains(response, 'type="number" id="f-config-max_tokens"')
    assertContains(response, "Failure handling")
    assertContains(response, '<option value="branch">Take the error branch')
    assert 'hx-post="' + url("flow-editor-node", flow) in body


def test_the_output_node_panel_lists_its_fields_as_rows(client, owner, flow):
    client.force_login(owner)

    response = panel_post(client, "flow-editor-panel", flow, assistant_graph("echo"), "output_1")

    assertContains(response, 'name="config.fields.0._row"')
    assertContains(response, 'name="config.fields.0.name" value="text"')
    assertContains(response, '<select id="f-config-fields-0-type" name="config.fields.0.type">')
    assertContains(response, 'value="add:config.fields"')
    assertContains(response, 'value="remove:config.fields.0"')
    assertNotContains(response, "Insert variable")  # names and labels are not templates


def test_every_node_type_s_settings_render_from_its_schema(client, owner, flow):
    client.force_login(owner)
    for entry in palette({"model": "echo"}):
        graph = assistant_graph("echo")
        graph["nodes"].append({"id": "new_1", "type": entry["type"], "config": entry["config"]})

        response = panel_post(client, "flow-editor-panel", flow, graph, "new_1")

        assert response.status_code == 200, entry["type"]
        assertContains(response, f"<h2>{entry['label']} <code>new_1</code></h2>")
        assertContains(response, "Failure handling")


def test_nested_lists_edit_as_rows_within_rows(client, owner, flow):
    client.force_login(owner)
    graph = assistant_graph("echo")
    graph["nodes"].append(
        {
            "id": "if_else_1",
            "type": "if_else",
            "config": {
                "cases": [
                    {
                        "id": "billing",
                        "conditions": [{"variable": "llm_1.text", "operator": "contains"}],
                    }
                ]
            },
        }
    )
    form = {
        "config.cases.0._row": "1",
        "config.cases.0.id": "billing",
        "config.cases.0.logic": "or",
        "config.cases.0.conditions.0._row": "1",
        "config.cases.0.conditions.0.variable": "llm_1.text",
        "config.cases.0.conditions.0.operator": "contains",
        "config.cases.0.conditions.0.value": "invoice",
    }

    added = panel_post(
        client,
        "flow-editor-node",
        flow,
        graph,
        "if_else_1",
        _action="add:config.cases.0.conditions",
        **form,
    )
    applied = panel_post(client, "flow-editor-node", flow, graph, "if_else_1", **form)

    assertContains(added, 'name="config.cases.0.conditions.1.variable"')
    # The condition's variable names an output: its picker puts node_id.port, not {{…}}; the
    # LLM it reads and what the LLM reads are upstream, even while the new row is incomplete.
    assertContains(added, 'data-mode="reference"', count=4)
    assertContains(added, 'data-insert="llm_1.text"', count=2)
    assertContains(added, 'data-insert="input_1.message"', count=2)
    event = node_event(applied)
    assert event["config"]["cases"][0]["logic"] == "or"
    assert event["config"]["cases"][0]["conditions"][0]["value"] == "invoice"
    assert set(event["ports"]["outputs"]) == {"billing", "else"}


def test_a_viewer_sees_the_settings_read_only(client, viewer, flow):
    client.force_login(viewer)

    response = panel_post(client, "flow-editor-panel", flow, assistant_graph("echo"), "llm_1")

    assert response.status_code == 200
    assertContains(response, "<fieldset disabled>")
    assertNotContains(response, "hx-post=")
    assertContains(response, "You may view these settings but not change them.")


def test_applying_settings_sends_the_cleaned_config_and_its_ports_to_the_canvas(
    client, owner, flow
):
    client.force_login(owner)
    form = llm_form(**{"config.prompt": "Answer {{input_1.message}} about {{topic}}"})

    response = panel_post(
        client, "flow-editor-node", flow, assistant_graph("echo"), "llm_1", **form
    )

    assert response.status_code == 200
    event = node_event(response)
    assert event["node"] == "llm_1"
    assert event["valid"] is True
    assert event["config"]["prompt"] == "Answer {{input_1.message}} about {{topic}}"
    assert event["config"]["max_tokens"] == 16
    assert event["config"]["temperature"] == 0.0
    assert event["policy"]["on_error"] == "fail"
    assert event["ports"]["inputs"] == {"input_1.message": "text", "topic": "text"}
    # Its problem in the graph (nothing feeds {{topic}} yet) shows in the panel.
    assertContains(response, "input &#x27;topic&#x27; is not connected")


def test_settings_with_errors_show_them_inline_and_still_reach_the_canvas(client, owner, flow):
    client.force_login(owner)
    graph = assistant_graph("echo")
    form = llm_form(**{"config.model": "", "config.prompt": "my half-written prompt"})

    response = panel_post(client, "flow-editor-node", flow, graph, "llm_1", **form)

    assert response.status_code == 200
    assertContains(response, "name either a model or a route")  # about the node as a whole
    event = node_event(response)
    assert event["valid"] is False
    assert event["config"]["prompt"] == "my half-written prompt"  # no typing is lost

    form = llm_form(**{"config.max_tokens": "lots", "policy.default": "{not json"})
    response = panel_post(client, "flow-editor-node", flow, graph, "llm_1", **form)

    body = response.content.decode()
    field = body.index('name="config.max_tokens"')
    assert field < body.index("Input should be a valid integer") < body.index("config.json_schema")
    assertContains(response, "This is not valid JSON")
    assertContains(response, "{not json</textarea>")  # what was typed stays
    assert body.count("Input should be a valid integer") == 1  # inline, not repeated below


def test_a_catalog_problem_shows_next_to_its_picker(client, owner, flow):
    client.force_login(owner)
    form = llm_form(**{"config.model": "gpt-17"})

    response = panel_post(
        client, "flow-editor-node", flow, assistant_graph("echo"), "llm_1", **form
    )

    body = response.content.decode()
    picker = body.index('name="config.model"')
    error = body.index("model &#x27;gpt-17&#x27; is not in this workspace")
    assert picker < error < body.index('name="config.route"')
    assert "gpt-17 (not available to you)" in body


def test_list_rows_are_added_and_removed(client, owner, flow):
    client.force_login(owner)
    graph = assistant_graph("echo")
    form = {
        "config.fields.0._row": "1",
        "config.fields.0.name": "message",
        "config.fields.0.type": "text",
        "config.fields.0.label": "Message",
        "config.fields.0.required": "on",
    }

    added = panel_post(
        client, "flow-editor-node", flow, graph, "input_1", _action="add:config.fields", **form
    )

    assertContains(added, 'name="config.fields.1._row"')
    assert "HX-Trigger" not in added.headers  # an empty row is not a change yet

    removed = panel_post(
        client,
        "flow-editor-node",
        flow,
        graph,
        "input_1",
        _action="remove:config.fields.0",
        **form,
        **{
            "config.fields.1._row": "1",
            "config.fields.1.name": "topic",
            "config.fields.1.type": "number",
        },
    )

    event = node_event(removed)
    assert [f["name"] for f in event["config"]["fields"]] == ["topic"]
    assert event["ports"]["outputs"] == {"topic": "number"}
    assertNotContains(removed, 'name="config.fields.1._row"')


def test_the_error_branch_adds_an_error_output(client, owner, flow):
    client.force_login(owner)
    form = llm_form(**{"policy.on_error": "branch", "policy.retries": "2"})

    response = panel_post(
        client, "flow-editor-node", flow, assistant_graph("echo"), "llm_1", **form
    )

    event = node_event(response)
    assert event["policy"]["retries"] == 2
    assert event["ports"]["outputs"] == {"text": "text", "error": "text"}


def test_a_node_inside_a_container_may_pick_its_inner_ports(client, owner, flow):
    client.force_login(owner)
    graph = assistant_graph("echo")
    graph["nodes"].append(
        {"id": "iteration_1", "type": "iteration", "config": {"result": "llm_2.text"}}
    )
    graph["nodes"].append(
        {
            "id": "llm_2",
            "type": "llm",
            "parent": "iteration_1",
            "config": {"model": "echo", "prompt": "Say {{iteration_1.item}}"},
        }
    )

    inside = panel_post(client, "flow-editor-panel", flow, graph, "llm_2")
    container = panel_post(client, "flow-editor-panel", flow, graph, "iteration_1")

    assertContains(inside, 'data-insert="{{iteration_1.item}}"')
    assertContains(inside, 'data-insert="{{iteration_1.index}}"')
    # The iteration's result names an output inside it: its picker puts node_id.port.
    assertContains(container, 'data-mode="reference"')
    assertContains(container, 'data-insert="llm_2.text"')


def test_a_settings_post_needs_change_and_a_known_node(client, viewer, outsider, owner, flow):
    graph = assistant_graph("echo")
    for user, status in [(viewer, 403), (outsider, 404)]:
        client.force_login(user)
        response = panel_post(client, "flow-editor-node", flow, graph, "llm_1", **llm_form())
        assert response.status_code == status
    client.force_login(outsider)
    assert panel_post(client, "flow-editor-panel", flow, graph, "llm_1").status_code == 404

    client.force_login(owner)
    response = panel_post(client, "flow-editor-node", flow, graph, "ghost", **llm_form())
    assert response.status_code == 400
    assertContains(response, "The flow has no node ghost", status_code=400)


# --- test runs ------------------------------------------------------------------------------


def test_a_test_run_runs_a_snapshot_of_the_draft_and_reuses_it(client, owner, flow):
    flow_draft_save(flow=flow, graph=with_prompt("Draft: {{message}}"), user=owner)
    client.force_login(owner)

    first = post_json(client, url("flow-editor-run", flow), {"inputs": {"message": "hi"}})
    second = post_json(client, url("flow-editor-run", flow), {"inputs": {"message": "again"}})

    assert first.status_code == 201, first.content
    run = flow.runs.get(id=first.json()["run"])
    snapshot = run.flow_version
    assert (snapshot.kind, snapshot.number) == (VersionKind.DRAFT, None)
    flow.refresh_from_db()
    assert snapshot.graph == flow.draft
    assert run.source == RunSource.STUDIO
    assert run.inputs == {"message": "hi"}
    assert first.json()["trace_url"] == reverse("flows:run-detail", args=[run.id])
    assert flow.runs.get(id=second.json()["run"]).flow_version == snapshot  # the same graph

    flow_draft_save(flow=flow, graph=with_prompt("Changed: {{message}}"), user=owner)
    third = post_json(client, url("flow-editor-run", flow), {"inputs": {"message": "hi"}})
    assert flow.runs.get(id=third.json()["run"]).flow_version != snapshot
    assert flow.versions.filter(kind=VersionKind.DRAFT).count() == 2
    # Snapshots are not versions: the next numbered version is still 2.
    assert flow.published_version.number == 1
    assert flow_publish_draft(flow=flow, user=owner).number == 2


def test_a_draft_with_problems_does_not_run_and_names_the_nodes(client, owner, flow):
    graph = graph_without_output()
    graph["nodes"][1]["config"]["model"] = "gpt-17"
    flow_draft_save(flow=flow, graph=graph, user=owner)
    client.force_login(owner)

    response = post_json(client, url("flow-editor-run", flow), {"inputs": {"message": "hi"}})

    assert response.status_code == 400
    problems = {(p["node"], p["message"]) for p in response.json()["problems"]}
    assert ("llm_1", "model 'gpt-17' is not in this workspace's catalog") in problems
    assert (None, "it needs an output node") in problems
    assert not flow.runs.exists()
    assert not flow.versions.filter(kind=VersionKind.DRAFT).exists()


def test_test_inputs_are_checked_against_the_input_node(client, owner, flow):
    client.force_login(owner)

    response = post_json(client, url("flow-editor-run", flow), {"inputs": {"mesage": "typo"}})

    assert response.status_code == 400
    assert "unknown inputs: mesage" in response.json()["error"]
    assert not flow.runs.exists()


def test_a_test_run_past_the_workspaces_limit_gets_429(client, owner, workspace, flow):
    workspace.requests_per_minute = 1
    workspace.save(update_fields=["requests_per_minute"])
    client.force_login(owner)
    run = url("flow-editor-run", flow)
    assert post_json(client, run, {"inputs": {"message": "hi"}}).status_code == 201
    refused = post_json(client, run, {"inputs": {"message": "again"}})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "1 requests a minute" in refused.json()["error"]
    assert flow.runs.count() == 1


def test_running_the_draft_needs_run(client, viewer, make_member, outsider, flow):
    for user, status in [(viewer, 403), (outsider, 404), (make_member("operator"), 201)]:
        client.force_login(user)
        response = post_json(client, url("flow-editor-run", flow), {"inputs": {"message": "hi"}})
        assert response.status_code == status, user


def test_a_test_run_streams_and_its_nodes_can_be_read_back(client, owner, worker, echo_model):
    from flows.services import flow_create

    flow = flow_create(
        workspace=owner.memberships.get().workspace,
        slug="drafty",
        name="Drafty",
        graph=assistant_graph(model="echo", max_tokens=16),
        user=owner,
    )
    flow_draft_save(flow=flow, graph=with_prompt("Draft says {{message}}"), user=owner)
    client.force_login(owner)

    started = post_json(client, url("flow-editor-run", flow), {"inputs": {"message": "hello"}})
    run = wait_for_run(started.json()["run"])

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "Draft says hello"}
    tokens = [e["data"]["text"] for e in logged_events(run.id) if e["type"] == "token"]
    assert "".join(tokens) == "Draft says hello"
    nodes = client.get(url("flow-editor-run-nodes", flow, run.id)).json()["nodes"]
    llm = next(n for n in nodes if n["node_id"] == "llm_1")
    assert llm["inputs"] == {"message": "hello"}
    assert llm["outputs"] == {"text": "Draft says hello"}
    assert llm["output_tokens"] == 3


def test_the_run_nodes_of_another_flow_are_not_found(client, owner, make_flow, echo_model):
    from flows.services import run_create

    one = make_flow(echo_model, slug="one")
    two = make_flow(echo_model, slug="two")
    run = run_create(
        flow=two, version=two.published_version, inputs={"message": "x"}, source=RunSource.CHAT
    )
    client.force_login(owner)

    assert client.get(url("flow-editor-run-nodes", one, run.id)).status_code == 404
    assert client.get(url("flow-editor-run-nodes", two, run.id)).status_code == 200


# --- publishing -----------------------------------------------------------------------------


def test_publishing_refuses_a_draft_with_problems_and_publishes_nothing(client, owner, flow):
    flow_draft_save(flow=flow, graph=graph_without_output(), user=owner)
    client.force_login(owner)

    response = post_json(client, url("flow-editor-publish", flow), {"note": "broken"})

    assert response.status_code == 400
    body = response.json()
    assert {"node": None, "edge": None, "message": "it needs an output node"} in body["problems"]
    assert body["report"]["problems"]  # for the canvas to outline the nodes
    flow.refresh_from_db()
    assert flow.published_version.number == 1
    assert list(flow.versions.values_list("number", flat=True)) == [1]


def test_publishing_saves_the_draft_as_the_next_version_with_its_note(client, owner, flow):
    flow_draft_save(flow=flow, graph=with_prompt("Better: {{message}}"), user=owner)
    client.force_login(owner)

    response = post_json(client, url("flow-editor-publish", flow), {"note": "a better prompt"})

    assert response.status_code == 200
    assert response.json() == {"version": 2, "note": "a better prompt"}
    flow.refresh_from_db()
    published = flow.published_version
    assert (published.number, published.kind, published.note) == (
        2,
        VersionKind.VERSION,
        "a better prompt",
    )
    assert published.graph == flow.draft
    assert published.created_by == owner
    actions = list(
        AuditEvent.objects.filter(target_id=str(flow.id)).values_list("action", flat=True)
    )
    assert "flow.version_create" in actions and actions.count("flow.publish") == 2


def test_publishing_needs_publish(client, viewer, make_member, outsider, flow):
    flow_draft_save(flow=flow, graph=with_prompt("Better: {{message}}"), user=None)
    for user, status in [(viewer, 403), (make_member("operator"), 403), (outsider, 404)]:
        client.force_login(user)
        assert post_json(client, url("flow-editor-publish", flow), {}).status_code == status
    flow.refresh_from_db()
    assert flow.published_version.number == 1


def test_publishing_an_unchanged_draft_publishes_the_latest_version_as_it_is(owner, flow):
    """A new flow published from the editor unchanged is version 1, not a copy numbered 2."""
    flow_draft_save(flow=flow, graph=FlowVersion.objects.get(flow=flow, number=1).graph, user=None)
    version = flow_publish_draft(flow=flow, user=owner, note="same again")

    assert version.number == 1
    assert not FlowVersion.objects.filter(flow=flow, number=2).exists()
    flow.refresh_from_db()
    assert flow.published_version == version
    flow_draft_save(flow=flow, graph=with_prompt("Better: {{message}}"), user=None)
    assert flow_publish_draft(flow=flow, user=owner).number == 2


def test_a_published_flow_keeps_serving_its_version_while_the_draft_changes(
    client, owner, live_studio, flow, api_key
):
    client.force_login(owner)
    draft = with_prompt("Draft: {{message}}")
    assert post_json(client, url("flow-editor-draft", flow), {"graph": draft}).status_code == 200
    tested = post_json(client, url("flow-editor-run", flow), {"inputs": {"message": "hi there"}})

    served = httpx.post(
        f"{live_studio}/api/v1/flows/{flow.slug}/runs",
        json={"inputs": {"message": "hi there"}},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=60,
    )

    assert served.status_code == 200, served.text
    assert served.json()["outputs"] == {"text": "hi there"}  # version 1's prompt
    assert wait_for_run(tested.json()["run"]).outputs == {"text": "Draft: hi there"}
    flow.refresh_from_db()
    assert flow.published_version.number == 1


# --- methods and anonymous users ------------------------------------------------------------


def test_wrong_methods_are_refused(client, owner, flow):
    client.force_login(owner)
    posts = [
        "flow-editor-draft",
        "flow-editor-panel",
        "flow-editor-node",
        "flow-editor-run",
        "flow-editor-publish",
    ]
    for name in posts:
        assert client.get(url(name, flow)).status_code == 405, name
    assert client.post(url("flow-editor", flow)).status_code == 405
    run_nodes = reverse(
        "flows:flow-editor-run-nodes", args=[flow.slug, "00000000-0000-0000-0000-000000000000"]
    )
    assert client.post(run_nodes).status_code == 405


def test_other_workspaces_and_anonymous_users_see_nothing(client, outsider, flow):
    editor = url("flow-editor", flow)
    assert client.get(editor).status_code == 302  # to the login page
    assert post_json(client, url("flow-editor-draft", flow), {"graph": {}}).status_code == 302

    client.force_login(outsider)
    assert client.get(editor).status_code == 404
    assert post_json(client, url("flow-editor-publish", flow), {}).status_code == 404


def test_the_service_refuses_what_is_not_a_graph(owner, flow):
    with pytest.raises(GraphError) as refused:
        flow_draft_save(flow=flow, graph=[1, 2, 3], user=owner)
    assert refused.value.errors
    graph = copy.deepcopy(assistant_graph("echo"))
    assert flow_draft_save(flow=flow, graph=graph, user=owner).problems == []
