"""The agent tool registry: one module per tool in this package, discovered, not listed.

The agent loop arrives with the agents issue; tools exist first so that other apps' features
(knowledge search) can be offered to agents from the start.
"""

from __future__ import annotations

from agents.tools.base import Tool
from studio.registry import Registry

_registry: Registry[Tool] = Registry(
    __name__, noun="tool", key=lambda cls: cls.name, build=lambda cls: cls()
)
TOOLS = _registry.members
register = _registry.register


def tools() -> dict[str, Tool]:
    return _registry.all()
