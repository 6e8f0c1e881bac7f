"""An agent run's state between steps: what the loop checkpoints so that a killed worker resumes
where it stopped, and what a run waiting for a person's approval keeps.

The state is plain JSON (``AgentState.model_dump(mode="json")``) so that a run row or a Redis
key can hold it. A step is: one model call, then the tool calls it asked for. The step counter
moves only when the model's answer is recorded, so a step interrupted during its model call is
retried whole; each tool call's result is recorded (and checkpointed) before the next one runs,
so a tool call that finished is never made again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Status(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"  # for a person to approve or reject ``AgentState.waiting_on``
    DONE = "done"  # the model gave its answer
    LIMITED = "limited"  # a limit ended the run; ``answer`` says which
    FAILED = "failed"  # the model could not be called; ``reason`` says why


class ToolCall(BaseModel):
    """One call the model asked for, as the loop will make it (or refuse it)."""

    key: str  # ``<run>:<step>:<index>``: the same on every retry of this call
    id: str  # the model's id for the call, echoed on the result message
    name: str  # the exposed name the model used
    arguments: str  # the raw arguments, as the model sent them
    # Set when the call is refused before it runs (unknown tool, bad arguments, over the
    # per-step limit): what the model is told instead.
    refusal: str | None = None


class ToolOutcome(BaseModel):
    content: str
    details: dict[str, Any] = Field(default_factory=dict)


class AgentState(BaseModel):
    run_id: str
    status: Status = Status.RUNNING
    # Steps whose model call has answered (the next model call is step ``steps + 1``).
    steps: int = 0
    tokens: int = 0
    # ``tokens`` split, for the node's and the run's totals (the limit counts their sum).
    input_tokens: int = 0
    output_tokens: int = 0
    started_at: float  # by the run's clock (wall time: a resumed run counts the time before)
    # The conversation after the system message: the user's messages, the model's, the tools'.
    messages: list[dict[str, Any]]
    # The calls of the current step, in order, until their results are given to the model.
    calls: list[ToolCall] = Field(default_factory=list)
    # Their results by key; a key that is here is never run again.
    results: dict[str, ToolOutcome] = Field(default_factory=dict)
    # Keys whose tool started: one started without a result was cut off by a stopped worker.
    started: list[str] = Field(default_factory=list)
    approved: list[str] = Field(default_factory=list)
    waiting_on: str | None = None  # the key of the call a person must approve
    # When the wait began: the time a person takes does not count against the run's time limit.
    waiting_since: float | None = None
    answer: str = ""
    reason: str = ""

    def call(self, key: str) -> ToolCall | None:
        return next((c for c in self.calls if c.key == key), None)
