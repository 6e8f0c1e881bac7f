"""The calculator tool: right answers, and a readable refusal for everything that is not
arithmetic or would cost too much (never an exception, never Python's own eval)."""

from __future__ import annotations

import math

import pytest
from asgiref.sync import async_to_sync

from agents.tools import tools
from agents.tools.base import ToolContext, ToolResult

CALCULATOR = tools()["calculator"]


async def _no_engine(_):  # the calculator uses no model
    raise AssertionError


def calculate(expression: str) -> ToolResult:
    params = CALCULATOR.arguments({"expression": expression})
    if isinstance(params, ToolResult):
        return params
    ctx = ToolContext(workspace_id=1, user_id=None, engine_for=_no_engine)
    return async_to_sync(CALCULATOR.arun)(ctx, CALCULATOR.Config(), params)


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 / 4", "2.5"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2 ** 10", "1024"),
        ("2 ** -1", "0.5"),
        ("-(+3)", "-3"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(2.567, 2)", "2.57"),
        ("max(1, 5, 3) - min(4, 2)", "3"),
        ("log(1000, 10)", repr(math.log(1000, 10))),
        ("sin(0) + cos(0)", "1"),
        ("pi", repr(math.pi)),
        ("e", repr(math.e)),
        ("1e3 * 2", "2000"),
        ("+".join(["1"] * 250), "250"),  # a long sum is fine
    ],
)
def test_arithmetic_is_computed(expression, value):
    result = calculate(expression)
    assert result.details["value"] == value
    assert result.content == f"{expression} = {value}"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('id')", "only these functions can be called"),
        ("().__class__.__bases__", "Attribute is not allowed"),
        ("open('/etc/passwd')", "only these functions can be called"),
        ("x + 1", "unknown name 'x'"),
        ("lambda: 1", "Lambda is not allowed"),
        ("[x for x in (1, 2)]", "ListComp is not allowed"),
        ("(y := 3)", "NamedExpr is not allowed"),
        ("'a' * 3", "'a' is not a number"),
        ("True + 1", "True is not a number"),
        ("sqrt(x=4)", "only these functions can be called"),
        ("9**9**9", "an exponent is larger than 1000"),
        ("10**10000", "an exponent is larger than 1000"),
        ("9**999", "a result is larger than 1e+300"),
        ("10**300 * 10**300", "a result is larger than 1e+300"),
        ("1e308 * 10", "a result is larger than 1e+300"),
        ("1 / 0", "division by zero"),
        ("1 // 0.0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0 ** -1", "zero cannot be raised to a negative power"),
        ("(-8) ** (1/3)", "not real"),
        ("sqrt(-1)", "not real"),
        ("log(0)", "log needs a positive number"),
        ("min(1)", "min takes 2 to 20 arguments"),
        ("round(1, 10**3)", "round's digits"),
        ("1 +", "not arithmetic"),
        ("-" * 499 + "1", "nested more than 250 levels"),
        ("(" * 201 + "1" + ")" * 201, "too many nested parentheses"),
    ],
)
def test_anything_else_is_refused_with_a_reason(expression, reason):
    result = calculate(expression)
    assert result.content.startswith(f"Cannot compute {expression!r}")
    assert reason in result.content


@pytest.mark.parametrize("expression", ["(" * 1000 + "1" + ")" * 1000, "1+" * 400 + "1", "1" * 501])
def test_an_expression_over_500_characters_is_refused_before_it_is_parsed(expression):
    result = calculate(expression)
    assert "was not made" in result.content and "at most 500 characters" in result.content
