"""The question classifier: a model sorts a text into one of the node's classes; the flow goes on
along that class's port.

The model is asked for structured output (JSON whose ``label`` is one of the class ids). An
engine that does not enforce the schema may answer something else: then the label is the class
id that appears first in the answer's text, else the first class; ``details["label_from"]``
says which, so the trace shows a guess as a guess.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.nodes import model_call, register
from flows.nodes.base import NodeContext, NodeOutput, NodeType, PortType
from flows.nodes.fields import repeated
from flows.nodes.model_call import ModelTargetConfig
from flows.runtime.templating import render, variables

# The label is a few tokens; room for a model that explains itself before the JSON.
MAX_TOKENS = 256
LABEL_PORT = "label"
ANSWER_SHOWN = 2_000  # characters of the model's answer kept in the trace


class QuestionClass(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        title="Class",
        description="A short name (letters, digits, _): the port the flow takes for it.",
    )
    description: str = Field(
        default="",
        max_length=2_000,
        title="Description",
        description="Which texts belong here, in words the model reads.",
    )


class QuestionClassifierConfig(ModelTargetConfig):
    classes: list[QuestionClass] = Field(
        default_factory=lambda: [QuestionClass(id="class_1"), QuestionClass(id="class_2")],
        min_length=2,
        max_length=20,
        title="Classes",
        description="The classes to choose from; each is an output port.",
    )
    instructions: str = Field(
        default="",
        max_length=20_000,
        title="Instructions",
        description="More guidance for the model; {{variables}} are filled from other nodes.",
    )

    @field_validator("classes")
    @classmethod
    def _distinct_ids(cls, classes: list[QuestionClass]) -> list[QuestionClass]:
        ids = [c.id for c in classes]
        twice = repeated(ids)
        if twice:
            raise ValueError(f"class ids must differ: {', '.join(twice)} is repeated")
        if LABEL_PORT in ids:
            raise ValueError(f"{LABEL_PORT!r} is the port of the chosen class; name it otherwise")
        return classes


def _schema(ids: list[str]) -> dict:
    return {
        "type": "object",
        "properties": {LABEL_PORT: {"type": "string", "enum": ids}},
        "required": [LABEL_PORT],
        "additionalProperties": False,
    }


def _system(config: QuestionClassifierConfig, inputs: dict[str, Any]) -> str:
    lines = [
        "Classify the user's text into exactly one of these classes:",
        *(f"- {c.id}: {c.description}" if c.description else f"- {c.id}" for c in config.classes),
        'Answer with JSON only: {"label": "<class>"}.',
    ]
    if config.instructions:
        lines += ["", render(config.instructions, inputs)]
    return "\n".join(lines)


def _label(answer: str, ids: list[str]) -> tuple[str, str]:
    """The chosen class id, and where it came from."""
    try:
        value = model_call.json_answer(answer)
    except ValueError:
        value = None
    if isinstance(value, dict) and value.get(LABEL_PORT) in ids:
        return value[LABEL_PORT], "structured output"
    if isinstance(value, str) and value in ids:
        return value, "structured output"
    found = [
        (match.start(), class_id)
        for class_id in ids
        if (match := re.search(rf"(?<![A-Za-z0-9_]){re.escape(class_id)}(?![A-Za-z0-9_])", answer))
    ]
    if found:
        return min(found)[1], "the answer's text"
    return ids[0], "the first class (the answer named none)"


@register
class QuestionClassifierNode(NodeType):
    type = "question_classifier"
    label = "Question classifier"
    group = "Models"
    description = "Sorts a text into one of your classes and follows that class's branch."
    Config = QuestionClassifierConfig

    def input_ports(self, config: QuestionClassifierConfig) -> dict[str, PortType]:
        return {"query": "text", **{name: "text" for name in variables(config.instructions)}}

    def output_ports(self, config: QuestionClassifierConfig) -> dict[str, PortType]:
        return {LABEL_PORT: "text", **{c.id: "text" for c in config.classes}}

    def check(self, config: QuestionClassifierConfig, workspace: Any, user: Any = None):
        return model_call.target_problems(config, workspace, user)

    def queue(self, config: QuestionClassifierConfig, workspace_id: int) -> str | None:
        return model_call.target_queue(config, workspace_id)

    async def arun(
        self, ctx: NodeContext, config: QuestionClassifierConfig, inputs: dict[str, Any]
    ) -> NodeOutput:
        query = render("{{query}}", inputs)
        ids = [c.id for c in config.classes]
        messages = [
            {"role": "system", "content": _system(config, inputs)},
            {"role": "user", "content": query},
        ]
        target = await model_call.resolve(ctx, config)
        result = await model_call.invoke(
            ctx,
            target,
            request_for=lambda model: model_call.sampled_request(
                model, messages, temperature=0.0, max_tokens=MAX_TOKENS, json_schema=_schema(ids)
            ),
            stream=False,
        )
        label, label_from = _label(result.text, ids)
        return NodeOutput(
            outputs={LABEL_PORT: label, label: query},
            skip=[class_id for class_id in ids if class_id != label],
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            details={
                **target.details(result),
                "label_from": label_from,
                "answer": result.text[:ANSWER_SHOWN],
            },
        )
