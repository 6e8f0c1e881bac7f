"""The human input node: pauses the run until a person answers in the studio (the run's page)
or over the API; the answer's fields become the node's outputs.

While it waits the run is ``waiting`` and may wait up to ``timeout_hours`` (then it fails as
timed out, like any run past its deadline).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType
from flows.nodes.fields import FieldSpec, unique_names
from flows.runtime.templating import render, variables
from flows.services.runs import fields_clean


class HumanInputConfig(NodeConfig):
    prompt: str = Field(
        default="Please review: {{text}}",
        max_length=20_000,
        title="Question",
        description="What the person is asked; {{variables}} are filled in.",
    )
    fields: list[FieldSpec] = Field(
        default_factory=lambda: [FieldSpec(name="answer", label="Answer")],
        min_length=1,
        max_length=20,
        title="Answer fields",
    )
    timeout_hours: float = Field(
        default=24, gt=0, le=720, title="Wait at most (hours)", description="Then the run fails."
    )

    _unique = field_validator("fields")(unique_names)


@register
class HumanInputNode(NodeType):
    type = "human_input"
    label = "Human input"
    group = "People"
    description = "Pauses the run until a person answers in the studio or over the API."
    Config = HumanInputConfig
    waits = True
    pauses_run = True

    def input_ports(self, config: HumanInputConfig) -> dict[str, PortType]:
        return dict.fromkeys(variables(config.prompt), "any")

    def output_ports(self, config: HumanInputConfig) -> dict[str, PortType]:
        return {**{f.name: f.type for f in config.fields}, "answered_by": "text"}

    def wait_begin(self, config: HumanInputConfig, inputs: dict[str, Any], run, key) -> dict:
        return {
            "prompt": render(config.prompt, inputs),
            "fields": [f.model_dump() for f in config.fields],
            "deadline_s": config.timeout_hours * 3600,
        }

    def answer_check(
        self, config: HumanInputConfig, details: dict, values: Any, user: Any = None
    ) -> NodeOutput:
        """The answer, checked against the fields asked, is the node's outputs."""
        fields = [FieldSpec.model_validate(f) for f in details["fields"]]
        cleaned = fields_clean(fields, values, "answer")
        return NodeOutput({**cleaned, "answered_by": getattr(user, "username", "") or ""})
