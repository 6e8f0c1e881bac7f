"""The node registry: one module per node type in this package, discovered, not listed."""

from __future__ import annotations

from flows.nodes.base import NodeType
from studio.registry import Registry

# One instance of each node type, shared by every caller.
_registry: Registry[NodeType] = Registry(
    __name__, noun="node type", key=lambda cls: cls.type, build=lambda cls: cls()
)
NODE_TYPES = _registry.members
register = _registry.register


def node_types() -> dict[str, NodeType]:
    return _registry.all()
