"""The editor's variable pickers offer ``{{conversation.<name>}}`` for every name a
conversation-scope variable assigner of the graph writes, said to be kept between turns, to
every node (an earlier turn may have written it), and never a run-scope assigner's names."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from flows.demo import assistant_graph
from flows.editor.node_panel import KEPT, conversation_references


def _assigner(node_id: str, scope: str, *names: str, type_: str = "text") -> dict:
    variables = [{"name": name, "type": type_, "value": "{{message}}"} for name in names]
    return {
        "id": node_id,
        "type": "variable_assigner",
        "config": {"variables": variables, "scope": scope},
    }


def _with_assigners(*assigners: dict) -> dict:
    """The assistant flow with ``assigners`` after its model's answer."""
    graph = assistant_graph(model="echo")
    for assigner in assigners:
        graph["nodes"].append(assigner)
        graph["edges"].append(
            {
                "id": f"to-{assigner['id']}",
                "source": "llm_1",
                "source_port": "text",
                "target": assigner["id"],
                "target_port": "_trigger",
            }
        )
    return graph


def test_the_choices_are_the_names_conversation_scope_assigners_write():
    graph = _with_assigners(
        _assigner("keep", "conversation", "name", "topic"),
        _assigner("count", "conversation", "turns", "name", type_="number"),
        _assigner("local", "run", "scratch"),
    )

    choices = conversation_references(graph)

    # In graph order, each name once (its first writer's type), a run-scope name never.
    assert [(r.variable, r.type, r.source, r.kept) for r in choices] == [
        ("{{conversation.name}}", "text", KEPT, True),
        ("{{conversation.topic}}", "text", KEPT, True),
        ("{{conversation.turns}}", "number", KEPT, True),
    ]
    assert not any(r.wire for r in choices)  # read from the run, never wired by an edge


def test_a_half_written_or_shadowed_graph_offers_what_it_can():
    broken = _with_assigners(_assigner("keep", "conversation", "name", "bad-name"))
    broken["nodes"].append({"id": "odd", "type": "variable_assigner", "config": "not an object"})
    assert [r.text for r in conversation_references(broken)] == ["conversation.name"]
    # A node named ``conversation``: {{conversation.x}} reads its outputs instead.
    shadowed = _with_assigners(_assigner("keep", "conversation", "name"))
    shadowed["nodes"].append({"id": "conversation", "type": "template", "config": {}})
    assert conversation_references(shadowed) == []


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model)


def _panel(client, flow, graph: dict, node: str):
    address = reverse("flows:flow-editor-panel", args=[flow.slug])
    return client.post(address, {"node": node, "graph": json.dumps(graph)})


def test_every_nodes_picker_offers_the_conversation_variables(client, owner, flow):
    client.force_login(owner)
    graph = _with_assigners(
        _assigner("keep", "conversation", "name"), _assigner("local", "run", "scratch")
    )

    # The model runs before the assigner: it reads what an earlier turn kept.
    before = _panel(client, flow, graph, "llm_1")

    assert before.status_code == 200
    assertContains(before, 'data-insert="{{conversation.name}}"')
    assertContains(before, "text, kept between turns")
    assertNotContains(before, "conversation.scratch")
    # A picker that puts a bare reference (an if/else condition's variable) offers it too.
    condition = {"variable": "llm_1.text", "operator": "equals", "value": "yes"}
    graph["nodes"].append(
        {
            "id": "route",
            "type": "if_else",
            "config": {"cases": [{"id": "yes", "conditions": [condition]}]},
        }
    )
    route = _panel(client, flow, graph, "route")
    assertContains(route, 'data-mode="reference"')
    assertContains(route, 'data-insert="conversation.name"')


def test_without_a_conversation_assigner_nothing_is_offered(client, owner, flow):
    client.force_login(owner)

    response = _panel(client, flow, assistant_graph(model="echo"), "llm_1")

    assert response.status_code == 200
    assertNotContains(response, 'data-insert="{{conversation.')
    assertNotContains(response, "kept between turns")
