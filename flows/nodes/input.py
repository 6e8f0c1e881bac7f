"""The input node: the run's inputs, one typed output port per field."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from flows.history import SYSTEM_HISTORY, history_transcript
from flows.nodes import register
from flows.nodes.base import NodeOutput, NodeType, PortType
from flows.nodes.fields import FieldsConfig, FieldSpec

HISTORY_PORT = "history"


class InputConfig(FieldsConfig):
    fields: list[FieldSpec] = [FieldSpec(name="message", label="Message")]
    history: bool = Field(
        default=False,
        title="Conversation history",
        description="Offer the conversation's earlier turns as text (the history port).",
    )

    @model_validator(mode="after")
    def _history_port_is_free(self) -> InputConfig:
        if self.history and any(f.name == HISTORY_PORT for f in self.fields):
            raise ValueError(f"a field named {HISTORY_PORT!r} would hide the history port")
        return self


@register
class InputNode(NodeType):
    type = "input"
    label = "Input"
    group = "Start and end"
    description = "What the run is given: one typed field per input."
    Config = InputConfig

    def output_ports(self, config: InputConfig) -> dict[str, PortType]:
        ports: dict[str, PortType] = {f.name: f.type for f in config.fields}
        if config.history:
            ports[HISTORY_PORT] = "text"
        return ports

    def run(self, config: InputConfig, inputs: dict[str, Any], run_inputs: dict) -> NodeOutput:
        outputs = {f.name: run_inputs.get(f.name) for f in config.fields}
        if config.history:
            outputs[HISTORY_PORT] = history_transcript(run_inputs.get(SYSTEM_HISTORY) or [])
        return NodeOutput(outputs=outputs)
