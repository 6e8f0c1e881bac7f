"""The variable assigner: named, typed values built from templates, one output port each.

A value that is exactly one ``{{variable}}`` passes that input on as it is (an object stays an
object); any other template is rendered as text first. Then the value is converted to the
variable's type, and one that does not convert fails the node, naming the variable.

With the ``conversation`` scope the values are also kept as conversation variables
(``flows/variables.py``): later nodes read them as ``{{conversation.<name>}}``, and so do the
conversation's later turns. A write past the conversation's limits fails the node and keeps
nothing.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType
from flows.nodes.fields import repeated
from flows.runtime.conditions import to_bool, to_number, to_text
from flows.runtime.templating import VARIABLE, render, variables
from flows.variables import SYSTEM_VARIABLES, WRITTEN, variables_merge

ValueType = Literal["text", "number", "boolean", "json"]


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        title="Name",
        description="The variable's name: its output port.",
    )
    type: ValueType = Field(
        default="text",
        title="Type",
        description="number parses a number, boolean true/false/yes/no/1/0, json a JSON text.",
    )
    value: str = Field(
        max_length=100_000,
        title="Value",
        description="A template: {{variable}}, {{node_id.port}} and {{conversation.name}} (a "
        "conversation variable) placeholders are filled in.",
    )


class VariableAssignerConfig(NodeConfig):
    variables: list[Assignment] = Field(min_length=1, max_length=50, title="Variables")
    scope: Literal["run", "conversation"] = Field(
        default="run",
        title="Scope",
        description="run: the values are this run's outputs only. conversation: they are also "
        "kept as conversation variables, read as {{conversation.name}} by later nodes and the "
        "conversation's later turns (at most 100 variables, 64 KB in all).",
    )

    @field_validator("variables")
    @classmethod
    def _distinct_names(cls, assignments: list[Assignment]) -> list[Assignment]:
        names = [a.name for a in assignments]
        duplicates = repeated(names)
        if duplicates:
            raise ValueError(f"more than one variable is named {', '.join(duplicates)}")
        return assignments


class ConversionError(ValueError):
    """A value that does not convert to its variable's type."""


def convert(name: str, type_: ValueType, value: Any) -> Any:
    """``value`` as ``type_``; ``ConversionError`` names the variable if it does not convert."""
    if type_ == "text":
        return to_text(value)
    shown = to_text(value)
    shown = shown if len(shown) <= 60 else shown[:60] + "…"
    if type_ == "number":
        number = to_number(value)
        if number is None:
            raise ConversionError(f"variable {name!r}: {shown!r} is not a number")
        return number
    if type_ == "boolean":
        flag = to_bool(value)
        if flag is None:
            raise ConversionError(f"variable {name!r}: {shown!r} is not true/false, yes/no or 1/0")
        return flag
    if not isinstance(value, str):
        return value  # already a JSON value: an object, a list, a number…
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConversionError(f"variable {name!r}: not valid JSON ({exc.msg})") from None


@register
class VariableAssignerNode(NodeType):
    type = "variable_assigner"
    label = "Variable assigner"
    group = "Transform"
    description = "Set named, typed variables from templates of upstream values."
    Config = VariableAssignerConfig

    def input_ports(self, config: VariableAssignerConfig) -> dict[str, PortType]:
        names = (name for a in config.variables for name in variables(a.value))
        return dict.fromkeys(names, "any")

    def output_ports(self, config: VariableAssignerConfig) -> dict[str, PortType]:
        return {a.name: a.type for a in config.variables}

    def run(
        self, config: VariableAssignerConfig, inputs: dict[str, Any], run_inputs: dict
    ) -> NodeOutput:
        outputs = {}
        for assignment in config.variables:
            single = VARIABLE.fullmatch(assignment.value.strip())
            value = inputs.get(single.group(1)) if single else render(assignment.value, inputs)
            outputs[assignment.name] = convert(assignment.name, assignment.type, value)
        if config.scope == "run":
            return NodeOutput(outputs=outputs)
        kept = variables_merge(run_inputs.get(SYSTEM_VARIABLES) or {}, outputs)
        return NodeOutput(outputs=outputs, variables=kept, details={WRITTEN: sorted(outputs)})
