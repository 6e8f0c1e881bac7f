"""The variable aggregator: joins branches again, passing on the first listed value that arrived.

It ``merges``: it runs when at least one of its inputs arrived, and the inputs of branches that
were not taken are simply absent.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType
from flows.nodes.fields import repeated
from flows.runtime.conditions import PORT


class VariableAggregatorConfig(NodeConfig):
    variables: list[str] = Field(
        min_length=2,
        max_length=20,
        title="Variables",
        description="The values to join, one per branch (node_id.port), in order of preference.",
    )
    type: PortType = Field(
        default="text", title="Type", description="The type of the values and of the output."
    )

    @field_validator("variables")
    @classmethod
    def _port_names(cls, variables: list[str]) -> list[str]:
        for name in variables:
            if not PORT.fullmatch(name):
                raise ValueError(f"{name!r} is not a variable or a node_id.port reference")
        duplicates = repeated(variables)
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return variables


@register
class VariableAggregatorNode(NodeType):
    type = "variable_aggregator"
    label = "Variable aggregator"
    group = "Logic"
    description = "Join branches: pass on the first listed value that arrived."
    merges = True
    Config = VariableAggregatorConfig

    def input_ports(self, config: VariableAggregatorConfig) -> dict[str, PortType]:
        return dict.fromkeys(config.variables, config.type)

    def output_ports(self, config: VariableAggregatorConfig) -> dict[str, PortType]:
        return {"output": config.type}

    def run(
        self, config: VariableAggregatorConfig, inputs: dict[str, Any], run_inputs: dict
    ) -> NodeOutput:
        chosen = next((name for name in config.variables if name in inputs), None)
        return NodeOutput(
            outputs={"output": inputs[chosen] if chosen else None}, details={"chosen": chosen}
        )
