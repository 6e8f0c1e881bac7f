"""What an agent is, as its author sets it in the builder and as a version stores it: a pydantic
schema, checked at the edge (the builder's form, an import, the API) and again when a version
is loaded, so a stored agent is never trusted blindly.

The loop (``agents/loop.py``) runs an ``AgentSpec``; the models (``agents/models.py``) store it
as JSON, one immutable copy per published version.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TOOLS = 32
MAX_INSTRUCTIONS_CHARS = 50_000


class Strategy(StrEnum):
    AUTO = "auto"  # native function calling where the engine supports it, else ReAct
    NATIVE = "native"  # the model's own tool calls (OpenAI ``tools``)
    REACT = "react"  # a text protocol: Thought / Action / Action Input / Observation


class Limits(BaseModel):
    """Every limit ends the run with a clear final message, never silently."""

    model_config = ConfigDict(extra="forbid")
    max_steps: int = Field(default=8, ge=1, le=50, description="model calls in one run")
    max_tokens: int = Field(
        default=20_000, ge=100, le=1_000_000, description="input and output tokens in one run"
    )
    max_seconds: float = Field(default=120.0, ge=1.0, le=3600.0, description="wall time")
    max_tool_calls_per_step: int = Field(default=4, ge=1, le=16)
    max_answer_tokens: int | None = Field(
        default=None, ge=1, le=32_768, description="the longest answer of one model call"
    )


class ToolUse(BaseModel):
    """One tool the author added: its registered name (``agents/tools/``), the settings the
    author fixed (the tool's ``Config``; the model cannot change them), and whether a person
    must approve each call before it runs."""

    model_config = ConfigDict(extra="forbid")
    tool: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    # The name the model sees, when one tool is added twice (two knowledge bases).
    name: str | None = Field(default=None, max_length=64, pattern=r"^[a-zA-Z][a-zA-Z0-9_-]*$")
    config: dict[str, Any] = Field(default_factory=dict)
    needs_approval: bool = False

    @property
    def exposed_name(self) -> str:
        return self.name or self.tool


class Instructions(BaseModel):
    """Inline text, or a prompt of the workspace's library (pinned, or its latest approved)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(default="", max_length=MAX_INSTRUCTIONS_CHARS)
    library_prompt: str | None = Field(default=None, max_length=100)
    library_version: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> Instructions:
        if self.library_version is not None and not self.library_prompt:
            raise ValueError("a library prompt version needs the library prompt")
        return self


class Memory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Short term: the conversation's recent turns that fit this budget; older ones summarised.
    window_tokens: int = Field(default=2_000, ge=0, le=100_000)
    summarise_older: bool = True
    # Long term: facts per end user and agent, recalled by relevance.
    long_term: bool = False
    extract_facts: bool = False


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instructions: Instructions = Field(default_factory=Instructions)
    # A chat model of the catalog, or a route (exactly one).
    model: str | None = Field(default=None, max_length=100)
    route: str | None = Field(default=None, max_length=100)
    strategy: Strategy = Strategy.AUTO
    tools: list[ToolUse] = Field(default_factory=list, max_length=MAX_TOOLS)
    memory: Memory = Field(default_factory=Memory)
    limits: Limits = Field(default_factory=Limits)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    opening: str = Field(default="", max_length=2_000)
    suggestions: list[str] = Field(default_factory=list, max_length=6)

    @model_validator(mode="after")
    def _checked(self) -> AgentSpec:
        if bool(self.model) == bool(self.route):
            raise ValueError("choose a model or a route (one of them)")
        names = [t.exposed_name for t in self.tools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"two tools are named {', '.join(duplicates)}: give one of them another name"
            )
        if any(len(s) > 200 for s in self.suggestions):
            raise ValueError("a suggested question is at most 200 characters")
        return self
