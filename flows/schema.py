"""The flow graph: a pydantic schema for the stored JSON, and the checks run at save and import.

A graph is refused with problems that name the node (or edge) at fault: unknown node types, bad
configs, dangling edges, unknown ports, type mismatches, unconnected inputs, references to
variables that do not exist, cycles, nodes in the wrong container, and size limits. An edge into
a port the node's settings no longer make names its edge, so that the editor keeps and shows it.
A node connected to nothing is a warning: reported with the rest, never a reason to refuse.

Two kinds of links feed a node's input ports: stored edges, and references. A text field's
``{{node_id.port}}`` makes the input port ``node_id.port``, wired here to that node's output
(an implicit edge), so the editor's variable picker needs no edge; ``{{conversation.name}}``
reads a conversation variable instead (``flows/variables.py``). Every node also has the
``_trigger`` input ("run after"): any number of edges, no data; it hangs a node off a branch.

Containers (iteration, loop) hold nodes whose ``parent`` they are. A node sees the nodes of its
own container and of every enclosing one, and its containers' inner ports (the item, the round);
nothing outside a container sees inside it: the container's outputs carry what it collected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from graphlib import CycleError, TopologicalSorter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flows.nodes import node_types
from flows.nodes.base import NodeConfig, NodeType, PortType, ports_compatible
from flows.variables import CONVERSATION

IDENT = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"
TRIGGER = "_trigger"
ERROR_PORT = "error"
MAX_NODES = 500
MAX_EDGES = 2000
MAX_BYTES = 1_000_000
MAX_NESTING = 3


class Position(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float = 0
    y: float = 0


class NodePolicy(BaseModel):
    """What the executor does when the node is slow or fails (the same for every node type)."""

    model_config = ConfigDict(extra="forbid")
    timeout_s: float | None = Field(
        default=None, ge=0.1, le=3600, description="Give up on the node after this many seconds."
    )
    retries: int = Field(default=0, ge=0, le=10, description="Attempts after a failure.")
    retry_backoff_s: float = Field(
        default=1.0, ge=0, le=300, description="Wait before a retry; doubles each time."
    )
    on_error: Literal["fail", "default", "branch"] = Field(
        default="fail",
        description="fail the run, use the default outputs, or take the error branch",
    )
    default: dict[str, Any] = Field(
        default_factory=dict, description="The outputs to use when the node fails."
    )


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=IDENT)
    type: str = Field(max_length=64)
    title: str = Field(default="", max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    position: Position = Field(default_factory=Position)
    parent: str | None = Field(default=None, pattern=IDENT)
    policy: NodePolicy = Field(default_factory=NodePolicy)


class EdgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, max_length=128)
    source: str = Field(max_length=64)
    source_port: str = Field(max_length=130)
    target: str = Field(max_length=64)
    target_port: str = Field(max_length=130)


class GraphSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nodes: list[NodeSpec] = Field(max_length=MAX_NODES)
    edges: list[EdgeSpec] = Field(default_factory=list, max_length=MAX_EDGES)


@dataclass(frozen=True)
class Problem:
    """``warning``: listed and counted in the editor, but no bar to saving, running or
    publishing (a node connected to nothing)."""

    node: str | None
    message: str
    edge: str | None = None
    warning: bool = False

    def __str__(self) -> str:
        if self.node:
            return f"node {self.node!r}: {self.message}"
        return f"edge {self.edge}: {self.message}" if self.edge else f"graph: {self.message}"

    def as_dict(self) -> dict:
        found = {"node": self.node, "edge": self.edge, "message": self.message}
        return found | {"warning": True} if self.warning else found


class GraphError(ValueError):
    """A graph that cannot be saved; ``problems`` has one per problem, ``errors`` as text."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.errors = [str(p) for p in problems]
        super().__init__("; ".join(self.errors))


@dataclass(frozen=True)
class Node:
    id: str
    kind: NodeType
    config: NodeConfig
    inputs: dict[str, PortType]
    outputs: dict[str, PortType]
    inner: dict[str, PortType]
    parent: str | None
    policy: NodePolicy
    title: str = ""


@dataclass(frozen=True)
class Link:
    """A stored edge, or a reference (``implicit``). ``inner``: the source is a container that
    feeds a node inside it (its item, its round); such a link is no dependency."""

    source: str
    source_port: str
    target: str
    target_port: str
    implicit: bool = False
    inner: bool = False


@dataclass
class CheckedGraph:
    nodes: dict[str, Node]
    edges: list[Link]
    order: list[str]  # topological, dependencies lifted to each container's level
    _incoming: dict[str, list[Link]] = field(default_factory=dict, repr=False)
    _children: dict[str | None, list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for link in self.edges:
            self._incoming.setdefault(link.target, []).append(link)
        for node_id in self.order:
            self._children.setdefault(self.nodes[node_id].parent, []).append(node_id)

    def incoming(self, node_id: str) -> list[Link]:
        return self._incoming.get(node_id, [])

    def children(self, container: str | None) -> list[str]:
        """The nodes directly inside ``container`` (None: the top level), in order."""
        return self._children.get(container, [])

    @cached_property
    def flat(self) -> bool:
        """No containers: every result of a run is at the top level."""
        return not any(n.kind.container for n in self.nodes.values())

    def of_type(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind.type == kind]

    def ancestors(self, node_id: str) -> list[str]:
        """The containers around a node, nearest first."""
        chain, parent = [], self.nodes[node_id].parent
        while parent is not None:
            chain.append(parent)
            parent = self.nodes[parent].parent
        return chain


@dataclass
class GraphReport:
    """What the editor shows: every problem, and each node's ports (for its handles)."""

    problems: list[Problem]
    ports: dict[str, dict[str, dict[str, PortType]]]

    def as_dict(self) -> dict:
        return {"problems": [p.as_dict() for p in self.problems], "ports": self.ports}


def _pydantic_problems(node: str | None, exc: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for error in exc.errors():
        where = prefix + ".".join(str(p) for p in error["loc"])
        problems.append(Problem(node, f"{where + ': ' if where else ''}{error['msg']}"))
    return problems


def check_graph(data: Any, workspace: Any = None, user: Any = None) -> CheckedGraph:
    """Validate a graph; raise ``GraphError`` listing every problem found. With ``user``, also
    what that user may not use (a catalog model not shared with a limited member)."""
    graph, problems, _ = _check(data, workspace, user)
    if graph is None:
        raise GraphError([p for p in problems if not p.warning])
    return graph


def graph_report(data: Any, workspace: Any = None, user: Any = None) -> GraphReport:
    """Every problem of a graph and the ports of each node that could be read; never raises."""
    _, problems, ports = _check(data, workspace, user)
    return GraphReport(problems=problems, ports=ports)


def graph_size_problem(data: Any) -> Problem | None:
    try:
        size = len(json.dumps(data, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        return Problem(None, "this is not a JSON graph")
    if size > MAX_BYTES:
        return Problem(None, f"the graph is {size:,} bytes; the limit is {MAX_BYTES:,}")
    return None


def _check(data: Any, workspace: Any, user: Any):
    ports: dict[str, dict[str, dict[str, PortType]]] = {}
    too_big = graph_size_problem(data)
    if too_big:
        return None, [too_big], ports
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:
        return None, _pydantic_problems(None, exc), ports

    problems: list[Problem] = []
    nodes = _nodes(spec, workspace, user, problems)
    for node in nodes.values():
        ports[node.id] = {"inputs": node.inputs, "outputs": node.outputs, "inner": node.inner}
    known = {n.id for n in spec.nodes}
    _check_parents(spec, nodes, problems)
    if any(p.message.startswith("parent") for p in problems):
        return None, problems, ports
    links, fed = _links(spec, nodes, known, problems)
    _check_collects(nodes, problems)
    for node in nodes.values():
        for port in node.inputs:
            if (node.id, port) not in fed and "." not in port:
                problems.append(Problem(node.id, f"input {port!r} is not connected"))
    for kind in ("input", "output"):
        top = [n for n in nodes.values() if n.kind.type == kind and n.parent is None]
        if not top:
            problems.append(Problem(None, f"it needs an {kind} node"))
    order = _order(nodes, links, problems)
    warnings = _unconnected_nodes(spec, nodes, links)
    if problems:
        return None, problems + warnings, ports
    return CheckedGraph(nodes=nodes, edges=links, order=order), warnings, ports


def _unconnected_nodes(spec: GraphSpec, nodes: dict[str, Node], links: list[Link]) -> list[Problem]:
    """Nodes that nothing reads and that read nothing: they would never run. Stored edges the
    check refused still count, as their own problems already point at the node."""
    if len(nodes) < 2:
        return []
    touched = {end for e in spec.edges for end in (e.source, e.target)}
    touched |= {end for link in links for end in (link.source, link.target)}
    for node in nodes.values():
        for reference in node.kind.collects(node.config):
            touched |= {node.id, reference.partition(".")[0]}
    return [
        Problem(
            node_id, "is connected to nothing: connect it to the flow or delete it", warning=True
        )
        for node_id in nodes
        if node_id not in touched
    ]


def _nodes(spec: GraphSpec, workspace: Any, user: Any, problems: list[Problem]) -> dict:
    registry = node_types()
    nodes: dict[str, Node] = {}
    seen: set[str] = set()
    for item in spec.nodes:
        if item.id in seen:
            problems.append(Problem(item.id, "the id is used by more than one node"))
            continue
        seen.add(item.id)
        kind = registry.get(item.type)
        if kind is None:
            problems.append(Problem(item.id, f"unknown node type {item.type!r}"))
            continue
        try:
            config = kind.Config.model_validate(item.config)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(item.id, exc))
            continue
        if workspace is not None:
            problems.extend(Problem(item.id, e) for e in kind.check(config, workspace, user))
        outputs = dict(kind.output_ports(config))
        if item.policy.on_error == "branch":
            if ERROR_PORT in outputs:
                problems.append(Problem(item.id, "its error branch clashes with an output"))
            outputs[ERROR_PORT] = "text"
        unknown = sorted(set(item.policy.default) - set(outputs))
        if item.policy.on_error == "default" and unknown:
            problems.append(
                Problem(item.id, f"the default names outputs it does not have: {unknown}")
            )
        nodes[item.id] = Node(
            id=item.id,
            kind=kind,
            config=config,
            inputs=dict(kind.input_ports(config)),
            outputs=outputs,
            inner=dict(kind.inner_ports(config)) if kind.container else {},
            parent=item.parent,
            policy=item.policy,
            title=item.title,
        )
    return nodes


def _check_parents(spec: GraphSpec, nodes: dict[str, Node], problems: list[Problem]) -> None:
    by_id = {n.id: n for n in spec.nodes}
    for item in spec.nodes:
        if item.parent is None:
            continue
        parent = by_id.get(item.parent)
        if parent is None:
            problems.append(Problem(item.id, f"parent {item.parent!r} does not exist"))
            continue
        if parent.id in nodes and not nodes[parent.id].kind.container:
            problems.append(Problem(item.id, f"parent {item.parent!r} is not a container"))
            continue
        depth, seen, current = 0, {item.id}, parent
        while current is not None:
            if current.id in seen:
                problems.append(Problem(item.id, "parent containers form a cycle"))
                break
            seen.add(current.id)
            depth += 1
            current = by_id.get(current.parent) if current.parent else None
        else:
            if depth > MAX_NESTING:
                problems.append(
                    Problem(item.id, f"parent containers nest deeper than {MAX_NESTING}")
                )
        if item.id in nodes and nodes[item.id].kind.type in ("input", "output"):
            problems.append(Problem(item.id, f"an {item.type} node belongs at the top level"))


def _scope(nodes: dict[str, Node], node_id: str) -> list[str | None]:
    """The containers whose nodes ``node_id`` may read: its own, then each enclosing one."""
    chain: list[str | None] = []
    parent = nodes[node_id].parent
    while parent is not None:
        chain.append(parent)
        parent = nodes[parent].parent if parent in nodes else None
    return [nodes[node_id].parent, *chain[1:], None] if chain else [None]


def _source_port(
    nodes: dict[str, Node], source: str, port: str, target: str
) -> tuple[PortType | None, bool, str | None]:
    """The type of ``source.port`` as seen from ``target``, whether it is an inner port, or why
    ``target`` cannot read it."""
    src = nodes[source]
    scope = _scope(nodes, target)
    if source in scope:  # a container feeding a node inside it
        if port in src.inner:
            return src.inner[port], True, None
        return None, True, f"container {source!r} gives its nodes no port {port!r}"
    if src.parent not in scope:
        where = f"inside {src.parent!r}" if src.parent else "outside its container"
        return (
            None,
            False,
            (
                f"node {source!r} is {where}, where this node cannot read it"
                + (" (use the container's outputs)" if src.parent else "")
            ),
        )
    if port not in src.outputs:
        return None, False, f"node {source!r} has no output {port!r}"
    return src.outputs[port], False, None


@dataclass
class _Wiring:
    """What checking the links builds up: the links, the input ports they feed (or that a
    refused edge was meant to feed, so that the port is not also called unconnected), and the
    problems found on the way."""

    nodes: dict[str, Node]
    known: set[str]  # every node id of the spec, refused nodes included
    problems: list[Problem]
    links: list[Link] = field(default_factory=list)
    fed: set[tuple[str, str]] = field(default_factory=set)


def _links(
    spec: GraphSpec, nodes: dict[str, Node], known: set[str], problems: list[Problem]
) -> tuple[list[Link], set[tuple[str, str]]]:
    """The links, and the input ports they feed (or that a refused edge was meant to feed)."""
    wiring = _Wiring(nodes=nodes, known=known, problems=problems)
    for index, edge in enumerate(spec.edges):
        _wire_edge(wiring, edge, str(edge.id or index))
    _wire_references(wiring)
    return wiring.links, wiring.fed


def _wire_edge(wiring: _Wiring, edge: EdgeSpec, name: str) -> None:
    """A stored edge: both ends must exist and the target must be able to read the source."""
    nodes, problems = wiring.nodes, wiring.problems
    missing = [end for end in (edge.source, edge.target) if end not in wiring.known]
    if missing:
        problems.extend(
            Problem(None, f"node {end!r} does not exist (dangling edge)", name) for end in missing
        )
        return
    if edge.source not in nodes or edge.target not in nodes:
        wiring.fed.add((edge.target, edge.target_port))  # an end was refused above: say it once
        return
    out_type, inner, why = _source_port(nodes, edge.source, edge.source_port, edge.target)
    if (
        why
        and out_type is None
        and not inner
        and edge.source_port not in nodes[edge.source].outputs
    ):
        # The edge rides along so that the editor draws it as the problem it is.
        problems.append(Problem(edge.source, f"has no output port {edge.source_port!r}", name))
        wiring.fed.add((edge.target, edge.target_port))
        return
    if why:
        problems.append(Problem(edge.target, f"edge {name}: {why}"))
        wiring.fed.add((edge.target, edge.target_port))
        return
    if edge.target_port == TRIGGER:
        wiring.links.append(Link(edge.source, edge.source_port, edge.target, TRIGGER, inner=inner))
        return
    _wire_input(wiring, edge, name, out_type, inner)


def _wire_input(
    wiring: _Wiring, edge: EdgeSpec, name: str, out_type: PortType | None, inner: bool
) -> None:
    """An edge into a data input: the port must exist, take the source's type, and have no
    other edge. An edge into a port the settings no longer make is kept by the editor (nothing
    is lost silently) and named here, with its edge, until it is removed or the port is back."""
    target, port, problems = wiring.nodes[edge.target], edge.target_port, wiring.problems
    in_type = target.inputs.get(port)
    if in_type is None:
        message = (
            f"has no input port {port!r}: its settings no longer use {{{{{port}}}}}; the "
            f"connection from {edge.source}.{edge.source_port} is kept until you remove it "
            "or use the variable again"
        )
        problems.append(Problem(target.id, message, name))
        return
    if not ports_compatible(out_type, in_type):
        problems.append(
            Problem(
                target.id,
                f"input {port!r} expects {in_type} but "
                f"{edge.source!r}.{edge.source_port} gives {out_type} (type mismatch)",
            )
        )
        wiring.fed.add((target.id, port))  # wrongly connected, not unconnected
        wiring.links.append(Link(edge.source, edge.source_port, edge.target, port))
        return
    if (target.id, port) in wiring.fed:
        problems.append(Problem(target.id, f"input {port!r} has more than one edge"))
        return
    wiring.fed.add((target.id, port))
    wiring.links.append(Link(edge.source, edge.source_port, edge.target, port, inner=inner))


def _wire_references(wiring: _Wiring) -> None:
    """The implicit links of ``{{node.port}}`` references, for the ports no edge feeds."""
    nodes, problems = wiring.nodes, wiring.problems
    for node in nodes.values():
        for port in node.inputs:
            if "." not in port or (node.id, port) in wiring.fed:
                continue
            source, _, source_port = port.partition(".")
            reference = "{{" + port + "}}"
            if source == CONVERSATION and source not in wiring.known:
                continue  # a conversation variable: the executor fills it from the run
            if source not in wiring.known:
                problems.append(
                    Problem(node.id, f"{reference} refers to a node {source!r} that does not exist")
                )
                continue
            if source == node.id:
                problems.append(Problem(node.id, f"{reference} refers to the node itself"))
                continue
            if source not in nodes:
                continue  # refused above
            _, inner, why = _source_port(nodes, source, source_port, node.id)
            if why:
                problems.append(Problem(node.id, f"{reference}: {why}"))
                continue
            wiring.links.append(
                Link(source, source_port, node.id, port, implicit=True, inner=inner)
            )


def _check_collects(nodes: dict[str, Node], problems: list[Problem]) -> None:
    """A container's references to what its nodes give back (an iteration's result)."""
    for node in nodes.values():
        for reference in node.kind.collects(node.config):
            source, _, port = reference.partition(".")
            child = nodes.get(source)
            if child is None or child.parent != node.id:
                problems.append(
                    Problem(node.id, f"{{{{{reference}}}}} must name a node inside this container")
                )
            elif port not in child.outputs:
                problems.append(Problem(node.id, f"node {source!r} has no output {port!r}"))


def _order(nodes: dict[str, Node], links: list[Link], problems: list[Problem]) -> list[str]:
    """A topological order; a link into a container's node is a dependency of the container at
    the source's level (the container starts once everything its nodes read from outside is
    done)."""
    sorter: TopologicalSorter[str] = TopologicalSorter({node_id: () for node_id in nodes})
    for link in links:
        if link.inner or link.source not in nodes or link.target not in nodes:
            continue
        level, target = nodes[link.source].parent, link.target
        while nodes[target].parent != level:
            target = nodes[target].parent
        if target != link.source:
            sorter.add(target, link.source)
    try:
        return list(sorter.static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        problems.append(Problem(cycle[0], f"is part of a cycle ({' → '.join(reversed(cycle))})"))
        return []
