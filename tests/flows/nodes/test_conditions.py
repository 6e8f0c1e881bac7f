"""Conditions compare forgivingly (text numbers as numbers), never raise at run time, and refuse
bad settings at save with the variable or pattern at fault."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from flows.runtime.conditions import (
    Condition,
    ConditionGroup,
    PatternBudget,
    PatternBudgetSpent,
    evaluate,
    group_variables,
    holds,
)


def check(operator: str, actual, value=None) -> bool:
    return holds(Condition(variable="x", operator=operator, value=value), actual)


def test_text_numbers_compare_as_numbers():
    assert check("greater_than", "10", 9)
    assert not check("greater_than", "10", "11")
    assert check("less_or_equal", 3.5, "3.5")
    assert check("greater_or_equal", " 7 ", 7)
    assert check("less_than", "-2e3", 0)
    assert check("equals", "10.0", 10)
    assert check("not_equals", "10", 11)


def test_a_value_that_cannot_be_compared_is_false_not_an_error():
    assert not check("greater_than", "ten", 9)
    assert not check("less_than", None, 9)
    assert not check("greater_than", {"a": 1}, 0)
    assert not check("less_than", True, 9)  # a boolean is not the number 1 here
    assert not check("greater_than", "nan", 0)
    assert not check("greater_than", "1_000", 0)  # Python's float() would read it as 1000


def test_equals_compares_texts_as_texts_unless_a_side_is_a_number():
    assert not check("equals", "007", "7")
    assert check("equals", "007", 7)
    assert check("equals", "billing", "billing")
    assert not check("equals", "Billing", "billing")
    assert check("equals", True, "yes")
    assert check("equals", "false", False)
    assert check("equals", {"a": [1]}, {"a": [1]})
    assert check("equals", None, "")


def test_text_operators():
    assert check("contains", "please refund me", "refund")
    assert check("not_contains", "hello", "refund")
    assert check("not_contains", None, "refund")
    assert check("starts_with", "billing: card", "billing")
    assert check("ends_with", "report.pdf", ".pdf")
    assert not check("ends_with", "report.pdf", ".PDF")


def test_contains_looks_into_lists_and_object_keys():
    assert check("contains", ["a", "10"], 10)
    assert not check("contains", ["a", "b"], "c")
    assert check("contains", {"error": "x"}, "error")
    assert not check("contains", {"error": "x"}, "x")


def test_emptiness_and_truth():
    for empty in (None, "", "  \n", [], {}):
        assert check("is_empty", empty), empty
        assert not check("is_not_empty", empty), empty
    for full in ("a", 0, False, [0], {"a": None}):
        assert check("is_not_empty", full), full
    for true in (True, "Yes", "true", "1", 1):
        assert check("is_true", true), true
        assert not check("is_false", true), true
    for false in (False, "no", "FALSE", "0", 0):
        assert check("is_false", false), false
    for neither in (None, "maybe", 2, "", [True]):
        assert not check("is_true", neither) and not check("is_false", neither), neither


def test_matches_is_a_regular_expression_search():
    assert check("matches", "order #A-1234 shipped", r"#[A-Z]-\d{4}")
    assert not check("matches", "order shipped", r"#[A-Z]-\d{4}")
    assert check("matches", 42, r"^\d+$")


def test_a_pattern_that_backtracks_for_ever_is_stopped_and_false():
    started = time.monotonic()
    assert not check("matches", "x" * 5_000, r"(x+x+)+y")
    assert time.monotonic() - started < 2


def test_and_or_and_the_variables_of_a_group():
    group = ConditionGroup.model_validate(
        {
            "logic": "and",
            "conditions": [
                {"variable": "classify.label", "operator": "equals", "value": "billing"},
                {"variable": "score", "operator": "greater_than", "value": 0.5},
                {"variable": "classify.label", "operator": "is_not_empty"},
            ],
        }
    )
    assert group_variables(group) == ["classify.label", "score"]
    assert evaluate(group, {"classify.label": "billing", "score": "0.9"})
    assert not evaluate(group, {"classify.label": "billing", "score": "0.1"})
    assert not evaluate(group, {})  # missing values: false, no exception
    either = group.model_copy(update={"logic": "or"})
    assert evaluate(either, {"classify.label": "other", "score": 0.9})
    assert not evaluate(either, {"classify.label": "", "score": 0.1})


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"variable": "x", "operator": "equals"}, "x: the operator 'equals' needs a value"),
        (
            {"variable": "x", "operator": "greater_than", "value": "lots"},
            "x: the operator 'greater_than' needs a number, not 'lots'",
        ),
        ({"variable": "x", "operator": "matches", "value": "(a"}, "'(a' is not a valid regular"),
        ({"variable": "x", "operator": "matches", "value": "a" * 1001}, "longer than 1000"),
        ({"variable": "x", "operator": "resembles", "value": 1}, "operator"),
        ({"variable": "1x", "operator": "is_empty"}, "variable"),
        ({"variable": "a.b.c", "operator": "is_empty"}, "variable"),
    ],
)
def test_bad_conditions_are_refused_naming_what_is_wrong(condition, message):
    with pytest.raises(ValidationError) as caught:
        Condition.model_validate(condition)
    assert message in str(caught.value)


def test_a_group_has_one_to_twenty_conditions():
    condition = {"variable": "x", "operator": "is_empty"}
    with pytest.raises(ValidationError):
        ConditionGroup.model_validate({"conditions": []})
    with pytest.raises(ValidationError):
        ConditionGroup.model_validate({"conditions": [condition] * 21})
    assert ConditionGroup.model_validate({"conditions": [condition] * 20}).logic == "and"


def crawling_group(count: int = 20) -> ConditionGroup:
    crawl = {"variable": "x", "operator": "matches", "value": r"(x+x+)+y"}
    return ConditionGroup.model_validate({"logic": "or", "conditions": [crawl] * count})


def test_the_patterns_of_one_evaluation_share_one_budget():
    # Twenty patterns at 0.1 s each took 2 s; a node's groups share 1 s and then stop it.
    budget = PatternBudget()
    started = time.monotonic()
    with pytest.raises(PatternBudgetSpent, match="took longer than 1 s in all"):
        evaluate(crawling_group(), {"x": "x" * 5_000}, budget)
    assert time.monotonic() - started < 5
    assert budget.spent >= budget.seconds
    # The next group of the same node has nothing left: it stops at once.
    started = time.monotonic()
    with pytest.raises(PatternBudgetSpent):
        evaluate(crawling_group(1), {"x": "x" * 5_000}, budget)
    assert time.monotonic() - started < 0.05


def test_a_pattern_under_the_budget_still_times_out_alone_and_is_false():
    budget = PatternBudget()
    assert not evaluate(crawling_group(1), {"x": "x" * 5_000}, budget)
    assert 0 < budget.spent < budget.seconds
    friendly = ConditionGroup.model_validate(
        {"conditions": [{"variable": "x", "operator": "matches", "value": r"#[A-Z]-\d{4}"}]}
    )
    assert evaluate(friendly, {"x": "order #A-1234"}, budget)
