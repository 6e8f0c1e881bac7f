"""The variable aggregator joins branches: it passes on the first listed input that arrived."""

from __future__ import annotations

import pytest

from flows.models import NodeResult, RunStatus
from flows.nodes import node_types
from flows.schema import GraphError, check_graph
from tests.flows.nodes.graphs import edge, graph, node, run_graph

AGGREGATOR = node_types()["variable_aggregator"]


def config(**data):
    return AGGREGATOR.Config.model_validate(data)


def test_it_merges_and_its_ports_have_the_configured_type():
    joined = config(variables=["draft.text", "fallback.text"], type="json")
    assert AGGREGATOR.merges is True
    assert AGGREGATOR.group == "Logic" and AGGREGATOR.description
    assert AGGREGATOR.input_ports(joined) == {"draft.text": "json", "fallback.text": "json"}
    assert AGGREGATOR.output_ports(joined) == {"output": "json"}
    assert AGGREGATOR.output_ports(config(variables=["a", "b"])) == {"output": "text"}


def test_the_first_listed_input_that_arrived_is_passed_on():
    joined = config(variables=["a.text", "b.text", "c.text"])
    # Inputs of skipped branches are absent; the listed order decides, not the arrival order.
    assert AGGREGATOR.run(joined, {"c.text": "C", "b.text": "B"}, {}).outputs == {"output": "B"}
    assert AGGREGATOR.run(joined, {"c.text": "C"}, {}).outputs == {"output": "C"}
    # An input that arrived empty still arrived.
    assert AGGREGATOR.run(joined, {"a.text": "", "b.text": "B"}, {}).outputs == {"output": ""}
    assert AGGREGATOR.run(joined, {}, {}).outputs == {"output": None}


def branches_graph(variables: list[str]) -> dict:
    """input → two templates (the branches) → aggregator → output."""
    return graph(
        node("formal", "template", {"template": "Dear {{ message }}"}),
        node("casual", "template", {"template": "Hey {{ message }}"}),
        node("join", "variable_aggregator", {"variables": variables, "type": "text"}),
        edges=[
            edge("input_1.message", "formal.message"),
            edge("input_1.message", "casual.message"),
            edge("formal.text", "join.formal"),
            edge("casual.text", "join.casual"),
            edge("join.output", "output_1.text"),
        ],
    )


def test_a_graph_with_the_node_is_accepted():
    checked = check_graph(branches_graph(["formal", "casual"]))
    assert checked.nodes["join"].inputs == {"formal": "text", "casual": "text"}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (["formal"], "variables: List should have at least 2 items"),
        (["formal", "casual", "formal"], "listed more than once: formal"),
        (["formal", "casual", "two words"], "'two words' is not a variable or a node_id.port"),
        ([f"v{i}" for i in range(21)], "variables: List should have at most 20 items"),
    ],
)
def test_bad_variables_are_refused_naming_the_node(variables, message):
    with pytest.raises(GraphError) as caught:
        check_graph(branches_graph(variables))
    assert any(e.startswith("node 'join': ") and message in e for e in caught.value.errors), (
        caught.value.errors
    )


def test_a_run_passes_on_the_preferred_branch(worker, workspace, owner):
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=branches_graph(["casual", "formal"]),
        inputs={"message": "Ada"},
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"text": "Hey Ada"}
    joined = NodeResult.objects.get(run=run, node_id="join")
    assert joined.outputs == {"output": "Hey Ada"}
