"""The if/else node takes the branch of the first case that holds (else ``else``), skips the
others, and its settings are checked at save with the node named."""

from __future__ import annotations

import time

import pytest

from flows.models import NodeResult, RunStatus
from flows.nodes import node_types
from flows.runtime.conditions import PatternBudgetSpent
from flows.schema import GraphError, check_graph
from tests.flows.nodes.graphs import edge, graph, node, run_graph

IF_ELSE = node_types()["if_else"]


def config(**data):
    return IF_ELSE.Config.model_validate(data)


ROUTES = config(
    cases=[
        {
            "id": "billing",
            "conditions": [
                {"variable": "classify.label", "operator": "equals", "value": "billing"}
            ],
        },
        {
            "id": "urgent",
            "logic": "or",
            "conditions": [
                {"variable": "priority", "operator": "greater_or_equal", "value": 8},
                {"variable": "classify.label", "operator": "contains", "value": "outage"},
            ],
        },
    ]
)


def test_ports_come_from_the_conditions_and_the_cases():
    assert IF_ELSE.group == "Logic" and IF_ELSE.description
    assert IF_ELSE.input_ports(ROUTES) == {"classify.label": "any", "priority": "any"}
    assert IF_ELSE.output_ports(ROUTES) == {
        "billing": "boolean",
        "urgent": "boolean",
        "else": "boolean",
    }


def test_the_first_case_that_holds_is_taken_and_the_others_skipped():
    both = IF_ELSE.run(ROUTES, {"classify.label": "billing", "priority": "9"}, {})
    assert both.outputs == {"billing": True, "urgent": False, "else": False}
    assert both.skip == ["urgent", "else"]

    second = IF_ELSE.run(ROUTES, {"classify.label": "outage in eu", "priority": "2"}, {})
    assert second.outputs == {"billing": False, "urgent": True, "else": False}
    assert second.skip == ["billing", "else"]


def test_else_is_taken_when_no_case_holds_even_with_values_missing():
    output = IF_ELSE.run(ROUTES, {"classify.label": "sales", "priority": "low"}, {})
    assert output.outputs == {"billing": False, "urgent": False, "else": True}
    assert output.skip == ["billing", "urgent"]
    assert IF_ELSE.run(ROUTES, {}, {}).skip == ["billing", "urgent"]


def router_graph(cases: list[dict]) -> dict:
    """input (label) → if/else → aggregator (joins the two branches again) → output."""
    return graph(
        node("route", "if_else", {"cases": cases}),
        node("join", "variable_aggregator", {"variables": ["yes", "no"], "type": "boolean"}),
        edges=[
            edge("input_1.label", "route.label"),
            edge("route.billing", "join.yes"),
            edge("route.else", "join.no"),
            edge("join.output", "output_1.matched"),
        ],
        inputs={"label": "text"},
        outputs={"matched": "boolean"},
    )


BILLING = [
    {
        "id": "billing",
        "conditions": [{"variable": "label", "operator": "equals", "value": "billing"}],
    }
]


def test_a_graph_with_the_node_is_accepted():
    checked = check_graph(router_graph(BILLING))
    assert checked.nodes["route"].inputs == {"label": "any"}
    assert checked.order.index("route") < checked.order.index("join")


@pytest.mark.parametrize(
    ("cases", "message"),
    [
        ([], "cases: List should have at least 1 item"),
        (
            [{"id": "else", "conditions": BILLING[0]["conditions"]}],
            "'else' is the name of the branch taken when no case holds",
        ),
        (BILLING + BILLING, "more than one case is named billing"),
        ([{"id": "billing", "conditions": []}], "cases.0.conditions"),
        ([{"id": "bill ing", "conditions": BILLING[0]["conditions"]}], "cases.0.id"),
        (
            [{"id": "billing", "conditions": [{"variable": "label", "operator": "equals"}]}],
            "label: the operator 'equals' needs a value",
        ),
    ],
)
def test_bad_cases_are_refused_naming_the_node(cases, message):
    with pytest.raises(GraphError) as caught:
        check_graph(router_graph(cases))
    assert any(e.startswith("node 'route': ") and message in e for e in caught.value.errors), (
        caught.value.errors
    )


def test_a_condition_on_an_upstream_output_needs_no_edge():
    referenced = router_graph(
        [
            {
                "id": "billing",
                "conditions": [
                    {"variable": "input_1.label", "operator": "starts_with", "value": "bill"}
                ],
            }
        ]
    )
    referenced["edges"] = [e for e in referenced["edges"] if e["target"] != "route"]
    checked = check_graph(referenced)
    assert [(link.source, link.implicit) for link in checked.incoming("route")] == [
        ("input_1", True)
    ]


def test_a_condition_on_a_variable_nothing_feeds_is_reported():
    cases = [
        {"id": "billing", "conditions": [{"variable": "topic", "operator": "is_empty"}]},
    ]
    with pytest.raises(GraphError) as caught:
        check_graph(router_graph(cases))
    assert "node 'route': input 'topic' is not connected" in caught.value.errors


@pytest.mark.parametrize(("label", "taken"), [("billing", "billing"), ("sales", "else")])
def test_a_run_takes_the_branch_of_the_case_that_holds(worker, workspace, owner, label, taken):
    run = run_graph(
        workspace=workspace, owner=owner, graph=router_graph(BILLING), inputs={"label": label}
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    result = NodeResult.objects.get(run=run, node_id="route")
    assert result.outputs == {"billing": taken == "billing", "else": taken == "else"}
    assert result.skip == [{"billing": "else", "else": "billing"}[taken]]


def crawling_cases() -> list[dict]:
    """Twenty cases of twenty ``matches`` conditions, each a pattern that backtracks for ever
    on a run of x's: at 0.1 s per pattern, one if/else held a worker thread for 40 s or more."""
    crawl = {"variable": "label", "operator": "matches", "value": r"(x+x+)+y"}
    cases = [{"id": "billing", "logic": "or", "conditions": [crawl] * 20}]
    return cases + [
        {"id": f"case_{n}", "logic": "or", "conditions": [crawl] * 20} for n in range(19)
    ]


def test_four_hundred_crawling_patterns_stop_the_node_at_its_budget():
    started = time.monotonic()
    with pytest.raises(PatternBudgetSpent) as caught:
        IF_ELSE.run(config(cases=crawling_cases()), {"label": "x" * 5_000}, {})
    assert time.monotonic() - started < 10  # the budget is 1 s; before: 40 s and more
    assert str(caught.value) == "the regular expressions took longer than 1 s in all"


def test_a_run_whose_patterns_crawl_fails_naming_the_budget(worker, workspace, owner):
    started = time.monotonic()
    run = run_graph(
        workspace=workspace,
        owner=owner,
        graph=router_graph(crawling_cases()),
        inputs={"label": "x" * 5_000},
    )

    assert run.status == RunStatus.FAILED
    assert run.error == "node 'route' failed: the regular expressions took longer than 1 s in all"
    assert time.monotonic() - started < 20
