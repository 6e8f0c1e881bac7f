"""The variable assigner builds typed variables from templates; a value that does not convert to
its type fails the node with the variable named."""

from __future__ import annotations

import pytest

from flows.models import NodeResult, RunStatus
from flows.nodes import node_types
from flows.schema import GraphError, check_graph
from tests.flows.nodes.graphs import edge, graph, node, run_graph

ASSIGNER = node_types()["variable_assigner"]


def config(*variables: dict):
    return ASSIGNER.Config.model_validate({"variables": list(variables)})


def assign(type_: str, value: str, **inputs):
    assigned = config({"name": "v", "type": type_, "value": value})
    return ASSIGNER.run(assigned, inputs, {}).outputs["v"]


def test_ports_are_the_template_variables_and_one_output_per_variable():
    assigned = config(
        {"name": "total", "type": "number", "value": "{{price.value}}"},
        {"name": "label", "value": "{{ name }}: {{price.value}} {{currency}}"},
    )
    assert ASSIGNER.group == "Transform" and ASSIGNER.description
    assert ASSIGNER.input_ports(assigned) == {
        "price.value": "any",
        "name": "any",
        "currency": "any",
    }
    assert ASSIGNER.output_ports(assigned) == {"total": "number", "label": "text"}


def test_values_are_converted_to_their_type():
    assert assign("number", "{{price.value}}", **{"price.value": "12.50"}) == 12.5
    assert assign("number", "{{ n }}0", n=4) == 40
    assert assign("number", "{{ n }}", n=7) == 7
    assert assign("boolean", "{{ answer }}", answer="Yes") is True
    assert assign("boolean", "{{ answer }}", answer=0) is False
    assert assign("json", '{"tags": [{{ a }}, {{ b }}]}', a=1, b=2) == {"tags": [1, 2]}
    assert assign("text", "{{ a }} and {{ b }}", a="tea", b=None) == "tea and "


def test_a_single_variable_passes_its_value_on_as_it_is():
    order = {"items": [{"sku": "A1"}], "paid": True}
    assert assign("json", "{{ order.data }}", **{"order.data": order}) == order
    # As text, an object is its JSON.
    assert assign("text", "{{ order.data }}", **{"order.data": order}) == (
        '{"items": [{"sku": "A1"}], "paid": true}'
    )
    assert assign("boolean", "{{ flag }}", flag=True) is True


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        ("number", "twelve", "variable 'v': 'twelve' is not a number"),
        ("number", "", "variable 'v': '' is not a number"),
        ("boolean", "maybe", "variable 'v': 'maybe' is not true/false, yes/no or 1/0"),
        ("json", "{'a': 1}", "variable 'v': not valid JSON (Expecting property name"),
    ],
)
def test_a_value_that_does_not_convert_fails_naming_the_variable(type_, value, message):
    with pytest.raises(ValueError) as caught:
        assign(type_, "{{ x }}", x=value)
    assert str(caught.value).startswith(message)


def assigner_graph(*variables: dict) -> dict:
    return graph(
        node("assign", "variable_assigner", {"variables": list(variables)}),
        edges=[
            edge("input_1.price", "assign.price"),
            edge("assign.total", "output_1.total"),
            edge("assign.label", "output_1.label"),
        ],
        inputs={"price": "text", "quantity": "number"},
        outputs={"total": "number", "label": "text"},
    )


TOTAL = {"name": "total", "type": "number", "value": "{{price}}"}
LABEL = {"name": "label", "value": "{{ input_1.quantity }} at {{price}}"}


def test_a_graph_with_the_node_is_accepted():
    checked = check_graph(assigner_graph(TOTAL, LABEL))
    assert checked.nodes["assign"].outputs == {"total": "number", "label": "text"}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ([TOTAL, TOTAL | {"type": "text"}], "more than one variable is named total"),
        ([TOTAL | {"type": "date"}, LABEL], "variables.0.type: Input should be"),
        ([TOTAL | {"name": "sub total"}, LABEL], "variables.0.name"),
        ([TOTAL, LABEL | {"value": "x" * 100_001}], "variables.1.value"),
        ([], "variables: List should have at least 1 item"),
    ],
)
def test_bad_variables_are_refused_naming_the_node(variables, message):
    with pytest.raises(GraphError) as caught:
        check_graph(assigner_graph(*variables))
    assert any(e.startswith("node 'assign': ") and message in e for e in caught.value.errors), (
        caught.value.errors
    )


def test_a_run_gives_typed_variables(worker, workspace, owner):
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=assigner_graph(TOTAL, LABEL),
        inputs={"price": " 4.25 ", "quantity": 3},
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"total": 4.25, "label": "3 at  4.25 "}


def test_a_run_fails_naming_the_variable_that_does_not_convert(worker, workspace, owner):
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=assigner_graph(TOTAL, LABEL),
        inputs={"price": "ask us", "quantity": 3},
    )

    assert run.status == RunStatus.FAILED
    assert "variable 'total': 'ask us' is not a number" in run.error
    assigned = NodeResult.objects.get(run=run, node_id="assign")
    assert assigned.status == "failed"
    assert "variable 'total'" in assigned.error
