"""The engine registry: one module per engine in this package, each registering its class.

Modules are discovered, not listed, so adding an engine means adding a file. Engine modules
import their heavy libraries (torch, vllm) inside methods, so discovery stays cheap and the CPU
install never imports vllm.
"""

from __future__ import annotations

from catalog.engines.base import Engine
from studio.registry import Registry

_registry: Registry[type[Engine]] = Registry(__name__, noun="engine", key=lambda cls: cls.kind)
# The registry's own dict: a test may add a stand-in engine to it and take it out again.
ENGINES = _registry.members
register = _registry.register


def engine_class(kind: str) -> type[Engine]:
    return _registry.get(kind)


def engine_kinds() -> list[str]:
    return _registry.names()
