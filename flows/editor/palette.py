"""The node registry as the editor's palette: each node type's label, group, help, default
config and the ports a fresh node has, so the canvas can draw it before the server's report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from flows.nodes import node_types
from flows.nodes.base import NodeType
from flows.schema import ERROR_PORT

# The palette's sections, in order; a group not listed here comes after them.
GROUPS = ("Start and end", "Models", "Knowledge", "Logic", "Transform", "Tools", "People")


def default_config(kind: NodeType, prefill: Mapping[str, Any] | None = None) -> dict:
    """A new node's config: the Config's defaults, with ``prefill`` (the first catalog model or
    knowledge base the user may use) in the catalog fields it leaves empty. May be invalid
    (a template node has no template yet): the editor shows why on the node."""
    fields = kind.Config.model_fields
    values: dict[str, Any] = {
        name: info.get_default(call_default_factory=True)
        for name, info in fields.items()
        if not info.is_required()
    }
    for name, value in (prefill or {}).items():
        if name in fields and values.get(name) in (None, "") and value:
            values[name] = value
    try:
        return kind.Config.model_validate(values).model_dump(mode="json")
    except ValidationError:
        return to_jsonable_python(values)


def node_ports(kind: NodeType, config: Any, policy: Mapping[str, Any] | None = None) -> dict | None:
    """The ports a node with ``config`` has (as the graph report gives them), or None when the
    config is too broken to tell, so that the editor keeps the handles it had."""
    try:
        checked = kind.Config.model_validate(config)
    except ValidationError:
        if not isinstance(config, dict):
            return None
        # Good enough for ports in most invalid configs (a missing model), and never stored.
        checked = kind.Config.model_construct(
            **{k: v for k, v in config.items() if k in kind.Config.model_fields}
        )
    try:
        ports = {
            "inputs": dict(kind.input_ports(checked)),
            "outputs": dict(kind.output_ports(checked)),
            "inner": dict(kind.inner_ports(checked)) if kind.container else {},
        }
    except Exception:  # a node type's port code meeting a half-built config: no preview
        return None
    if (policy or {}).get("on_error") == "branch":
        ports["outputs"].setdefault(ERROR_PORT, "text")
    return ports


def _order(kind: NodeType) -> tuple[int, str]:
    group = kind.group if kind.group in GROUPS else None
    return (GROUPS.index(group) if group else len(GROUPS), kind.label.lower())


def palette(prefill: Mapping[str, Any] | None = None) -> list[dict]:
    """Every registered node type, by group then label: what the editor's palette offers."""
    entries = []
    for kind in sorted(node_types().values(), key=_order):
        config = default_config(kind, prefill)
        entries.append(
            {
                "type": kind.type,
                "label": kind.label,
                "group": kind.group,
                "description": kind.description,
                "container": kind.container,
                "config": config,
                "ports": node_ports(kind, config) or {"inputs": {}, "outputs": {}, "inner": {}},
            }
        )
    return entries
