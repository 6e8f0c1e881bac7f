"""What changed between two flow graphs: a readable summary (nodes added, removed and changed,
edges added and removed) and a unified diff of the pretty JSON.

Pure functions of the stored JSON: no database and no graph check, so a draft that does not
validate can still be compared with a version.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from flows.schema import EdgeSpec, NodeSpec

# Where a node sits on the canvas is not a change of what the flow does.
IGNORED_NODE_KEYS = frozenset({"id", "position"})
# Settings compared key by key; any other key of a node is compared whole.
SPLIT_NODE_KEYS = ("config", "policy")
_ABSENT = object()  # a key one side does not have


@dataclass(frozen=True)
class ValueChange:
    """One key of a node: its value before and after, text as is and anything else as pretty
    JSON (None: the key is absent)."""

    key: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class NodeChange:
    id: str
    type: str
    changes: list[ValueChange]


@dataclass(frozen=True)
class DiffLine:
    """A line of the unified diff. ``op``: ``header``, ``hunk``, ``added``, ``removed`` or
    ``same``; ``text`` is the line without its sign."""

    op: str
    text: str


@dataclass(frozen=True)
class GraphDiff:
    added: list[dict[str, str]] = field(default_factory=list)  # {"id", "type"}
    removed: list[dict[str, str]] = field(default_factory=list)
    changed: list[NodeChange] = field(default_factory=list)
    edges_added: list[str] = field(default_factory=list)
    edges_removed: list[str] = field(default_factory=list)
    lines: list[DiffLine] = field(default_factory=list)

    @property
    def same(self) -> bool:
        """Nothing that matters changed (positions may have)."""
        return not (
            self.added or self.removed or self.changed or self.edges_added or self.edges_removed
        )


def graph_text(graph: dict | None) -> str:
    """The graph as pretty JSON: nodes, then edges, each with its id first and the other keys
    in a fixed order, so that two graphs stored with their keys in different orders diff only
    where they differ."""
    if not graph:
        return ""
    graph = _sorted(graph)
    ordered = {"nodes": graph.get("nodes", []), "edges": graph.get("edges", []), **graph}
    return json.dumps(ordered, indent=2, ensure_ascii=False)


# Keys that say what a node or an edge is come first; the rest follow in alphabetical order.
_FIRST = ("id", "type", "title", "source", "source_port", "target", "target_port")


def _key_order(key: str) -> tuple[int, str]:
    return (_FIRST.index(key) if key in _FIRST else len(_FIRST), key)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=_key_order)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _pretty(value: Any) -> str:
    return json.dumps(_sorted(value), indent=2, ensure_ascii=False)


def _normal(item: Any, spec: type[NodeSpec] | type[EdgeSpec]) -> Any:
    """A node or an edge with the schema's defaults filled in, so that one saved before a key
    existed (``policy``, ``title``) does not differ from one that spells out the default."""
    try:
        return spec.model_validate(item).model_dump(mode="json")
    except ValidationError:
        return item  # a draft may hold what the schema refuses: compare it as stored


def _normal_graph(graph: dict | None) -> dict:
    graph = graph if isinstance(graph, dict) else {}
    return {
        **graph,
        "nodes": [_normal(n, NodeSpec) for n in graph.get("nodes") or []],
        "edges": [_normal(e, EdgeSpec) for e in graph.get("edges") or []],
    }


def _nodes(graph: dict) -> dict[str, dict]:
    return {
        n["id"]: n for n in graph["nodes"] if isinstance(n, dict) and isinstance(n.get("id"), str)
    }


def _edges(graph: dict) -> list[str]:
    return [
        f"{e.get('source')}.{e.get('source_port')} → {e.get('target')}.{e.get('target_port')}"
        for e in graph["edges"]
        if isinstance(e, dict)
    ]


def _changes(before: dict, after: dict) -> list[ValueChange]:
    """The keys of a node that differ: each config and policy key on its own, the other keys
    whole."""
    changes = []
    for part in SPLIT_NODE_KEYS:
        old_part, new_part = before.get(part) or {}, after.get(part) or {}
        if not isinstance(old_part, dict) or not isinstance(new_part, dict):
            old_part, new_part = {"": old_part}, {"": new_part}  # malformed: compare whole
        for key in sorted(set(old_part) | set(new_part)):
            old, new = old_part.get(key, _ABSENT), new_part.get(key, _ABSENT)
            if old != new:
                name = f"{part}.{key}" if key else part
                changes.append(ValueChange(name, _shown(old), _shown(new)))
    for key in sorted((set(before) | set(after)) - IGNORED_NODE_KEYS - set(SPLIT_NODE_KEYS)):
        old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if old != new:
            changes.append(ValueChange(key, _shown(old), _shown(new)))
    return changes


def _shown(value: Any) -> str | None:
    if value is _ABSENT:
        return None
    # Text (a prompt, a template) reads as written, not as a JSON string with \n escapes.
    return value if isinstance(value, str) else _pretty(value)


def graph_diff(before: dict | None, after: dict | None, *, labels: tuple[str, str]) -> GraphDiff:
    """What changed from ``before`` to ``after``; ``labels`` name the two sides in the unified
    diff's header ("v3", "draft"). Both sides are compared with the schema's defaults filled
    in, in the summary and in the JSON alike."""
    before, after = _normal_graph(before), _normal_graph(after)
    old_nodes, new_nodes = _nodes(before), _nodes(after)
    changed = []
    for node_id in [n for n in new_nodes if n in old_nodes]:
        changes = _changes(old_nodes[node_id], new_nodes[node_id])
        if changes:
            changed.append(NodeChange(node_id, str(new_nodes[node_id].get("type", "")), changes))
    old_edges, new_edges = _edges(before), _edges(after)
    return GraphDiff(
        added=[_brief(n) for i, n in new_nodes.items() if i not in old_nodes],
        removed=[_brief(n) for i, n in old_nodes.items() if i not in new_nodes],
        changed=changed,
        edges_added=[e for e in new_edges if e not in old_edges],
        edges_removed=[e for e in old_edges if e not in new_edges],
        lines=_unified(graph_text(before), graph_text(after), labels),
    )


def _brief(node: dict) -> dict[str, str]:
    return {"id": node["id"], "type": str(node.get("type", ""))}


def _unified(old: str, new: str, labels: tuple[str, str]) -> list[DiffLine]:
    lines = []
    diff = difflib.unified_diff(
        old.splitlines(), new.splitlines(), fromfile=labels[0], tofile=labels[1], lineterm=""
    )
    for index, line in enumerate(diff):
        if index < 2:  # "--- v3" and "+++ draft"
            lines.append(DiffLine("header", line))
        elif line.startswith("@@"):
            lines.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            lines.append(DiffLine("added", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("removed", line[1:]))
        else:
            lines.append(DiffLine("same", line[1:]))
    return lines
