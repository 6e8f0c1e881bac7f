"""What every node type provides: a config schema, typed ports, and how it executes.

A node either runs inline in the executor (``queue`` returns None: cheap, no engine) or is
dispatched to a worker queue whose processes keep the engine it needs resident.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

PortType = Literal["text", "number", "boolean", "json", "any"]


def ports_compatible(source: str, target: str) -> bool:
    return source == target or "any" in (source, target)


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class NodeOutput:
    outputs: dict[str, Any]
    input_tokens: int = 0
    output_tokens: int = 0
    # Anything the trace should show: the model that served, time to first token…
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class NodeContext:
    """What a dispatched node may use while it runs on a worker."""

    run_id: str
    node_id: str
    workspace_id: int
    # Publishes a run event for this node (``await ctx.emit("token", {"text": …})``).
    emit: Callable[[str, dict], Awaitable[None]]
    # Returns the resident engine for a catalog model (loading it once per process).
    engine_for: Callable[[Any], Awaitable[Any]]
    # Who and what the run is for: usage metering records them.
    flow_id: int | None = None
    flow_slug: str = ""
    api_key_id: int | None = None
    user_id: int | None = None
    # The flow's switch for the workspace's response cache.
    response_cache: bool = True


class NodeType:
    type: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[NodeConfig]] = NodeConfig

    def input_ports(self, config: NodeConfig) -> dict[str, PortType]:
        return {}

    def output_ports(self, config: NodeConfig) -> dict[str, PortType]:
        return {}

    def check(self, config: NodeConfig, workspace: Any, user: Any = None) -> list[str]:
        """Errors that need the workspace to see (a model that is not in its catalog), or the
        saving user (a model they may not use); ``user`` is None when the studio checks."""
        return []

    def queue(self, config: NodeConfig, workspace_id: int) -> str | None:
        """The worker queue this node runs on, or None to run inline in the executor."""
        return None

    def run(self, config: NodeConfig, inputs: dict[str, Any], run_inputs: dict) -> NodeOutput:
        """Execute inline (cheap nodes only)."""
        raise NotImplementedError

    async def arun(
        self, ctx: NodeContext, config: NodeConfig, inputs: dict[str, Any]
    ) -> NodeOutput:
        """Execute on a worker (nodes whose ``queue`` is not None)."""
        raise NotImplementedError
