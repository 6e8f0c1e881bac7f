"""A graph as it may be shown or exported: values that look like secrets masked.

New graphs cannot hold them (a node's ``check`` refuses a typed-in secret at save); graphs saved
before that rule may, so every place that shows or exports a stored graph passes it through
here. A node type that has such values offers ``redacted(config) -> config``.
"""

from __future__ import annotations

from typing import Any

from flows.nodes import node_types
from flows.nodes.base import NodeType


def config_redacted(kind: NodeType | None, config: Any) -> Any:
    """``config`` of a node of ``kind`` with its secrets masked (the same object if none)."""
    redact = getattr(kind, "redacted", None)
    return redact(config) if redact is not None else config


def graph_redacted(graph: Any) -> Any:
    """A copy of ``graph`` whose nodes' configs have their secrets masked (nodes are copied
    only where something is masked; an unreadable graph is returned as it is)."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return graph
    registry = node_types()
    nodes = []
    for node in graph["nodes"]:
        if isinstance(node, dict) and "config" in node:
            config = config_redacted(registry.get(node.get("type")), node["config"])
            if config is not node["config"]:
                node = {**node, "config": config}
        nodes.append(node)
    return {**graph, "nodes": nodes}
