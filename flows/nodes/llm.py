"""The LLM node: renders a prompt template and streams a catalog model's answer."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from catalog import selectors as catalog_selectors
from catalog.engines.base import GenerationRequest
from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeContext, NodeOutput, NodeType, PortType
from flows.templating import render, variables
from studio import access


class LlmConfig(NodeConfig):
    model: str = Field(min_length=1, max_length=100, description="catalog model slug")
    prompt: str = Field(default="{{message}}", max_length=100_000)
    system: str = Field(default="", max_length=100_000)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=1, le=32_768)


@register
class LlmNode(NodeType):
    type = "llm"
    label = "LLM"
    Config = LlmConfig

    def input_ports(self, config: LlmConfig) -> dict[str, PortType]:
        return {name: "text" for name in variables(config.system + "\n" + config.prompt)}

    def output_ports(self, config: LlmConfig) -> dict[str, PortType]:
        return {"text": "text"}

    def check(self, config: LlmConfig, workspace: Any, user: Any = None) -> list[str]:
        model = catalog_selectors.model_for_workspace(workspace.id, config.model)
        if model is None:
            return [f"model {config.model!r} is not in this workspace's catalog"]
        if model.task != "chat":
            return [f"model {config.model!r} is a {model.task} model, not a chat model"]
        if user is not None and not access.has_perm(user, model, "use"):
            return [f"you may not use the model {config.model!r}; ask an admin to share it"]
        return []

    def queue(self, config: LlmConfig, workspace_id: int) -> str | None:
        model = catalog_selectors.model_for_workspace(workspace_id, config.model)
        return catalog_selectors.model_queue(model) if model else "inference"

    async def arun(self, ctx: NodeContext, config: LlmConfig, inputs: dict[str, Any]) -> NodeOutput:
        model = await catalog_selectors.amodel_for_workspace(ctx.workspace_id, config.model)
        if model is None:
            raise LookupError(f"model {config.model!r} is not in this workspace's catalog")
        engine = await ctx.engine_for(model)
        messages = []
        if config.system:
            messages.append({"role": "system", "content": render(config.system, inputs)})
        messages.append({"role": "user", "content": render(config.prompt, inputs)})
        request = GenerationRequest(
            messages=messages, max_tokens=config.max_tokens, temperature=config.temperature
        )
        started = time.monotonic()
        first_token_at: float | None = None
        emitting = 0.0  # time spent publishing events, which is the studio's, not the model's
        parts: list[str] = []
        input_tokens = output_tokens = 0
        finish = "stop"
        async for chunk in engine.stream(request):
            if chunk.text:
                if first_token_at is None:
                    first_token_at = time.monotonic()
                parts.append(chunk.text)
                emit_started = time.monotonic()
                await ctx.emit("token", {"text": chunk.text})
                emitting += time.monotonic() - emit_started
            if chunk.finish_reason:
                input_tokens = chunk.input_tokens or 0
                output_tokens = chunk.output_tokens or 0
                finish = chunk.finish_reason
        ended = time.monotonic()
        return NodeOutput(
            outputs={"text": "".join(parts)},
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            details={
                "model": model.slug,
                "engine": model.engine,
                "finish_reason": finish,
                "model_ms": round((ended - started - emitting) * 1000, 2),
                "emit_ms": round(emitting * 1000, 2),
                "ttft_ms": round(((first_token_at or ended) - started) * 1000, 2),
            },
        )
