"""The parameter extractor: a JSON schema built from the parameters, each value typed on its own
port, and an answer that lacks a required value or is not JSON failing the node with the reason;
through the real worker with the echo model and with a remote model's controlled answers."""

from __future__ import annotations

import pytest

from flows.models import NodeResult, RunStatus
from flows.nodes import node_types
from flows.nodes.parameter_extractor import extracted
from flows.schema import GraphError, check_graph
from tests.catalog.remote_server import Reply, text_events
from tests.flows.helpers import logged_events
from tests.flows.nodes.graphs import edge, graph, node, run_graph

EXTRACTOR = node_types()["parameter_extractor"]
PARAMETERS = [
    {"name": "amount", "type": "number", "description": "the sum asked for"},
    {"name": "currency", "type": "text", "description": "ISO code, like EUR"},
    {"name": "urgent", "type": "boolean", "required": False},
    {"name": "items", "type": "json", "required": False},
]


def parameters(*names: str) -> list:
    config = EXTRACTOR.Config.model_validate({"model": "echo", "parameters": PARAMETERS})
    return [p for p in config.parameters if not names or p.name in names]


def refund_graph(model: str = "echo", inputs: dict | None = None, **settings) -> dict:
    """input (message) → extract → output (amount, currency, all)."""
    config = {"model": model, "parameters": PARAMETERS, **settings}
    return graph(
        node("extract", "parameter_extractor", config),
        edges=[
            edge("input_1.message", "extract.text"),
            edge("extract.amount", "output_1.amount"),
            edge("extract.currency", "output_1.currency"),
            edge("extract.json", "output_1.all"),
        ],
        inputs=inputs,
        outputs={"amount": "number", "currency": "text", "all": "json"},
    )


def test_each_parameter_is_a_typed_port_and_json_holds_them_all():
    config = EXTRACTOR.Config.model_validate(
        {"model": "echo", "parameters": PARAMETERS, "instructions": "Dates are {{date_format}}."}
    )
    assert EXTRACTOR.input_ports(config) == {"text": "text", "date_format": "text"}
    assert EXTRACTOR.output_ports(config) == {
        "amount": "number",
        "currency": "text",
        "urgent": "boolean",
        "items": "json",
        "json": "json",
    }
    assert (EXTRACTOR.group, EXTRACTOR.label) == ("Models", "Parameter extractor")
    assert EXTRACTOR.description


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"parameters": []}, "parameters: List should have at least 1 item"),
        ({"parameters": PARAMETERS[:1] * 2}, "parameter names must differ: amount is repeated"),
        ({"parameters": [{"name": "json"}]}, "'json' is the port of all parameters"),
        ({"parameters": [{"name": "amount", "type": "money"}]}, "parameters.0.type"),
        ({"parameters": [{"name": "the amount"}]}, "parameters.0.name"),
    ],
)
def test_bad_settings_are_refused_naming_the_node(settings, message):
    data = graph(
        node("extract", "parameter_extractor", {"model": "echo", **settings}),
        edges=[edge("input_1.message", "extract.text"), edge("extract.json", "output_1.text")],
        outputs={"text": "json"},
    )
    with pytest.raises(GraphError) as caught:
        check_graph(data)
    assert any(e.startswith("node 'extract': ") and message in e for e in caught.value.errors), (
        caught.value.errors
    )


def test_values_are_typed_and_a_bad_answer_says_why():
    answer = '{"amount": "42.5", "currency": 978, "urgent": "yes", "items": [1], "extra": 1}'
    assert extracted(parameters(), answer) == {
        "amount": 42.5,
        "currency": "978",
        "urgent": True,
        "items": [1],
    }
    fenced = '```json\n{"amount": 3, "currency": "EUR"}\n```'
    assert extracted(parameters(), fenced) == {
        "amount": 3,
        "currency": "EUR",
        "urgent": None,
        "items": None,
    }
    for answer, reason in [
        ('{"currency": "EUR"}', "no value for the required parameter amount in the text"),
        ('{"amount": null}', "required parameters amount, currency in the text"),
        ('{"amount": "lots", "currency": "EUR"}', "'amount' should be a number, the model gave"),
        ('{"amount": 1, "currency": "EUR", "urgent": "maybe"}', "'urgent' should be a boolean"),
        ("[1, 2]", "the model's answer is not a JSON object"),
        ("Sure! The amount is 42.", "the model's answer is not JSON"),
    ]:
        with pytest.raises(ValueError, match=reason):
            extracted(parameters(), answer)


def test_a_flow_gets_the_values_on_their_ports(worker, workspace, owner, echo_model):
    # The echo model answers the text itself: here, the JSON the model would give.
    text = '{"amount": "42.5", "currency": "EUR", "urgent": "no"}'
    run = run_graph(
        workspace=workspace, owner=owner, graph=refund_graph(), inputs={"message": text}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    whole = {"amount": 42.5, "currency": "EUR", "urgent": False, "items": None}
    assert run.outputs == {"amount": 42.5, "currency": "EUR", "all": whole}
    result = NodeResult.objects.get(run=run, node_id="extract")
    assert result.outputs == {**whole, "json": whole}
    assert result.details["model"] == "echo" and result.queue == "inference"
    assert not [e for e in logged_events(run.id) if e["type"] == "token"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Please refund me forty euros", "the model's answer is not JSON"),
        ('{"currency": "EUR"}', "the model found no value for the required parameter amount"),
    ],
)
def test_an_answer_without_the_values_fails_the_run(
    worker, workspace, owner, echo_model, text, reason
):
    run = run_graph(
        workspace=workspace, owner=owner, graph=refund_graph(), inputs={"message": text}
    )

    assert run.status == RunStatus.FAILED
    assert "node 'extract'" in run.error and reason in run.error


# --- a remote model's controlled answers, through the worker (``conftest.py``) ----------------


def test_the_model_is_asked_for_the_parameters_schema(remote_model, server, workspace, owner):
    server.script(Reply(events=text_events('{"amount": 12, ', '"currency": "USD"}')))
    text = "I was charged twelve dollars twice, please give one back."
    settings = {"instructions": "Amounts are in {{input_1.unit}}."}
    fields = {"message": "text", "unit": "text"}
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=refund_graph(model="remote", inputs=fields, **settings),
        inputs={"message": text, "unit": "dollars"},
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    whole = {"amount": 12, "currency": "USD", "urgent": None, "items": None}
    assert run.outputs == {"amount": 12, "currency": "USD", "all": whole}
    (received,) = server.requests
    assert received.json["response_format"]["json_schema"]["schema"] == {
        "type": "object",
        "properties": {
            "amount": {"type": "number", "description": "the sum asked for"},
            "currency": {"type": "string", "description": "ISO code, like EUR"},
            "urgent": {"type": "boolean"},
            "items": {},
        },
        "required": ["amount", "currency"],
        "additionalProperties": False,
    }
    system, user = received.json["messages"]
    assert user == {"role": "user", "content": text}
    assert "- amount (number, required): the sum asked for" in system["content"]
    assert "- urgent (boolean, optional)" in system["content"]
    assert system["content"].endswith("Amounts are in dollars.")
