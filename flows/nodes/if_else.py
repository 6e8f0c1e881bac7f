"""The if/else node: the first case whose conditions hold takes its branch, else ``else``.

Each case is an output port (and ``else`` one more); the port taken carries ``true`` and the
others are skipped, so the nodes they feed do not run. The ``matches`` conditions of all the
cases share one time budget (``PATTERN_BUDGET_S``): past it, the node fails saying so.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType
from flows.nodes.fields import repeated
from flows.runtime.conditions import ConditionGroup, PatternBudget, evaluate, group_variables

ELSE = "else"


class Case(ConditionGroup):
    id: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        title="Case",
        description="The name of the case's branch (its output port).",
    )


class IfElseConfig(NodeConfig):
    cases: list[Case] = Field(
        min_length=1,
        max_length=20,
        title="Cases",
        description="Tried in order: the first that holds takes its branch; none: else.",
    )

    @field_validator("cases")
    @classmethod
    def _distinct_ids(cls, cases: list[Case]) -> list[Case]:
        ids = [case.id for case in cases]
        if ELSE in ids:
            raise ValueError("'else' is the name of the branch taken when no case holds")
        duplicates = repeated(ids)
        if duplicates:
            raise ValueError(f"more than one case is named {', '.join(duplicates)}")
        return cases


@register
class IfElseNode(NodeType):
    type = "if_else"
    label = "If / else"
    group = "Logic"
    description = "Take one branch: the first case whose conditions hold, else the else branch."
    Config = IfElseConfig

    def input_ports(self, config: IfElseConfig) -> dict[str, PortType]:
        names = (name for case in config.cases for name in group_variables(case))
        return dict.fromkeys(names, "any")

    def output_ports(self, config: IfElseConfig) -> dict[str, PortType]:
        return dict.fromkeys([*(case.id for case in config.cases), ELSE], "boolean")

    def run(self, config: IfElseConfig, inputs: dict[str, Any], run_inputs: dict) -> NodeOutput:
        budget = PatternBudget()
        taken = next((case.id for case in config.cases if evaluate(case, inputs, budget)), ELSE)
        ports = self.output_ports(config)
        return NodeOutput(
            outputs={port: port == taken for port in ports},
            skip=[port for port in ports if port != taken],
            details={"branch": taken},
        )
