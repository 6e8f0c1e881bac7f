"""The LLM node: renders a prompt and streams the answer of a catalog model or a route.

The prompt is the node's own text, or a version of a library prompt (pinned by number, or the
latest approved one). Which model serves, the response cache and metering are the catalog's
(``catalog/inference.py``); the node builds the request and reports the call in the trace.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from pydantic import Field, model_validator

from catalog import router
from catalog import selectors as catalog_selectors
from catalog.engines.base import Adapter, GenerationRequest
from catalog.inference import ainvoke
from catalog.models import LoraAdapter, Model, Route
from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeContext, NodeOutput, NodeType, PortType
from flows.templating import render, variables
from studio import access

DEFAULT_TEMPERATURE = 0.0
DEFAULT_MAX_TOKENS = 256
DEFAULT_TOP_P = 1.0


class LlmConfig(NodeConfig):
    model: str = Field(default="", max_length=100, description="catalog model slug")
    route: str = Field(default="", max_length=100, description="route slug, instead of a model")
    adapter: str = Field(default="", max_length=100, description="LoRA adapter of the model")
    prompt: str = Field(default="{{message}}", max_length=100_000)
    system: str = Field(default="", max_length=100_000)
    # A library prompt (slug) replaces ``system`` and ``prompt``; ``library_version`` pins a
    # version, else the latest approved one serves. Its variables are declared in ``variables``
    # so that the graph's ports do not change under a published flow.
    library_prompt: str = Field(default="", max_length=100)
    library_version: int | None = Field(default=None, ge=1)
    variables: list[str] = Field(default_factory=list, max_length=50)
    # None: the model's default sampling, else the studio's.
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    json_schema: dict | None = Field(default=None, description="structured output schema")

    @model_validator(mode="after")
    def _one_target(self) -> LlmConfig:
        if bool(self.model) == bool(self.route):
            raise ValueError("name either a model or a route")
        if self.adapter and not self.model:
            raise ValueError("an adapter needs a model, not a route")
        if self.library_version is not None and not self.library_prompt:
            raise ValueError("library_version needs library_prompt")
        for name in self.variables:
            if variables("{{" + name + "}}") != [name]:
                raise ValueError(f"variables: {name!r} is not a variable name")
        return self


def _request(
    config: LlmConfig, model: Model, messages: list[dict], adapter: Adapter | None
) -> GenerationRequest:
    # The model's defaults were validated when the entry was saved (catalog.schemas.Sampling).
    defaults = model.sampling or {}

    def pick(own, name, fallback):
        if own is not None:
            return own
        return defaults[name] if defaults.get(name) is not None else fallback

    return GenerationRequest(
        messages=messages,
        temperature=pick(config.temperature, "temperature", DEFAULT_TEMPERATURE),
        top_p=pick(config.top_p, "top_p", DEFAULT_TOP_P),
        max_tokens=pick(config.max_tokens, "max_tokens", DEFAULT_MAX_TOKENS),
        adapter=adapter,
        json_schema=config.json_schema,
    )


@register
class LlmNode(NodeType):
    type = "llm"
    label = "LLM"
    Config = LlmConfig

    def input_ports(self, config: LlmConfig) -> dict[str, PortType]:
        if config.library_prompt:
            return {name: "text" for name in config.variables}
        return {name: "text" for name in variables(config.system + "\n" + config.prompt)}

    def output_ports(self, config: LlmConfig) -> dict[str, PortType]:
        return {"text": "text"}

    def check(self, config: LlmConfig, workspace: Any, user: Any = None) -> list[str]:
        errors = self._check_target(config, workspace, user)
        if config.library_prompt:
            errors += self._check_prompt(config, workspace, user)
        return errors

    def _check_target(self, config: LlmConfig, workspace: Any, user: Any) -> list[str]:
        if config.route:
            found = router.route_for_workspace(workspace.id, config.route)
            if found is None:
                return [f"route {config.route!r} is not in this workspace"]
            if user is not None and not access.has_perm(user, found, "use"):
                return [f"you may not use the route {config.route!r}; ask an admin to share it"]
            models = [m for m, _ in router.route_targets(found)]
            return [f"route {config.route!r}: {p}" for p in router.route_problems(models)]
        model = catalog_selectors.model_for_workspace(workspace.id, config.model)
        if model is None:
            return [f"model {config.model!r} is not in this workspace's catalog"]
        if model.task != "chat":
            return [f"model {config.model!r} is a {model.task} model, not a chat model"]
        if user is not None and not access.has_perm(user, model, "use"):
            return [f"you may not use the model {config.model!r}; ask an admin to share it"]
        if config.adapter and not LoraAdapter.objects.filter(base=model, slug=config.adapter):
            return [f"model {config.model!r} has no adapter {config.adapter!r}"]
        return []

    def _check_prompt(self, config: LlmConfig, workspace: Any, user: Any) -> list[str]:
        from catalog.selectors.prompts import prompt_version_resolve

        version = prompt_version_resolve(
            workspace.id, config.library_prompt, config.library_version
        )
        wanted = (
            f"version {config.library_version}" if config.library_version else "an approved version"
        )
        if version is None:
            return [f"prompt {config.library_prompt!r} has no published {wanted}"]
        if user is not None and not access.has_perm(user, version.prompt, "use"):
            return [f"you may not use the prompt {config.library_prompt!r}"]
        missing = [v for v in version.variables if v not in config.variables]
        if missing:
            return [
                f"prompt {config.library_prompt!r} uses variables {', '.join(missing)}: "
                "declare them in the node's variables"
            ]
        return []

    def queue(self, config: LlmConfig, workspace_id: int) -> str | None:
        if config.route:
            found = router.route_for_workspace(workspace_id, config.route)
            return router.route_queue(found) if found else "inference"
        model = catalog_selectors.model_for_workspace(workspace_id, config.model)
        return catalog_selectors.model_queue(model) if model else "inference"

    async def arun(self, ctx: NodeContext, config: LlmConfig, inputs: dict[str, Any]) -> NodeOutput:
        candidates, route, queue = await self._candidates(ctx, config)
        adapter = await self._adapter(config, candidates[0].model) if config.adapter else None
        system, prompt, version = config.system, config.prompt, None
        if config.library_prompt:
            from catalog.selectors.prompts import aprompt_version_resolve

            version = await aprompt_version_resolve(
                ctx.workspace_id, config.library_prompt, config.library_version
            )
            if version is None:
                raise LookupError(f"prompt {config.library_prompt!r} has no usable version now")
            system, prompt = version.system, version.template
        messages = []
        if system:
            messages.append({"role": "system", "content": render(system, inputs)})
        messages.append({"role": "user", "content": render(prompt, inputs)})

        async def on_token(text: str) -> None:
            await ctx.emit("token", {"text": text})

        result = await ainvoke(
            workspace_id=ctx.workspace_id,
            candidates=candidates,
            request_for=lambda model: _request(config, model, messages, adapter),
            engine_for=ctx.engine_for,
            on_token=on_token,
            use_cache=ctx.response_cache,
            first_token_timeout_s=route.timeout_s if route else None,
            queue=queue,
            usage={
                "source": "flow",
                "route_slug": route.slug if route else "",
                "flow_id": ctx.flow_id,
                "flow_slug": ctx.flow_slug,
                "run_id": ctx.run_id,
                "node_id": ctx.node_id,
                "api_key_id": ctx.api_key_id,
                "user_id": ctx.user_id,
            },
        )
        details = result.trace()
        if route:
            details["route"] = route.slug
        if adapter:
            details["adapter"] = adapter.name
        if version:
            details["prompt"] = f"{config.library_prompt} v{version.number}"
        return NodeOutput(
            outputs={"text": result.text},
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            details=details,
        )

    async def _candidates(
        self, ctx: NodeContext, config: LlmConfig
    ) -> tuple[list[router.Candidate], Route | None, str | None]:
        if config.route:
            route = await Route.objects.filter(
                workspace_id=ctx.workspace_id, slug=config.route
            ).afirst()
            if route is None:
                raise LookupError(f"route {config.route!r} is not in this workspace")
            seed = f"{ctx.run_id}:{ctx.node_id}"
            candidates = await sync_to_async(router.route_candidates)(route, seed=seed)
            queue = await sync_to_async(router.route_queue)(route)
            if not candidates:
                raise LookupError(f"route {config.route!r} has no available model")
            return candidates, route, queue
        model = await catalog_selectors.amodel_for_workspace(ctx.workspace_id, config.model)
        if model is None:
            raise LookupError(f"model {config.model!r} is not in this workspace's catalog")
        return [router.Candidate(model, "named by the node")], None, None

    async def _adapter(self, config: LlmConfig, model: Model) -> Adapter:
        found = await LoraAdapter.objects.filter(base=model, slug=config.adapter).afirst()
        if found is None:
            raise LookupError(f"model {model.slug!r} has no adapter {config.adapter!r}")
        return Adapter(id=found.id, name=found.slug, weights=found.weights)
