"""The parameter extractor: a model reads a text and gives the node's parameters, typed, each on
its own port (and all of them together on ``json``).

The model is asked for structured output with a JSON schema built from the parameters. Its
answer is then checked here as well (an engine may not enforce the schema): an answer that is
not a JSON object, a required parameter it lacks, or a value that is not of the parameter's type
fails the node with the reason. A number or a yes/no given as text is taken as such.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.nodes import model_call, register
from flows.nodes.base import NodeContext, NodeOutput, NodeType, PortType
from flows.nodes.fields import repeated
from flows.nodes.model_call import ModelTargetConfig
from flows.runtime.conditions import to_bool
from flows.runtime.templating import render, variables

MAX_TOKENS = 1024
WHOLE_PORT = "json"
ANSWER_SHOWN = 2_000  # characters of the model's answer kept in the trace
ParameterType = Literal["number", "text", "boolean", "json"]

_SCHEMA_TYPES: dict[str, dict] = {
    "number": {"type": "number"},
    "text": {"type": "string"},
    "boolean": {"type": "boolean"},
    "json": {},  # any JSON value
}


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        title="Name",
        description="Letters, digits and _: the output port of this parameter.",
    )
    type: ParameterType = Field(default="text", title="Type")
    description: str = Field(
        default="",
        max_length=2_000,
        title="Description",
        description="What to look for in the text, in words the model reads.",
    )
    required: bool = Field(
        default=True,
        title="Required",
        description="When the text does not give it, the node fails (else the port is empty).",
    )


class ParameterExtractorConfig(ModelTargetConfig):
    parameters: list[Parameter] = Field(
        default_factory=lambda: [Parameter(name="value")],
        min_length=1,
        max_length=50,
        title="Parameters",
        description="What to extract; each is an output port of its type.",
    )
    instructions: str = Field(
        default="",
        max_length=20_000,
        title="Instructions",
        description="More guidance for the model; {{variables}} are filled from other nodes.",
    )

    @field_validator("parameters")
    @classmethod
    def _distinct_names(cls, parameters: list[Parameter]) -> list[Parameter]:
        names = [p.name for p in parameters]
        twice = repeated(names)
        if twice:
            raise ValueError(f"parameter names must differ: {', '.join(twice)} is repeated")
        if WHOLE_PORT in names:
            raise ValueError(f"{WHOLE_PORT!r} is the port of all parameters; name it otherwise")
        return parameters


def _schema(parameters: list[Parameter]) -> dict:
    properties = {}
    for p in parameters:
        described = {"description": p.description} if p.description else {}
        properties[p.name] = {**_SCHEMA_TYPES[p.type], **described}
    return {
        "type": "object",
        "properties": properties,
        "required": [p.name for p in parameters if p.required],
        "additionalProperties": False,
    }


def _system(config: ParameterExtractorConfig, inputs: dict[str, Any]) -> str:
    lines = ["Extract these parameters from the user's text:"]
    for p in config.parameters:
        need = "required" if p.required else "optional"
        described = f": {p.description}" if p.description else ""
        lines.append(f"- {p.name} ({p.type}, {need}){described}")
    lines.append(
        "Answer with one JSON object whose keys are the parameter names. Leave out a parameter "
        "the text does not give; never invent one."
    )
    if config.instructions:
        lines += ["", render(config.instructions, inputs)]
    return "\n".join(lines)


def _typed(parameter: Parameter, value: Any) -> Any:
    """``value`` as the parameter's type; ValueError naming the parameter when it is not."""
    kind = parameter.type
    if kind == "json":
        return value
    if kind == "text":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and to_bool(value) is not None:
            return to_bool(value)
    if kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                number = json.loads(value.strip())
            except ValueError:
                number = None
            if isinstance(number, int | float) and not isinstance(number, bool):
                return number
    shown = json.dumps(value, ensure_ascii=False)[:100]
    raise ValueError(f"parameter {parameter.name!r} should be a {kind}, the model gave {shown}")


def extracted(parameters: list[Parameter], answer: str) -> dict[str, Any]:
    """Each parameter's value from the model's answer (None for an optional one it lacks);
    ValueError with the reason when the answer does not give what the parameters ask."""
    value = model_call.json_answer(answer)
    if not isinstance(value, dict):
        raise ValueError(f"the model's answer is not a JSON object: {answer.strip()[:200]}")
    missing = [p.name for p in parameters if p.required and value.get(p.name) is None]
    if missing:
        raise ValueError(
            f"the model found no value for the required parameter{'s' if len(missing) > 1 else ''}"
            f" {', '.join(missing)} in the text"
        )
    return {
        p.name: None if value.get(p.name) is None else _typed(p, value[p.name]) for p in parameters
    }


@register
class ParameterExtractorNode(NodeType):
    type = "parameter_extractor"
    label = "Parameter extractor"
    group = "Models"
    description = "Pulls typed values (an amount, a date, a name) out of a text with a model."
    Config = ParameterExtractorConfig

    def input_ports(self, config: ParameterExtractorConfig) -> dict[str, PortType]:
        return {"text": "text", **{name: "text" for name in variables(config.instructions)}}

    def output_ports(self, config: ParameterExtractorConfig) -> dict[str, PortType]:
        return {**{p.name: p.type for p in config.parameters}, WHOLE_PORT: "json"}

    def check(self, config: ParameterExtractorConfig, workspace: Any, user: Any = None):
        return model_call.target_problems(config, workspace, user)

    def queue(self, config: ParameterExtractorConfig, workspace_id: int) -> str | None:
        return model_call.target_queue(config, workspace_id)

    async def arun(
        self, ctx: NodeContext, config: ParameterExtractorConfig, inputs: dict[str, Any]
    ) -> NodeOutput:
        messages = [
            {"role": "system", "content": _system(config, inputs)},
            {"role": "user", "content": render("{{text}}", inputs)},
        ]
        schema = _schema(config.parameters)
        target = await model_call.resolve(ctx, config)
        result = await model_call.invoke(
            ctx,
            target,
            request_for=lambda model: model_call.sampled_request(
                model, messages, temperature=0.0, max_tokens=MAX_TOKENS, json_schema=schema
            ),
            stream=False,
        )
        values = extracted(config.parameters, result.text)
        return NodeOutput(
            outputs={**values, WHOLE_PORT: values},
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            details={**target.details(result), "answer": result.text[:ANSWER_SHOWN]},
        )
