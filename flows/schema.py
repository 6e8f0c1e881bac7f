"""The flow graph: a pydantic schema for the stored JSON, and the checks run at save time.

A graph is refused with messages that name the node (or edge) at fault: unknown node types,
bad configs, dangling edges, unknown ports, type mismatches, unconnected inputs and cycles.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.nodes import node_types
from flows.nodes.base import NodeConfig, NodeType, PortType, ports_compatible

IDENT = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"


class Position(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float = 0
    y: float = 0


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=IDENT)
    type: str = Field(max_length=64)
    config: dict[str, Any] = Field(default_factory=dict)
    position: Position = Field(default_factory=Position)


class EdgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, max_length=128)
    source: str = Field(max_length=64)
    source_port: str = Field(max_length=64)
    target: str = Field(max_length=64)
    target_port: str = Field(max_length=64)


class GraphSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nodes: list[NodeSpec] = Field(max_length=500)
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=2000)


class GraphError(ValueError):
    """A graph that cannot be saved; ``errors`` has one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeType
    config: NodeConfig
    inputs: dict[str, PortType]
    outputs: dict[str, PortType]


@dataclass(frozen=True)
class CheckedGraph:
    nodes: dict[str, Node]
    edges: list[EdgeSpec]
    order: list[str]  # topological

    def incoming(self, node_id: str) -> list[EdgeSpec]:
        return [e for e in self.edges if e.target == node_id]

    def of_type(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind.type == kind]


def _pydantic_errors(prefix: str, exc: ValidationError) -> list[str]:
    errors = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        errors.append(f"{prefix}{where + ': ' if where else ''}{error['msg']}")
    return errors


def check_graph(data: Any, workspace: Any = None, user: Any = None) -> CheckedGraph:
    """Validate a graph; raise ``GraphError`` listing every problem found. With ``user``, also
    what that user may not use (a catalog model not shared with a limited member)."""
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:
        raise GraphError(_pydantic_errors("graph: ", exc)) from None

    errors: list[str] = []
    registry = node_types()
    nodes: dict[str, Node] = {}
    for node in spec.nodes:
        if node.id in nodes:
            errors.append(f"node {node.id!r}: the id is used by more than one node")
            continue
        kind = registry.get(node.type)
        if kind is None:
            errors.append(f"node {node.id!r}: unknown node type {node.type!r}")
            continue
        try:
            config = kind.Config.model_validate(node.config)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(f"node {node.id!r}: ", exc))
            continue
        if workspace is not None:
            errors.extend(f"node {node.id!r}: {e}" for e in kind.check(config, workspace, user))
        nodes[node.id] = Node(
            node.id, kind, config, kind.input_ports(config), kind.output_ports(config)
        )

    known = {n.id for n in spec.nodes}
    connected: dict[str, set[str]] = defaultdict(set)
    sorter: TopologicalSorter[str] = TopologicalSorter({node_id: () for node_id in nodes})
    for index, edge in enumerate(spec.edges):
        label = f"edge {edge.id or index}"
        missing = [end for end in (edge.source, edge.target) if end not in known]
        if missing:
            errors.extend(
                f"{label}: node {end!r} does not exist (dangling edge)" for end in missing
            )
            continue
        source, target = nodes.get(edge.source), nodes.get(edge.target)
        if source is None or target is None:  # an end was refused above: say it once
            connected[edge.target].add(edge.target_port)
            continue
        out_type = source.outputs.get(edge.source_port)
        in_type = target.inputs.get(edge.target_port)
        if out_type is None:
            errors.append(f"node {source.id!r}: has no output port {edge.source_port!r}")
            continue
        if in_type is None:
            errors.append(f"node {target.id!r}: has no input port {edge.target_port!r}")
            continue
        if not ports_compatible(out_type, in_type):
            errors.append(
                f"node {target.id!r}: input {edge.target_port!r} expects {in_type} but "
                f"{source.id!r}.{edge.source_port} gives {out_type} (type mismatch)"
            )
            connected[target.id].add(edge.target_port)  # wrongly connected, not unconnected
            continue
        if edge.target_port in connected[target.id]:
            errors.append(f"node {target.id!r}: input {edge.target_port!r} has more than one edge")
            continue
        connected[target.id].add(edge.target_port)
        sorter.add(target.id, source.id)

    for node in nodes.values():
        for port in node.inputs:
            if port not in connected[node.id]:
                errors.append(f"node {node.id!r}: input {port!r} is not connected")

    if not any(n.kind.type == "input" for n in nodes.values()):
        errors.append("graph: it needs an input node")
    if not any(n.kind.type == "output" for n in nodes.values()):
        errors.append("graph: it needs an output node")

    order: list[str] = []
    try:
        order = list(sorter.static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        errors.append(f"node {cycle[0]!r}: is part of a cycle ({' → '.join(reversed(cycle))})")
    if errors:
        raise GraphError(errors)
    return CheckedGraph(nodes=nodes, edges=spec.edges, order=order)
