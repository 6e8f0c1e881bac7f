"""The node registry: one module per node type in this package, discovered, not listed."""

from __future__ import annotations

import importlib
import pkgutil

from flows.nodes.base import NodeType

NODE_TYPES: dict[str, NodeType] = {}


def register(cls: type[NodeType]) -> type[NodeType]:
    NODE_TYPES[cls.type] = cls()
    return cls


_discovered = False


def node_types() -> dict[str, NodeType]:
    # A flag, not ``if not NODE_TYPES``: a node module imported directly first (a test, a
    # helper) registers itself and must not stop the others from being discovered.
    global _discovered
    if not _discovered:
        for module in pkgutil.iter_modules(__path__):
            if module.name != "base":
                importlib.import_module(f"{__name__}.{module.name}")
        _discovered = True
    return NODE_TYPES
