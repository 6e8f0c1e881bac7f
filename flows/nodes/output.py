"""The output node: what its input ports receive becomes the run's outputs."""

from __future__ import annotations

from typing import Any

from flows.nodes import register
from flows.nodes.base import NodeOutput, NodeType, PortType
from flows.nodes.fields import FieldsConfig, FieldSpec


class OutputConfig(FieldsConfig):
    fields: list[FieldSpec] = [FieldSpec(name="text", label="Answer")]


@register
class OutputNode(NodeType):
    type = "output"
    label = "Output"
    group = "Start and end"
    description = "What the run gives back: one field per output."
    Config = OutputConfig

    def input_ports(self, config: OutputConfig) -> dict[str, PortType]:
        return {f.name: f.type for f in config.fields}

    def run(self, config: OutputConfig, inputs: dict[str, Any], run_inputs: dict) -> NodeOutput:
        return NodeOutput(outputs={f.name: inputs.get(f.name) for f in config.fields})
