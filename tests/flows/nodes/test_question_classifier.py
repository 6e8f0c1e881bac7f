"""The question classifier: structured output names the class, a loose answer falls back to the
class it mentions first (else the first class), and the flow goes on along that class's port
only; through the real worker with the echo model and with a remote model's controlled answers.
"""

from __future__ import annotations

import pytest

from flows.models import NodeResult, NodeStatus, RunStatus
from flows.nodes import node_types
from flows.nodes.question_classifier import _label
from flows.schema import GraphError, check_graph
from tests.catalog.remote_server import Reply, text_events
from tests.flows.helpers import logged_events
from tests.flows.nodes.graphs import edge, graph, node, run_graph

CLASSIFIER = node_types()["question_classifier"]
NAMED_NONE = "the first class (the answer named none)"
CLASSES = [
    {"id": "billing", "description": "questions about invoices and payments"},
    {"id": "refund", "description": "asking for money back"},
]


def triage_graph(
    model: str = "echo", classes: list[dict] = CLASSES, inputs: dict | None = None, **settings
) -> dict:
    """input → classify → one reply per class (LLM) → join → output (text, label)."""
    replies = [
        node(f"reply_{c['id']}", "llm", {"model": "echo", "prompt": f"{c['id']}: {{{{message}}}}"})
        for c in classes
    ]
    return graph(
        node("classify", "question_classifier", {"model": model, "classes": classes, **settings}),
        *replies,
        node(
            "join",
            "variable_aggregator",
            {"variables": [f"reply_{c['id']}.text" for c in classes], "type": "text"},
        ),
        edges=[
            edge("input_1.message", "classify.query"),
            *(edge(f"classify.{c['id']}", f"reply_{c['id']}.message") for c in classes),
            edge("join.output", "output_1.text"),
            edge("classify.label", "output_1.label"),
        ],
        inputs=inputs,
        outputs={"text": "text", "label": "text"},
    )


def test_ports_are_the_query_and_one_branch_per_class():
    config = CLASSIFIER.Config.model_validate(
        {"model": "echo", "classes": CLASSES, "instructions": "The customer is {{tier}}."}
    )
    assert CLASSIFIER.input_ports(config) == {"query": "text", "tier": "text"}
    assert CLASSIFIER.output_ports(config) == {"label": "text", "billing": "text", "refund": "text"}
    assert (CLASSIFIER.group, CLASSIFIER.label) == ("Models", "Question classifier")
    assert CLASSIFIER.description


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"classes": CLASSES[:1]}, "classes: List should have at least 2 items"),
        ({"classes": [CLASSES[0], CLASSES[0]]}, "class ids must differ: billing is repeated"),
        ({"classes": [CLASSES[0], {"id": "label"}]}, "'label' is the port of the chosen class"),
        ({"classes": [CLASSES[0], {"id": "money back"}]}, "classes.1.id"),
        ({"route": "fast"}, "name either a model or a route"),
    ],
)
def test_bad_settings_are_refused_naming_the_node(settings, message):
    data = graph(
        node("classify", "question_classifier", {"model": "echo", "classes": CLASSES, **settings}),
        edges=[edge("input_1.message", "classify.query"), edge("classify.label", "output_1.text")],
    )
    with pytest.raises(GraphError) as caught:
        check_graph(data)
    assert any(e.startswith("node 'classify': ") and message in e for e in caught.value.errors), (
        caught.value.errors
    )


def test_a_model_outside_the_catalog_is_refused_at_save(workspace, echo_model):
    with pytest.raises(GraphError) as caught:
        check_graph(triage_graph(model="gpt-nowhere"), workspace)
    assert caught.value.errors == [
        "node 'classify': model 'gpt-nowhere' is not in this workspace's catalog"
    ]
    check_graph(triage_graph(), workspace)


@pytest.mark.parametrize(
    ("answer", "label", "source"),
    [
        ('{"label": "refund"}', "refund", "structured output"),
        ('```json\n{"label": "refund"}\n```', "refund", "structured output"),
        ('"refund"', "refund", "structured output"),
        ('{"label": "sales"}', "billing", NAMED_NONE),
        ("Probably a refund, though it mentions billing.", "refund", "the answer's text"),
        ("It is about billings and refunding", "billing", NAMED_NONE),
        ("", "billing", NAMED_NONE),
    ],
)
def test_the_label_comes_from_the_answer_as_well_as_it_can(answer, label, source):
    assert _label(answer, ["billing", "refund"]) == (label, source)


def test_the_flow_follows_the_chosen_class_only(worker, workspace, owner, echo_model):
    # The echo model answers the query itself: no JSON, but it names a class.
    query = "I want a refund for my order please"
    run = run_graph(
        workspace=workspace, owner=owner, graph=triage_graph(), inputs={"message": query}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"label": "refund", "text": f"refund: {query}"}
    results = {r.node_id: r for r in NodeResult.objects.filter(run=run)}
    classify = results["classify"]
    assert classify.outputs == {"label": "refund", "refund": query}
    assert classify.skip == ["billing"]
    assert classify.details["label_from"] == "the answer's text"
    assert classify.details["model"] == "echo" and classify.queue == "inference"
    assert results["reply_billing"].status == NodeStatus.SKIPPED
    assert results["reply_refund"].status == NodeStatus.SUCCEEDED
    # The classifier's answer is for the studio to read: no tokens of it stream to the user.
    tokens = [e for e in logged_events(run.id) if e["type"] == "token"]
    assert tokens and {e["node"] for e in tokens} == {"reply_refund"}


# --- a remote model's controlled answers, through the worker (``conftest.py``) ----------------


def test_a_structured_answer_picks_the_branch(remote_model, server, workspace, owner, echo_model):
    server.script(Reply(events=text_events('{"label": ', '"billing"}')))
    query = "Where is my invoice from March?"
    settings = {"instructions": "It came by {{input_1.channel}}."}
    fields = {"message": "text", "channel": "text"}
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=triage_graph(model="remote", inputs=fields, **settings),
        inputs={"message": query, "channel": "email"},
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"label": "billing", "text": f"billing: {query}"}
    classify = NodeResult.objects.get(run=run, node_id="classify")
    assert classify.details["label_from"] == "structured output"
    assert classify.details["answer"] == '{"label": "billing"}'
    (received,) = server.requests
    assert received.json["response_format"]["json_schema"]["schema"] == {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["billing", "refund"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    assert received.json["temperature"] == 0.0
    system, user = received.json["messages"]
    assert user == {"role": "user", "content": query}
    assert "- billing: questions about invoices and payments" in system["content"]
    assert "- refund: asking for money back" in system["content"]
    assert system["content"].endswith("It came by email.")
