"""What the model nodes (LLM, question classifier, parameter extractor) share.

Their target, a catalog model or a route (``ModelTargetConfig``), is checked at save
(``target_problems``) and picks the worker queue (``target_queue``). At run time ``resolve``
turns it into candidates in order, and ``invoke`` makes the call through the catalog
(``catalog.inference.ainvoke``: the response cache, fallback along a route, metering per node).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from pydantic import Field, model_validator

from catalog import router
from catalog import selectors as catalog_selectors
from catalog.engines.base import Adapter, GenerationRequest
from catalog.inference import CallResult, ainvoke
from catalog.models import Model, Route
from catalog.selectors.adapters import adapter_for_model
from catalog.selectors.routes import aroute_for_workspace, route_for_workspace
from flows.nodes.base import NodeConfig, NodeContext
from studio import access, events

# The model an executor pass read for a node's queue, lent to the next ``resolve`` of the same
# target on this worker (the same query, answered moments before): a node kept by the pass does
# not read its model twice. A loan is taken once, and only while it is fresh.
_LENT: dict[tuple[int, str], tuple[float, Model]] = {}
_LENT_S = 1.0
_LENT_KEPT = 1024

DEFAULT_TEMPERATURE = 0.0
DEFAULT_MAX_TOKENS = 256
DEFAULT_TOP_P = 1.0


class ModelTargetConfig(NodeConfig):
    """The model or the route a node calls: exactly one of the two."""

    model: str = Field(
        default="",
        max_length=100,
        title="Model",
        description="A chat model of the workspace's catalog (its slug).",
    )
    route: str = Field(
        default="",
        max_length=100,
        title="Route",
        description="A route of the workspace instead of a model: it picks the model per call.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> ModelTargetConfig:
        if bool(self.model) == bool(self.route):
            raise ValueError("name either a model or a route")
        return self


def target_problems(
    config: ModelTargetConfig, workspace: Any, user: Any, *, adapter: str = ""
) -> list[str]:
    """What is wrong with the target in ``workspace`` (and for ``user``, unless None).

    A target that is missing and one that ``user`` may not use get the same message, and
    nothing more is said about the latter, so that a member cannot probe for private slugs."""
    if config.route:
        found = route_for_workspace(workspace.id, config.route)
        if found is None or (user is not None and not access.has_perm(user, found, "use")):
            return [f"route {config.route!r} is not in this workspace"]
        models = [m for m, _ in router.route_targets(found)]
        return [f"route {config.route!r}: {p}" for p in router.route_problems(models)]
    model = catalog_selectors.model_for_workspace(workspace.id, config.model)
    if model is None or (user is not None and not access.has_perm(user, model, "use")):
        return [f"model {config.model!r} is not in this workspace's catalog"]
    if model.task != "chat":
        return [f"model {config.model!r} is a {model.task} model, not a chat model"]
    if adapter and adapter_for_model(model, adapter) is None:
        return [f"model {config.model!r} has no adapter {adapter!r}"]
    return []


def target_queue(config: ModelTargetConfig, workspace_id: int) -> str:
    """The worker queue whose processes serve the target (``inference`` when it is gone: the
    node then fails there with the reason)."""
    if config.route:
        found = route_for_workspace(workspace_id, config.route)
        return router.route_queue(found) if found else "inference"
    model = catalog_selectors.model_for_workspace(workspace_id, config.model)
    if model is None:
        return "inference"
    if len(_LENT) >= _LENT_KEPT:
        _LENT.clear()
    _LENT[(workspace_id, config.model)] = (time.monotonic(), model)
    return catalog_selectors.model_queue(model)


def sampled_request(
    model: Model,
    messages: list[dict],
    *,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    adapter: Adapter | None = None,
    json_schema: dict | None = None,
) -> GenerationRequest:
    """A request for ``model``: each sampling value the node's own, else the model's default,
    else the studio's."""
    # The model's defaults were validated when the entry was saved (catalog.schemas.Sampling).
    defaults = model.sampling or {}

    def pick(own: Any, name: str, fallback: Any) -> Any:
        if own is not None:
            return own
        return defaults[name] if defaults.get(name) is not None else fallback

    return GenerationRequest(
        messages=messages,
        temperature=pick(temperature, "temperature", DEFAULT_TEMPERATURE),
        top_p=pick(top_p, "top_p", DEFAULT_TOP_P),
        max_tokens=pick(max_tokens, "max_tokens", DEFAULT_MAX_TOKENS),
        repetition_penalty=pick(None, "repetition_penalty", 1.0),
        adapter=adapter,
        json_schema=json_schema,
    )


@dataclass(frozen=True)
class Target:
    """A node's target at run time: the models to try in order, and the route they came from."""

    candidates: list[router.Candidate]
    route: Route | None
    queue: str | None

    def details(self, result: CallResult) -> dict[str, Any]:
        """What the run trace shows about the call."""
        details = result.trace()
        if self.route:
            details["route"] = self.route.slug
        return details


async def resolve(ctx: NodeContext, config: ModelTargetConfig) -> Target:
    """The target as it stands now; LookupError when it is gone or has no model to try."""
    if config.route:
        route = await aroute_for_workspace(ctx.workspace_id, config.route)
        if route is None:
            raise LookupError(f"route {config.route!r} is not in this workspace")
        seed = f"{ctx.run_id}:{ctx.node_id}"
        candidates = await sync_to_async(router.route_candidates)(route, seed=seed)
        queue = await sync_to_async(router.route_queue)(route)
        if not candidates:
            raise LookupError(f"route {config.route!r} has no available model")
        return Target(candidates, route, queue)
    lent = _LENT.pop((ctx.workspace_id, config.model), None)
    if lent is not None and time.monotonic() - lent[0] <= _LENT_S:
        model = lent[1]
    else:
        model = await catalog_selectors.amodel_for_workspace(ctx.workspace_id, config.model)
    if model is None:
        raise LookupError(f"model {config.model!r} is not in this workspace's catalog")
    return Target([router.Candidate(model, "named by the node")], None, None)


async def invoke(
    ctx: NodeContext,
    target: Target,
    *,
    request_for: Callable[[Model], GenerationRequest],
    stream: bool = True,
) -> CallResult:
    """Call the target's first candidate that answers. ``stream``: publish the answer's tokens
    as ``token`` events (a node whose answer is JSON for the studio to read keeps them)."""

    async def on_token(text: str) -> None:
        if stream:
            await ctx.emit("token", {"text": text})

    first = target.candidates[0].model
    if ctx.engine_loads(first):
        # The answer waits for the model to load (a worker's first call): the chat says so.
        await ctx.emit(events.NODE_LOADING, {"model": first.slug})
    route = target.route
    return await ainvoke(
        workspace_id=ctx.workspace_id,
        candidates=target.candidates,
        request_for=request_for,
        engine_for=ctx.engine_for,
        on_token=on_token,
        use_cache=ctx.response_cache,
        first_token_timeout_s=route.timeout_s if route else None,
        queue=target.queue,
        metered=ctx.metered,
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


_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)


def json_answer(text: str) -> Any:
    """The JSON value of a model's answer. Engines that enforce the schema answer bare JSON;
    others often wrap it in a Markdown code fence, which is taken off. ValueError when the
    answer is not JSON."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        return json.loads(stripped)
    except ValueError as exc:
        shown = text.strip()[:200] or "(empty)"
        raise ValueError(f"the model's answer is not JSON ({exc.args[0]}): {shown}") from None
