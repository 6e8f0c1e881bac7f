"""The input node: the run's inputs, one typed output port per field."""

from __future__ import annotations

from typing import Any

from flows.nodes import register
from flows.nodes.base import NodeOutput, NodeType, PortType
from flows.nodes.fields import FieldsConfig, FieldSpec


class InputConfig(FieldsConfig):
    fields: list[FieldSpec] = [FieldSpec(name="message", label="Message")]


@register
class InputNode(NodeType):
    type = "input"
    label = "Input"
    group = "Start and end"
    description = "What the run is given: one typed field per input."
    Config = InputConfig

    def output_ports(self, config: InputConfig) -> dict[str, PortType]:
        return {f.name: f.type for f in config.fields}

    def run(self, config: InputConfig, inputs: dict[str, Any], run_inputs: dict) -> NodeOutput:
        return NodeOutput(outputs={f.name: run_inputs.get(f.name) for f in config.fields})
