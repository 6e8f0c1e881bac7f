"""What every agent tool provides: a name, a description and parameters the model reads, and
how it runs on a worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ToolParams(BaseModel):
    """The arguments a model passes; validated before the tool runs (never trusted)."""

    model_config = ConfigDict(extra="forbid")


class ToolConfig(BaseModel):
    """What the agent's author fixed when adding the tool (the model cannot change it)."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class ToolContext:
    workspace_id: int
    # Whoever the agent acts for; tools check their access with it (None: a published agent
    # called with an API key, checked when it was published).
    user_id: int | None
    engine_for: Callable[[Any], Awaitable[Any]]


@dataclass
class ToolResult:
    # What goes back to the model.
    content: str
    # What the trace and the chat show (sources, ids).
    details: dict[str, Any] = field(default_factory=dict)


class Tool:
    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[ToolParams]] = ToolParams
    Config: ClassVar[type[ToolConfig]] = ToolConfig

    def definition(self, config: ToolConfig) -> dict[str, Any]:
        """The OpenAI-style function definition a model is given."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.Params.model_json_schema(),
            },
        }

    def check(self, config: ToolConfig, workspace: Any, user: Any = None) -> list[str]:
        """Errors in the author's configuration (a base that is not in the workspace)."""
        return []

    async def arun(self, ctx: ToolContext, config: ToolConfig, params: ToolParams) -> ToolResult:
        raise NotImplementedError
