"""The graph check the editor's toolbar, node badges and settings panel all show: a connection
whose port an edit removed is kept and named with its edge, a node connected to nothing is
listed without blocking a run, and the variable picker writes the short {{name}} where an edge
already carries the output."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains

from flows.demo import assistant_graph
from flows.schema import GraphError, check_graph, graph_report

STALE = (
    "has no input port 'message': its settings no longer use {{message}}; the connection "
    "from input_1.message is kept until you remove it or use the variable again"
)


def without_message() -> dict:
    """The assistant flow after its prompt stopped using {{message}}, its edge still drawn."""
    graph = assistant_graph(model="echo")
    graph["nodes"][1]["config"]["prompt"] = "Say hello"
    return graph


def test_an_edge_into_a_port_the_settings_removed_is_a_problem_with_its_edge():
    graph = without_message()
    edge = next(e for e in graph["edges"] if e["target"] == "llm_1")["id"]

    problems = graph_report(graph).as_dict()["problems"]

    assert problems == [{"node": "llm_1", "edge": edge, "message": STALE}]
    with pytest.raises(GraphError) as caught:
        check_graph(graph)  # blocking, as an edge into no port always was
    assert caught.value.errors == [f"node 'llm_1': {STALE}"]


def test_a_node_connected_to_nothing_is_listed_but_does_not_block():
    graph = assistant_graph(model="echo")
    graph["nodes"].append(
        {"id": "llm_2", "type": "llm", "config": {"model": "echo", "prompt": "Hi"}}
    )

    problems = graph_report(graph).as_dict()["problems"]

    assert problems == [
        {
            "node": "llm_2",
            "edge": None,
            "message": "is connected to nothing: connect it to the flow or delete it",
            "warning": True,
        }
    ]
    assert "llm_2" in check_graph(graph).nodes


def test_nodes_joined_only_by_a_kept_edge_are_not_called_unconnected():
    problems = graph_report(without_message()).problems
    assert [p.node for p in problems] == ["llm_1"]


@pytest.fixture
def flow(make_flow, echo_model):
    return make_flow(echo_model)


def picker_of(client, flow, graph: dict):
    address = reverse("flows:flow-editor-panel", args=[flow.slug])
    return client.post(address, {"node": "llm_1", "graph": json.dumps(graph)})


def test_the_picker_writes_short_names_and_the_long_form_where_a_name_is_taken(client, owner, flow):
    client.force_login(owner)
    graph = assistant_graph(model="echo")
    graph["edges"] = [
        {
            "id": "e1",
            "source": "input_1",
            "source_port": "message",
            "target": "llm_1",
            "target_port": "question",
        },
        *[e for e in graph["edges"] if e["target"] != "llm_1"],
    ]
    graph["nodes"][1]["config"]["prompt"] = "{{question}}"

    wired = picker_of(client, flow, graph)

    # An edge carries input_1.message into the port question: the picker writes {{question}}.
    assertContains(wired, 'data-insert="{{question}}" title=')
    assertContains(wired, "Write {{name}} to use an input; {{node_id.name}} also works.")

    # Read through a reference, no edge: the short name, with the edge the canvas draws.
    graph["edges"] = [e for e in graph["edges"] if e["target"] != "llm_1"]
    graph["nodes"][1]["config"]["prompt"] = "{{input_1.message}}"
    referenced = picker_of(client, flow, graph)
    assertContains(
        referenced,
        'data-insert="{{message}}" data-wire="input_1.message" data-wire-port="message"',
    )

    # The name message already carries another output: the long form, which wires itself.
    graph["nodes"].append(
        {"id": "llm_0", "type": "llm", "config": {"model": "echo", "prompt": "Hi"}}
    )
    graph["edges"].append(
        {
            "id": "e9",
            "source": "llm_0",
            "source_port": "text",
            "target": "llm_1",
            "target_port": "message",
        }
    )
    taken = picker_of(client, flow, graph)
    assertContains(taken, 'data-insert="{{input_1.message}}" title=')
    assertContains(taken, 'data-insert="{{message}}" title=')  # llm_0.text, by its edge


def test_the_panel_lists_the_kept_edge_as_the_toolbar_does(client, owner, flow):
    client.force_login(owner)
    response = picker_of(client, flow, without_message())
    assertContains(response, "Problems of this node in the flow")
    assertContains(response, "the connection from input_1.message is kept until you remove it")
