"""The LLM node: renders a prompt and streams the answer of a catalog model or a route.

The prompt is the node's own text, or a version of a library prompt (pinned by number, or the
latest approved one). Which model serves, the response cache and metering are the catalog's
(``catalog/inference.py``); the node builds the request and reports the call in the trace.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from catalog.engines.base import Adapter
from catalog.models import Model
from catalog.selectors.adapters import aadapter_for_model
from flows.nodes import memory, model_call, register
from flows.nodes.base import NodeContext, NodeOutput, NodeType, PortType
from flows.nodes.model_call import ModelTargetConfig
from flows.runtime.templating import render, variables
from studio import access


class LlmConfig(ModelTargetConfig):
    adapter: str = Field(
        default="",
        max_length=100,
        title="Adapter",
        description="A LoRA adapter of the model (its slug), to answer in its style.",
    )
    prompt: str = Field(
        default="{{message}}",
        max_length=100_000,
        title="Prompt",
        description="What the model is asked; {{variables}} are filled from other nodes, "
        "{{conversation.name}} from the conversation's variables.",
    )
    system: str = Field(
        default="",
        max_length=100_000,
        title="System message",
        description="Instructions the model follows for the whole answer.",
    )
    # A library prompt (slug) replaces ``system`` and ``prompt``; ``library_version`` pins a
    # version, else the latest approved one serves. Its variables are declared in ``variables``
    # so that the graph's ports do not change under a published flow.
    library_prompt: str = Field(
        default="",
        max_length=100,
        title="Library prompt",
        description="A prompt of the workspace's library, instead of the prompt above.",
    )
    library_version: int | None = Field(
        default=None,
        ge=1,
        title="Library prompt version",
        description="Pin a version; empty: the latest approved one.",
    )
    variables: list[str] = Field(
        default_factory=list,
        max_length=50,
        title="Variables",
        description="The library prompt's variables, each an input of the node.",
    )
    # None: the model's default sampling, else the studio's.
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        title="Temperature",
        description="Higher is more varied; empty: the model's default.",
    )
    top_p: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        title="Top p",
        description="Sample only from the most likely tokens; empty: the model's default.",
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=32_768,
        title="Maximum tokens",
        description="The longest answer; empty: the model's default.",
    )
    json_schema: dict | None = Field(
        default=None,
        title="JSON schema",
        description="Structured output: the answer must be JSON matching this schema.",
    )
    memory: Literal["off", "turns", "tokens"] = Field(
        default="off",
        title="Memory",
        description="What the model sees of the conversation before the message: nothing, its "
        "last turns, or the most recent turns that fit a token budget.",
    )
    memory_turns: int = Field(
        default=5,
        ge=1,
        le=100,
        title="Turns remembered",
        description="With memory by turns: how many exchanges (a message and its answer).",
    )
    memory_tokens: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        title="Memory budget",
        description="With memory by tokens: about how many tokens of recent turns.",
    )
    memory_overflow: Literal["drop", "summarise"] = Field(
        default="drop",
        title="Turns that do not fit",
        description="With memory by tokens: drop the older turns, or summarise them with the "
        "node's model into a short note before the recent ones (at most 200 tokens, kept and "
        "extended from one message to the next).",
    )

    @model_validator(mode="after")
    def _llm_fields(self) -> LlmConfig:
        if self.adapter and not self.model:
            raise ValueError("an adapter needs a model, not a route")
        if self.library_version is not None and not self.library_prompt:
            raise ValueError("library_version needs library_prompt")
        for name in self.variables:
            if variables("{{" + name + "}}") != [name]:
                raise ValueError(f"variables: {name!r} is not a variable name")
        return self


@register
class LlmNode(NodeType):
    type = "llm"
    label = "LLM"
    group = "Models"
    description = "Asks a chat model (or a route) and streams its answer."
    Config = LlmConfig

    def input_ports(self, config: LlmConfig) -> dict[str, PortType]:
        if config.library_prompt:
            return {name: "text" for name in config.variables}
        return {name: "text" for name in variables(config.system + "\n" + config.prompt)}

    def output_ports(self, config: LlmConfig) -> dict[str, PortType]:
        return {"text": "text"}

    def check(self, config: LlmConfig, workspace: Any, user: Any = None) -> list[str]:
        errors = model_call.target_problems(config, workspace, user, adapter=config.adapter)
        if config.library_prompt:
            errors += self._check_prompt(config, workspace, user)
        return errors

    def _check_prompt(self, config: LlmConfig, workspace: Any, user: Any) -> list[str]:
        from catalog.selectors.prompts import prompt_version_resolve

        version = prompt_version_resolve(
            workspace.id, config.library_prompt, config.library_version
        )
        wanted = (
            f"version {config.library_version}" if config.library_version else "an approved version"
        )
        # One answer for a missing prompt and one the user may not use: no probing for slugs.
        if version is None or (
            user is not None and not access.has_perm(user, version.prompt, "use")
        ):
            return [f"prompt {config.library_prompt!r} has no published {wanted}"]
        missing = [v for v in version.variables if v not in config.variables]
        if missing:
            return [
                f"prompt {config.library_prompt!r} uses variables {', '.join(missing)}: "
                "declare them in the node's variables"
            ]
        return []

    def queue(self, config: LlmConfig, workspace_id: int) -> str | None:
        return model_call.target_queue(config, workspace_id)

    async def arun(self, ctx: NodeContext, config: LlmConfig, inputs: dict[str, Any]) -> NodeOutput:
        target = await model_call.resolve(ctx, config)
        adapter = None
        if config.adapter:
            adapter = await self._adapter(config, target.candidates[0].model)
        system, prompt, version = config.system, config.prompt, None
        if config.library_prompt:
            from catalog.selectors.prompts import aprompt_version_resolve

            version = await aprompt_version_resolve(
                ctx.workspace_id, config.library_prompt, config.library_version
            )
            if version is None:
                raise LookupError(f"prompt {config.library_prompt!r} has no usable version now")
            system, prompt = version.system, version.template
        remembered = await memory.remembered(ctx, config, target)
        messages = []
        if system or remembered.summary:
            content = render(system, inputs) if system else ""
            if remembered.summary:
                content = memory.with_summary(content, remembered.summary)
            messages.append({"role": "system", "content": content})
        messages += remembered.turns
        messages.append({"role": "user", "content": render(prompt, inputs)})
        result = await model_call.invoke(
            ctx,
            target,
            request_for=lambda model: model_call.sampled_request(
                model,
                messages,
                temperature=config.temperature,
                top_p=config.top_p,
                max_tokens=config.max_tokens,
                adapter=adapter,
                json_schema=config.json_schema,
            ),
        )
        details = target.details(result)
        if adapter:
            details["adapter"] = adapter.name
        if version:
            details["prompt"] = f"{config.library_prompt} v{version.number}"
        if remembered.details:
            details["memory"] = remembered.details
        return NodeOutput(
            outputs={"text": result.text},
            # The summary's call counts with the answer's: both are this node's.
            input_tokens=result.input_tokens + remembered.input_tokens,
            output_tokens=result.output_tokens + remembered.output_tokens,
            details=details,
        )

    async def _adapter(self, config: LlmConfig, model: Model) -> Adapter:
        found = await aadapter_for_model(model, config.adapter)
        if found is None:
            raise LookupError(f"model {model.slug!r} has no adapter {config.adapter!r}")
        return Adapter(id=found.id, name=found.slug, weights=found.weights)
