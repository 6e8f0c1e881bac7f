"""Graphs are refused at save time with a message that names the node at fault."""

from __future__ import annotations

import copy

import pytest

from flows.demo import assistant_graph
from flows.schema import GraphError, check_graph
from flows.services import flow_create, flow_version_save


def errors_of(graph, workspace=None) -> list[str]:
    with pytest.raises(GraphError) as caught:
        check_graph(graph, workspace)
    return caught.value.errors


def test_the_demo_graph_is_valid_and_ordered():
    graph = check_graph(assistant_graph())
    assert graph.order == ["input_1", "llm_1", "output_1"]
    assert graph.nodes["llm_1"].inputs == {"message": "text"}


def test_unknown_node_type_is_named():
    graph = assistant_graph()
    graph["nodes"][1]["type"] = "telepathy"
    assert "node 'llm_1': unknown node type 'telepathy'" in errors_of(graph)


def test_dangling_edge_names_the_missing_node():
    graph = assistant_graph()
    graph["edges"][1]["target"] = "output_9"
    errors = errors_of(graph)
    assert "edge e2: node 'output_9' does not exist (dangling edge)" in errors
    assert "node 'output_1': input 'text' is not connected" in errors


def test_cycle_is_refused_with_the_nodes_in_it():
    graph = assistant_graph()
    graph["nodes"].append(copy.deepcopy(graph["nodes"][1]) | {"id": "llm_2"})
    graph["nodes"][1]["config"]["prompt"] = "{{message}} {{feedback}}"
    graph["edges"] += [
        {"source": "llm_1", "source_port": "text", "target": "llm_2", "target_port": "message"},
        {"source": "llm_2", "source_port": "text", "target": "llm_1", "target_port": "feedback"},
    ]
    errors = errors_of(graph)
    assert len(errors) == 1
    assert "is part of a cycle" in errors[0]
    assert "llm_1" in errors[0] and "llm_2" in errors[0]


def test_type_mismatch_names_both_ends():
    graph = assistant_graph()
    graph["nodes"][0]["config"]["fields"][0]["type"] = "number"
    (error,) = errors_of(graph)
    assert error == (
        "node 'llm_1': input 'message' expects text but 'input_1'.message gives number "
        "(type mismatch)"
    )


def test_bad_config_is_named_with_its_field():
    graph = assistant_graph()
    graph["nodes"][1]["config"]["temperature"] = 9
    (error,) = errors_of(graph)
    assert error.startswith("node 'llm_1': temperature:")


def test_unknown_port_and_missing_output_node():
    graph = assistant_graph()
    graph["edges"][0]["source_port"] = "nope"
    del graph["nodes"][2]
    errors = errors_of(graph)
    assert "node 'input_1': has no output port 'nope'" in errors
    assert "graph: it needs an output node" in errors


def test_not_a_graph_at_all():
    assert errors_of({"nodes": "lots"})[0].startswith("graph: nodes:")
    assert errors_of([1, 2])[0].startswith("graph: ")


@pytest.mark.django_db
def test_save_refuses_a_model_outside_the_catalog_and_keeps_the_old_version(
    workspace, owner, echo_model
):
    flow = flow_create(
        workspace=workspace, slug="a", name="A", graph=assistant_graph(model="echo"), user=owner
    )
    with pytest.raises(GraphError) as caught:
        flow_version_save(flow=flow, graph=assistant_graph(model="gpt-17"), user=owner)
    assert caught.value.errors == [
        "node 'llm_1': model 'gpt-17' is not in this workspace's catalog"
    ]
    assert list(flow.versions.values_list("number", flat=True)) == [1]
    flow_version_save(flow=flow, graph=assistant_graph(model="echo", max_tokens=5), user=owner)
    assert list(flow.versions.values_list("number", flat=True)) == [2, 1]


def test_references_are_wired_and_checked():
    graph = assistant_graph()
    graph["nodes"][1]["config"]["prompt"] = (
        "{{input_1.message}} and {{ghost.text}} {{input_1.nope}}"
    )
    graph["edges"] = [e for e in graph["edges"] if e["target"] != "llm_1"]
    assert errors_of(graph) == [
        "node 'llm_1': {{ghost.text}} refers to a node 'ghost' that does not exist",
        "node 'llm_1': {{input_1.nope}}: node 'input_1' has no output 'nope'",
    ]
    graph["nodes"][1]["config"]["prompt"] = "Answer {{input_1.message}}"
    checked = check_graph(graph)  # no edge needed: the reference is an implicit one
    (link,) = checked.incoming("llm_1")
    assert (link.source, link.source_port, link.target_port, link.implicit) == (
        "input_1",
        "message",
        "input_1.message",
        True,
    )


def test_the_graph_report_gives_ports_and_problems_without_raising():
    from flows.schema import graph_report

    graph = assistant_graph()
    graph["nodes"][1]["config"]["prompt"] = "{{message}} {{topic}}"
    report = graph_report(graph).as_dict()
    assert report["ports"]["llm_1"]["inputs"] == {"message": "text", "topic": "text"}
    assert report["problems"] == [
        {"node": "llm_1", "edge": None, "message": "input 'topic' is not connected"}
    ]
    assert graph_report({"nodes": "nope"}).as_dict()["problems"][0]["node"] is None


def test_size_limits_are_refused():
    graph = assistant_graph()
    graph["nodes"][1]["config"]["system"] = "x" * 1_100_000
    (error,) = errors_of(graph)
    assert error.startswith("graph: the graph is 1,1") and error.endswith("the limit is 1,000,000")


def test_policy_defaults_must_name_outputs_and_the_error_branch_adds_a_port():
    graph = assistant_graph()
    graph["nodes"][1]["policy"] = {"on_error": "default", "default": {"answer": "?"}}
    assert errors_of(graph) == [
        "node 'llm_1': the default names outputs it does not have: ['answer']"
    ]
    graph["nodes"][1]["policy"] = {"on_error": "branch"}
    assert check_graph(graph).nodes["llm_1"].outputs == {"text": "text", "error": "text"}
