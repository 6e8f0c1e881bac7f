"""What every node type provides: a config schema, typed ports, and how it executes.

A node either runs inline in the executor (``queue`` returns None: cheap, no engine) or is
dispatched to a worker queue whose processes keep the engine it needs resident.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from django.core.exceptions import ValidationError
from pydantic import BaseModel, ConfigDict

PortType = Literal["text", "number", "boolean", "json", "any"]


def ports_compatible(source: str, target: str) -> bool:
    return source == target or "any" in (source, target)


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class NodeOutput:
    outputs: dict[str, Any]
    # Output ports whose branch is not taken (if/else, classifier): the nodes they feed are
    # skipped, and so on downstream, unless a node ``merges`` (the variable aggregator).
    skip: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    # Anything the trace should show: the model that served, time to first token…
    details: dict[str, Any] = field(default_factory=dict)
    # The run's conversation variables after this node, when it wrote some (an inline node's
    # or waiting node's: ``flows/variables.py``); None leaves them as they were.
    variables: dict[str, Any] | None = None
    # What the node asks a person before it can go on (an agent's tool call to approve): the
    # node is stored ``waiting`` with ``details`` (its state to resume from) and this question
    # under ``details["asked"]``, the run waits with it, and ``run.waiting`` carries it. The
    # person's answer goes through ``NodeType.answer_check``. ``outputs`` are not used.
    wait: dict[str, Any] | None = None


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
    # Whether a call to a model would first wait for its engine to load its weights.
    engine_loads: Callable[[Any], bool] = lambda model: False
    # Who and what the run is for: usage metering records them.
    flow_id: int | None = None
    flow_slug: str = ""
    api_key_id: int | None = None
    user_id: int | None = None
    # The flow's switch for the workspace's response cache.
    response_cache: bool = True
    # The conversation's turns before the run's message (``flows/history.py``).
    history: list[dict] = field(default_factory=list)
    # Where the node's model calls keep their usage rows: the executor writes them with the
    # node's result, in one transaction (None: each call writes its own).
    metered: list[Any] | None = None


class NodeType:
    type: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[NodeConfig]] = NodeConfig
    # The palette's group ("Start and end", "Models", "Knowledge", "Logic", "Transform",
    # "Tools", "People") and its one-line help.
    group: ClassVar[str] = "Other"
    description: ClassVar[str] = ""
    # True: the node runs when at least one of its inputs arrives, and the inputs of skipped
    # branches are absent from ``inputs`` (merging branches). False: a skipped input skips it.
    merges: ClassVar[bool] = False
    # True for iteration and loop: other nodes sit inside it (their ``parent``), and
    # ``inner_ports`` are what it gives them (the item, the round…).
    container: ClassVar[bool] = False
    # True for nodes that wait rather than compute (a person's answer, a sub-flow's run):
    # ``wait_begin`` starts the wait, ``wait_resolve`` tells, on each advance, if it is over.
    waits: ClassVar[bool] = False
    # True: while it waits, the run is ``waiting`` (for a person), and its deadline moves;
    # the person answers through ``answer_check``. A node that waits only when it asks
    # (``NodeOutput.wait``: the agent node) is one of these too.
    pauses_run: ClassVar[bool] = False

    def input_ports(self, config: NodeConfig) -> dict[str, PortType]:
        return {}

    def output_ports(self, config: NodeConfig) -> dict[str, PortType]:
        return {}

    def inner_ports(self, config: NodeConfig) -> dict[str, PortType]:
        """A container's ports for the nodes inside it."""
        return {}

    def collects(self, config: NodeConfig) -> list[str]:
        """A container's references (``node_id.port``) to what its nodes give back."""
        return []

    # A container's life, driven by the executor over its JSON ``state`` (stored with it):
    # ``begin`` from its inputs (ValueError: bad inputs), ``open_instances`` to run now as
    # ``(index, inner port values)``, ``active`` (those started, not done), ``instance_done``
    # with what an instance gave back (its ``collects`` references), and ``finished``: its
    # outputs, or None while it goes on.
    def begin(self, config: NodeConfig, inputs: dict[str, Any]) -> dict:
        raise NotImplementedError

    def open_instances(self, config: NodeConfig, state: dict, inputs: dict) -> list:
        raise NotImplementedError

    def active(self, config: NodeConfig, state: dict) -> list[int]:
        """The instances started and not done (their results are read on each pass)."""
        raise NotImplementedError

    def instance_done(self, config: NodeConfig, state: dict, index: int, collected: dict):
        raise NotImplementedError

    def finished(self, config: NodeConfig, state: dict) -> NodeOutput | None:
        raise NotImplementedError

    def wait_begin(self, config: NodeConfig, inputs: dict[str, Any], run: Any, key: str) -> dict:
        """Start waiting; the details to store (``deadline_s``: how long the run may wait).
        ValueError: the node fails with the reason."""
        raise NotImplementedError

    def wait_resolve(self, config: NodeConfig, details: dict) -> NodeOutput | str | None:
        """The outputs once the wait is over, a reason if it failed, None while it goes on."""
        return None

    def answer_check(
        self, config: NodeConfig, details: dict, values: Any, user: Any = None
    ) -> NodeOutput | dict:
        """A person's answer to what the node waits for (``details``: its stored result's),
        checked: the outputs that end the wait (human input), or what a dispatched node resumes
        with (kept under ``details["answer"]``; the node is queued again, its state in
        ``details``). ``ValidationError`` when the answer does not fit; with code
        ``"conflict"`` when it answers another question than the one asked now (stale)."""
        raise ValidationError("This node does not take answers.")

    def check(self, config: NodeConfig, workspace: Any, user: Any = None) -> list[str]:
        """Errors that need the workspace to see (a model that is not in its catalog), or the
        saving user (a model they may not use); ``user`` is None when the studio checks."""
        return []

    def pickers(self, config: dict, workspace: Any, user: Any) -> dict[str, list[tuple[str, str]]]:
        """Choices for config fields this node type fills itself (an app's objects the flows app
        does not know), by field name: ``(value, label)`` options that ``user`` may pick, for
        ``config`` as it stands (the editor asks again when it changes). The editor shows them
        as a select; the value is read back as the field's own type."""
        return {}

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
