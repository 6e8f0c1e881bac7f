"""The template node: a Jinja2 template rendered in a sandbox into one text.

The template's undeclared variables are its input ports: ``{{ llm_1.text }}`` (an attribute of
an undeclared name) is the reference port ``llm_1.text``, and ``{{ topic }}`` is the port
``topic``, as is ``{{ topic.split() }}`` (a method called on it). At run time each referenced
node becomes a mapping of its ports.

The sandbox and its limits are ``flows/runtime/template_sandbox.py``. A render runs in a
renderer process (``flows/runtime/template_renderer.py``) that is killed at the deadline, so no
template can hold a worker's thread longer than that; saving only parses, here.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType
from flows.runtime import template_renderer
from flows.runtime.template_sandbox import MAX_TEMPLATE, TemplateError, template_ports

__all__ = ["TemplateError", "TemplateNode", "template_ports"]


class TemplateConfig(NodeConfig):
    template: str = Field(
        max_length=MAX_TEMPLATE,
        title="Template",
        description="Jinja2: {{ llm_1.text }} inserts an upstream output, {{ name }} a "
        "variable; {% if %} and {% for %} work as usual.",
    )

    @field_validator("template")
    @classmethod
    def _parses(cls, source: str) -> str:
        template_ports(source)
        return source


@register
class TemplateNode(NodeType):
    type = "template"
    label = "Template"
    group = "Transform"
    description = "Write a text from upstream values with a Jinja2 template."
    Config = TemplateConfig

    def input_ports(self, config: TemplateConfig) -> dict[str, PortType]:
        return dict.fromkeys(template_ports(config.template), "any")

    def output_ports(self, config: TemplateConfig) -> dict[str, PortType]:
        return {"text": "text"}

    def run(self, config: TemplateConfig, inputs: dict[str, Any], run_inputs: dict) -> NodeOutput:
        return NodeOutput(outputs={"text": template_renderer.render(config.template, inputs)})
