"""The iteration node: runs the nodes inside it once per item of a list, and collects what one
of them gives back for each item, in order.

The nodes inside read the item and its index from the iteration's inner ports
(``{{iteration_1.item}}``); each instance is stored under its own key (``llm_1[3]``). At most
``parallelism`` items are in flight at once.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from django.conf import settings
from pydantic import Field, field_validator

from flows.nodes import register
from flows.nodes.base import NodeConfig, NodeOutput, NodeType, PortType

REFERENCE = r"^[A-Za-z_][A-Za-z0-9_\-]*\.[A-Za-z_][A-Za-z0-9_]*$"

# The items last parsed from text on this thread, with that text: a pass calls
# ``open_instances`` once per finished item with the same stored input, and parsing 5,000 items
# each time made a pass quadratic. Kept by identity, so the text cannot be another's.
_parsed = threading.local()


def bare_reference(value: Any) -> Any:
    """``{{node.port}}`` as typed in the settings form, stored as ``node.port``."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("{{") and value.endswith("}}"):
            return value[2:-2].strip()
    return value


class IterationConfig(NodeConfig):
    result: str = Field(
        pattern=REFERENCE,
        title="Result of each item",
        description="The output of a node inside the iteration to collect per item, "
        "as {{node_id.port}}.",
    )
    parallelism: int = Field(
        default=1, ge=1, le=50, title="Parallelism", description="Items run at the same time."
    )

    _bare = field_validator("result", mode="before")(bare_reference)


@register
class IterationNode(NodeType):
    type = "iteration"
    label = "Iteration"
    group = "Logic"
    description = "Runs the nodes inside it for each item of a list and collects the results."
    Config = IterationConfig
    container = True

    def input_ports(self, config: IterationConfig) -> dict[str, PortType]:
        return {"items": "json"}

    def inner_ports(self, config: IterationConfig) -> dict[str, PortType]:
        return {"item": "any", "index": "number"}

    def output_ports(self, config: IterationConfig) -> dict[str, PortType]:
        return {"results": "json", "count": "number"}

    def collects(self, config: IterationConfig) -> list[str]:
        return [config.result]

    def begin(self, config: IterationConfig, inputs: dict[str, Any]) -> dict:
        items = _items(inputs.get("items"))
        limit = settings.STUDIO_ITERATION_MAX_ITEMS
        if len(items) > limit:
            raise ValueError(f"{len(items)} items is more than the limit of {limit}")
        return {"count": len(items), "next": 0, "open": [], "results": [None] * len(items)}

    def open_instances(self, config: IterationConfig, state: dict, inputs: dict) -> list:
        items = _items_once(inputs.get("items"))
        while len(state["open"]) < config.parallelism and state["next"] < state["count"]:
            state["open"].append(state["next"])
            state["next"] += 1
        return [(i, {"item": items[i], "index": i}) for i in state["open"]]

    def active(self, config: IterationConfig, state: dict) -> list[int]:
        return list(state["open"])

    def instance_done(self, config: IterationConfig, state: dict, index: int, collected: dict):
        state["open"].remove(index)
        state["results"][index] = collected[config.result]
        return state

    def finished(self, config: IterationConfig, state: dict) -> NodeOutput | None:
        if state["open"] or state["next"] < state["count"]:
            return None
        _parsed.last = None  # a long list need not outlive its iteration on this thread
        return NodeOutput(outputs={"results": state["results"], "count": state["count"]})


def _items_once(value: Any) -> list:
    """``_items(value)``, parsed once while the same text comes back on this thread."""
    if not isinstance(value, str):
        return _items(value)
    last = getattr(_parsed, "last", None)
    if last is not None and last[0] is value:
        return last[1]
    items = _items(value)
    _parsed.last = (value, items)
    return items


def _items(value: Any) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [line for line in value.splitlines() if line.strip()]
    if not isinstance(value, list):
        raise ValueError(f"items must be a list, not {type(value).__name__}")
    return value
