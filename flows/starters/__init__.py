"""Starter flows offered on the new flow page: one JSON file per starter in this folder.

Each file holds ``{"name", "description", "order", "graph"}``. Where the graph names a chat
model or a knowledge base it says ``"__MODEL__"`` or ``"__KNOWLEDGE_BASE__"`` instead: the page
asks the user to choose them from what their workspace has, and ``Starter.graph_for`` puts the
chosen slugs in. Adding a starter means adding a file.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils.safestring import SafeString
from pydantic import BaseModel, ConfigDict, Field

from flows.graph_picture import graph_svg

MODEL = "__MODEL__"
KNOWLEDGE_BASE = "__KNOWLEDGE_BASE__"
FOLDER = Path(__file__).resolve().parent


class StarterFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(max_length=500)
    order: int = 100
    graph: dict[str, Any]


def _replace(value: Any, slugs: dict[str, str]) -> Any:
    if isinstance(value, str):
        return slugs.get(value, value)
    if isinstance(value, dict):
        return {k: _replace(v, slugs) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, slugs) for v in value]
    return value


def _uses(value: Any, placeholder: str) -> bool:
    if isinstance(value, dict):
        return any(_uses(v, placeholder) for v in value.values())
    if isinstance(value, list):
        return any(_uses(v, placeholder) for v in value)
    return value == placeholder


@dataclass(frozen=True)
class Starter:
    key: str  # the file's name without ``.json``
    name: str
    description: str
    graph: dict[str, Any]

    @property
    def needs_model(self) -> bool:
        return _uses(self.graph, MODEL)

    @property
    def needs_knowledge_base(self) -> bool:
        return _uses(self.graph, KNOWLEDGE_BASE)

    @property
    def picture(self) -> SafeString:
        """The graph drawn as a small SVG, for the starter's card on the new flow page."""
        return graph_svg(self.graph, title=f"The graph of “{self.name}”")

    def graph_for(self, *, model: str = "", knowledge_base: str = "") -> dict[str, Any]:
        """A fresh copy of the graph with the chosen model and knowledge base slugs in place
        of the placeholders (the graph check then says whether the workspace has them)."""
        slugs = {MODEL: model, KNOWLEDGE_BASE: knowledge_base}
        return _replace(copy.deepcopy(self.graph), slugs)


@functools.cache
def starters() -> dict[str, Starter]:
    """Every starter by key, in the order the page shows them. Files are read once per
    process; a malformed file fails loudly at the first call (its test catches it)."""
    found = []
    for path in FOLDER.glob("*.json"):
        data = StarterFile.model_validate_json(path.read_text())
        found.append((data.order, Starter(path.stem, data.name, data.description, data.graph)))
    found.sort(key=lambda item: (item[0], item[1].name))
    return {item.key: item for _, item in found}


def starter(key: str) -> Starter | None:
    return starters().get(key)
