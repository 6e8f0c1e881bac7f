"""The loop node: runs the nodes inside it round after round, carrying variables from one round
to the next, until its exit condition holds or it reaches its maximum number of rounds.

The nodes inside read ``round`` and the variables from the loop's inner ports
(``{{loop_1.draft}}``); after each round the loop takes each variable's new value from the node
output named in ``updates`` (a skipped node leaves it as it was), then tests the exit condition.
The exit checks of all the rounds share one time budget for their regular expressions; once it
is spent, the exit condition counts as not holding (like a pattern that takes too long), the
loop runs on to its maximum, and its state says why.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType
from flows.nodes.iteration import REFERENCE, bare_reference
from flows.runtime.conditions import (
    ConditionGroup,
    PatternBudget,
    evaluate,
    group_variables,
    to_bool,
    to_number,
)
from flows.runtime.templating import VARIABLE, render, variables

MAX_ROUNDS = 100


class LoopVariable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", title="Name")
    type: PortType = Field(default="text", title="Type")
    initial: str = Field(
        default="", max_length=10_000, title="Initial value", description="Text or {{variables}}."
    )


class LoopConfig(NodeConfig):
    variables: list[LoopVariable] = Field(min_length=1, max_length=20, title="Loop variables")
    updates: dict[str, str] = Field(
        default_factory=dict,
        title="Updates",
        description="For each variable, the output of a node inside that gives its next value "
        "({{node_id.port}}).",
    )
    exit: ConditionGroup | None = Field(
        default=None,
        title="Exit when",
        description="Tested after each round on the variables and round.",
    )
    max_rounds: int = Field(default=10, ge=1, le=MAX_ROUNDS, title="Maximum rounds")

    @field_validator("updates", mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: bare_reference(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LoopConfig:
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names) or "round" in names:
            raise ValueError("variable names must be distinct and not 'round'")
        for name, reference in self.updates.items():
            if name not in names:
                raise ValueError(f"updates: {name!r} is not a loop variable")
            if not _is_reference(reference):
                raise ValueError(f"updates: {name!r} must be a {{{{node_id.port}}}} reference")
        if self.exit is not None:
            unknown = [v for v in group_variables(self.exit) if v not in [*names, "round"]]
            if unknown:
                raise ValueError(f"exit: {unknown} are not loop variables (or round)")
        return self


def _is_reference(value: str) -> bool:
    return re.fullmatch(REFERENCE, value) is not None


def _typed(value: Any, type_: str) -> Any:
    if type_ == "number":
        number = to_number(value)
        return value if number is None else number
    if type_ == "boolean":
        flag = to_bool(value)
        return value if flag is None else flag
    return value


def _exit_holds(group: ConditionGroup, state: dict, index: int) -> bool:
    """Whether the exit condition holds after round ``index``. The rounds share one budget
    for their regular expressions; once it is spent this raises ``PatternBudgetSpent`` (a
    ValueError), which fails the loop under its own policy."""
    budget = PatternBudget(spent=state.get("pattern_s", 0.0))
    try:
        return evaluate(group, {**state["values"], "round": index}, budget)
    finally:
        if budget.spent:
            state["pattern_s"] = budget.spent


@register
class LoopNode(NodeType):
    type = "loop"
    label = "Loop"
    group = "Logic"
    description = "Repeats the nodes inside it until a condition holds, up to a maximum."
    Config = LoopConfig
    container = True

    def input_ports(self, config: LoopConfig) -> dict[str, PortType]:
        names = [n for v in config.variables for n in variables(v.initial)]
        return dict.fromkeys(names, "any")

    def inner_ports(self, config: LoopConfig) -> dict[str, PortType]:
        return {"round": "number", **{v.name: v.type for v in config.variables}}

    def output_ports(self, config: LoopConfig) -> dict[str, PortType]:
        return {**{v.name: v.type for v in config.variables}, "rounds": "number"}

    def collects(self, config: LoopConfig) -> list[str]:
        return list(dict.fromkeys(config.updates.values()))

    def begin(self, config: LoopConfig, inputs: dict[str, Any]) -> dict:
        values = {}
        for variable in config.variables:
            whole = VARIABLE.fullmatch(variable.initial.strip())
            raw = inputs.get(whole.group(1)) if whole else render(variable.initial, inputs)
            values[variable.name] = _typed(raw, variable.type)
        return {"round": 0, "values": values, "done": False}

    def open_instances(self, config: LoopConfig, state: dict, inputs: dict) -> list:
        if state["done"]:
            return []
        return [(state["round"], {"round": state["round"], **state["values"]})]

    def active(self, config: LoopConfig, state: dict) -> list[int]:
        return [] if state["done"] else [state["round"]]

    def instance_done(self, config: LoopConfig, state: dict, index: int, collected: dict):
        types = {v.name: v.type for v in config.variables}
        for name, reference in config.updates.items():
            if collected.get(reference) is not None:
                state["values"][name] = _typed(collected[reference], types[name])
        stop = config.exit is not None and _exit_holds(config.exit, state, index)
        if stop or index + 1 >= config.max_rounds:
            state["done"] = True
            state["rounds"] = index + 1
        else:
            state["round"] = index + 1
        return state

    def finished(self, config: LoopConfig, state: dict) -> NodeOutput | None:
        if not state["done"]:
            return None
        return NodeOutput(outputs={**state["values"], "rounds": state["rounds"]})
