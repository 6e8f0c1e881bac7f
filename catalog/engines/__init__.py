"""The engine registry: one module per engine in this package, each registering its class.

Modules are discovered, not listed, so adding an engine means adding a file. Engine modules
import their heavy libraries (torch, vllm) inside methods, so discovery stays cheap and the CPU
install never imports vllm.
"""

from __future__ import annotations

import importlib
import pkgutil

from catalog.engines.base import Engine

ENGINES: dict[str, type[Engine]] = {}
_discovered = False


def register(cls: type[Engine]) -> type[Engine]:
    ENGINES[cls.kind] = cls
    return cls


def _discover() -> None:
    # A flag, not "ENGINES is empty": importing one engine module first must not stop the rest.
    global _discovered
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    _discovered = True


def engine_class(kind: str) -> type[Engine]:
    if not _discovered:
        _discover()
    try:
        return ENGINES[kind]
    except KeyError:
        raise KeyError(f"unknown engine {kind!r}; known: {', '.join(sorted(ENGINES))}") from None


def engine_kinds() -> list[str]:
    if not _discovered:
        _discover()
    return sorted(ENGINES)
