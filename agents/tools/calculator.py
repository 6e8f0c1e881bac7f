"""The calculator: arithmetic a model asks for, parsed with ``ast`` and walked node by node.

Nothing is evaluated by Python itself (no eval, no exec): only numbers, the arithmetic
operators, parentheses and a short list of functions and constants are understood; anything else
is refused with a message the model can act on. The limits keep one call cheap whatever the
model sends: the expression's length and nesting, the size of an exponent and of every
intermediate result.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from pydantic import Field

from agents.tools import register
from agents.tools.base import Tool, ToolConfig, ToolContext, ToolParams, ToolResult

MAX_CHARS = 500
# Nested operations and calls: a sum of many terms nests as deep as it has terms, so this
# is about what 500 characters can hold; it bounds the walk's recursion, not the work.
MAX_DEPTH = 250
MAX_EXPONENT = 1_000
# No result, final or intermediate, past this magnitude: a float's range, also for integers,
# so that 10**300 * 10**300 is refused instead of growing a huge integer.
MAX_MAGNITUDE = 1e300

Number = int | float


class CalculationError(Exception):
    """The expression cannot be computed; the message is for the model."""


def _checked(value: Number) -> Number:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise CalculationError("the result is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise CalculationError(f"a result is larger than {MAX_MAGNITUDE:g}")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculationError(f"an exponent is larger than {MAX_EXPONENT}")
    if base == 0 and exponent < 0:
        raise CalculationError("zero cannot be raised to a negative power")
    # Checked before computing: 9**999 is small enough as an exponent, not as a result.
    if base not in (0, 1, -1) and exponent > 0 and exponent * math.log10(abs(base)) > 300:
        raise CalculationError(f"a result is larger than {MAX_MAGNITUDE:g}")
    result = base**exponent
    if isinstance(result, complex):
        raise CalculationError("a negative number raised to a fractional power is not real")
    return result


def _divide(op: Callable[[Any, Any], Number]) -> Callable[[Number, Number], Number]:
    def divided(left: Number, right: Number) -> Number:
        if right == 0:
            raise CalculationError("division by zero")
        return op(left, right)

    return divided


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: _divide(operator.truediv),
    ast.FloorDiv: _divide(operator.floordiv),
    ast.Mod: _divide(operator.mod),
    ast.Pow: _power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _log(value: Number, base: Number = math.e) -> float:
    if value <= 0 or base <= 0 or base == 1:
        raise CalculationError("log needs a positive number (and a positive base other than 1)")
    return math.log(value, base)


def _sqrt(value: Number) -> float:
    if value < 0:
        raise CalculationError("the square root of a negative number is not real")
    return math.sqrt(value)


def _round(value: Number, digits: int = 0) -> Number:
    if not isinstance(digits, int) or abs(digits) > 100:
        raise CalculationError("round's digits must be a whole number between -100 and 100")
    return round(value, digits) if digits else round(value)


_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    # name: (function, fewest arguments, most arguments)
    "sqrt": (_sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (min, 2, 20),
    "max": (max, 2, 20),
    "log": (_log, 1, 2),
    "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1),
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_ALLOWED = "numbers, + - * / // % **, parentheses, " + ", ".join(
    [*(f"{name}()" for name in _FUNCTIONS), *_CONSTANTS]
)


def _call(node: ast.Call, depth: int) -> Number:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in _FUNCTIONS or node.keywords:
        raise CalculationError(f"only these functions can be called: {', '.join(_FUNCTIONS)}")
    function, fewest, most = _FUNCTIONS[name]
    if not fewest <= len(node.args) <= most:
        raise CalculationError(f"{name} takes {fewest} to {most} arguments")
    args = [_value(arg, depth + 1) for arg in node.args]
    try:
        return function(*args)
    except (ValueError, OverflowError, TypeError) as exc:
        raise CalculationError(f"{name}: {exc}") from None


def _value(node: ast.AST, depth: int = 0) -> Number:
    if depth > MAX_DEPTH:
        raise CalculationError(f"the expression is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise CalculationError(f"{node.value!r} is not a number")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left, depth + 1), _value(node.right, depth + 1)
        try:
            return _checked(_BINARY[type(node.op)](left, right))
        except OverflowError:
            raise CalculationError(f"a result is larger than {MAX_MAGNITUDE:g}") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand, depth + 1))
    if isinstance(node, ast.Call):
        return _checked(_call(node, depth))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculationError(f"unknown name {node.id!r}; use only {_ALLOWED}")
    raise CalculationError(f"{type(node).__name__} is not allowed; use only {_ALLOWED}")


def calculate(expression: str) -> Number:
    """The value of ``expression``; CalculationError saying why it cannot be computed."""
    if len(expression) > MAX_CHARS:
        raise CalculationError(f"the expression is longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"the expression is not arithmetic ({exc.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        # The parser's own nesting limit (a few hundred parentheses), or a null character.
        raise CalculationError("the expression cannot be read (nested too deeply?)") from None
    try:
        return _value(tree.body)
    except RecursionError:
        raise CalculationError("the expression is nested too deeply") from None


def _shown(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class CalculatorParams(ToolParams):
    expression: str = Field(
        min_length=1,
        max_length=MAX_CHARS,
        description="An arithmetic expression, e.g. (3.5 + 4) * 2 ** 3 or sqrt(2) * pi",
    )


@register
class Calculator(Tool):
    name = "calculator"
    description = (
        "Compute an arithmetic expression exactly. Supports + - * / // % ** and parentheses, "
        "and sqrt, abs, round, min, max, log, sin, cos, pi, e."
    )
    Params = CalculatorParams
    Config = ToolConfig

    async def arun(
        self, ctx: ToolContext, config: ToolConfig, params: CalculatorParams
    ) -> ToolResult:
        try:
            value = calculate(params.expression)
        except CalculationError as exc:
            return ToolResult(
                content=f"Cannot compute {params.expression!r}: {exc}.",
                details={"error": str(exc)},
            )
        shown = _shown(value)
        return ToolResult(
            content=f"{params.expression} = {shown}",
            details={"expression": params.expression, "value": shown},
        )
