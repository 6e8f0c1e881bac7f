"""The agent tool registry: one module per tool in this package, discovered, not listed.

The agent loop arrives with the agents issue; tools exist first so that other apps' features
(knowledge search) can be offered to agents from the start.
"""

from __future__ import annotations

import importlib
import pkgutil

from agents.tools.base import Tool

TOOLS: dict[str, Tool] = {}
_discovered = False


def register(cls: type[Tool]) -> type[Tool]:
    TOOLS[cls.name] = cls()
    return cls


def tools() -> dict[str, Tool]:
    global _discovered
    if not _discovered:
        for module in pkgutil.iter_modules(__path__):
            if module.name != "base":
                importlib.import_module(f"{__name__}.{module.name}")
        _discovered = True
    return TOOLS
