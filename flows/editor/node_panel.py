"""The settings panel of a node in a graph: its form (``flows.editor.node_forms``) filled from the
graph or from a posted form, its settings checked as the graph check will, the catalog entries
its pickers offer, and the outputs its variable pickers list."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from catalog.models import Route
from catalog.selectors.credentials import credentials_for_requests
from catalog.selectors.playground import playground_models
from flows.editor.node_forms import (
    CATALOG_FIELDS,
    NodeForm,
    Parsed,
    Reference,
    build_form,
    validation_errors,
)
from flows.editor.palette import node_ports
from flows.editor.redaction import config_redacted
from flows.nodes import node_types
from flows.nodes.base import NodeType
from flows.schema import TRIGGER, NodePolicy, graph_report
from flows.variables import CONVERSATION, NAME, PREFIX
from knowledge.selectors import knowledge_bases_visible
from studio import access

# Outputs the picker may wire to a short {{name}}: the ports a template makes take text.
WIRABLE = ("text", "any")
NODE_PORT = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)\.[A-Za-z_][A-Za-z0-9_]*")
# The types a variable assigner gives its values (``ValueType``).
VALUE_TYPES = ("text", "number", "boolean", "json")


def catalog_choices(user, workspace) -> dict[str, list[tuple[str, str]]]:
    """The catalog entries ``user`` may use in ``workspace``, for the catalog pickers."""
    routes = access.scope(user, workspace.id, Route.objects.all(), "use").order_by("name")
    return {
        # Names and allowed hosts only: the value never leaves the credential.
        "credential": [
            (c.name, f"{c.name} (to {', '.join(c.allowed_hosts)})")
            for c in credentials_for_requests(workspace.id)
        ],
        "model": [(m.slug, f"{m.name} ({m.slug})") for m in playground_models(user, workspace.id)],
        "route": [(r.slug, f"{r.name} ({r.slug})") for r in routes],
        "knowledge_base": [
            (b.slug, f"{b.name} ({b.slug})")
            for b in knowledge_bases_visible(user, workspace.id, "use").order_by("name")
        ],
    }


# --- what a node may read -------------------------------------------------------------------


def _mentioned(value: Any) -> set[str]:
    """The node ids a config names in ``{{node_id.port}}`` or a bare ``node_id.port``."""
    if isinstance(value, str):
        return {match.group(1) for match in NODE_PORT.finditer(value)}
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*(_mentioned(item) for item in value)) if value else set()
    return set()


def references(graph: dict, ports: dict[str, dict], node_id: str) -> list[Reference]:
    """The outputs ``node_id`` may read, for its variable pickers: those of the nodes upstream
    of it (through edges and references, and upstream of its containers) that it can see (its
    own container's and the enclosing ones', as the graph check allows), then its containers'
    inner ports, nearest first; a container also reads what the nodes inside it give."""
    nodes = {
        n["id"]: n
        for n in graph.get("nodes", [])
        if isinstance(n, dict) and isinstance(n.get("id"), str)
    }
    if node_id not in nodes:
        return []
    parent = {nid: n.get("parent") for nid, n in nodes.items()}
    sources: dict[str, set[str]] = defaultdict(set)
    for edge in graph.get("edges", []):
        if isinstance(edge, dict) and edge.get("target") in nodes and edge.get("source") in nodes:
            sources[edge["target"]].add(edge["source"])
    for nid, own in ports.items():
        for port in own.get("inputs", {}):
            source = port.split(".", 1)[0] if "." in port else None
            if source in nodes and nid in nodes:
                sources[nid].add(source)
    for nid, node in nodes.items():
        # A config that does not validate has no ports yet; its references still count.
        if nid not in ports:
            sources[nid].update(s for s in _mentioned(node.get("config")) if s in nodes)

    around: list[str] = []
    current = parent.get(node_id)
    while current in nodes and current not in around:
        around.append(current)
        current = parent.get(current)

    upstream: set[str] = set()
    stack = [node_id, *around]
    while stack:
        for source in sources.get(stack.pop(), ()):
            if source not in upstream:
                upstream.add(source)
                stack.append(source)
    visible_levels = {parent.get(node_id), *around, None}

    def label(nid: str) -> str:
        title = nodes[nid].get("title")
        return f"{title} ({nid})" if title else nid

    found: list[Reference] = []
    for nid in nodes:  # graph order reads more naturally than discovery order
        if nid in upstream and nid != node_id and nid not in around:
            if parent.get(nid) in visible_levels:
                for port, type_ in ports.get(nid, {}).get("outputs", {}).items():
                    found.append(Reference(f"{nid}.{port}", type_, label(nid)))
    for container in around:
        for port, type_ in ports.get(container, {}).get("inner", {}).items():
            where = f"{label(container)}, inside"
            found.append(Reference(f"{container}.{port}", type_, where, wirable=False))
    for nid in nodes:
        if parent.get(nid) == node_id:
            for port, type_ in ports.get(nid, {}).get("outputs", {}).items():
                where = f"{label(nid)}, inside"
                found.append(Reference(f"{nid}.{port}", type_, where, wirable=False))
    return _short_names(graph, node_id, found) + conversation_references(graph)


# How the picker describes a conversation variable: the conversation keeps it between turns.
KEPT = "the conversation, kept between turns"


def conversation_references(graph: dict) -> list[Reference]:
    """The conversation variables the graph's conversation-scope variable assigners write, in
    graph order, offered to every node as ``{{conversation.<name>}}``: kept between turns, any
    node may read one (empty until a turn writes it). None when a node is named
    ``conversation``: its outputs are what ``{{conversation.x}}`` then reads."""
    nodes = [n for n in graph.get("nodes", []) if isinstance(n, dict)]
    if any(n.get("id") == CONVERSATION for n in nodes):
        return []
    written: dict[str, str] = {}
    for node in nodes:
        config = node.get("config")
        if node.get("type") != "variable_assigner" or not isinstance(config, dict):
            continue
        if config.get("scope") != CONVERSATION or not isinstance(config.get("variables"), list):
            continue
        for assignment in config["variables"]:
            name = assignment.get("name") if isinstance(assignment, dict) else None
            if isinstance(name, str) and NAME.match(name):
                type_ = assignment.get("type")
                written.setdefault(name, type_ if type_ in VALUE_TYPES else "text")
    return [
        Reference(f"{PREFIX}{name}", type_, KEPT, wirable=False, kept=True)
        for name, type_ in written.items()
    ]


def _short_names(graph: dict, node_id: str, found: list[Reference]) -> list[Reference]:
    """Each reference with the short ``{{port}}`` the picker writes: the input port an edge
    already carries it into, else its own port name, wired by the canvas as it is picked (a
    text output, a name no edge into the node uses and no other offered output shares). The
    rest keep ``{{node_id.port}}``, which wires itself."""
    wired: dict[str, str] = {}
    fed: set[str] = set()
    for edge in graph.get("edges", []):
        if isinstance(edge, dict) and edge.get("target") == node_id:
            port = edge.get("target_port")
            if isinstance(port, str) and port != TRIGGER and "." not in port:
                wired.setdefault(f"{edge.get('source')}.{edge.get('source_port')}", port)
                fed.add(port)
    names = Counter(ref.text.partition(".")[2] for ref in found if ref.text not in wired)
    shown = []
    for ref in found:
        name = ref.text.partition(".")[2]
        if ref.text in wired:
            ref = replace(ref, port=wired[ref.text])
        elif ref.wirable and ref.type in WIRABLE and name not in fed and names[name] == 1:
            ref = replace(ref, port=name, wire=True)
        shown.append(ref)
    return shown


# --- the panel of a node in a graph ---------------------------------------------------------


@dataclass
class Panel:
    """What the settings panel shows for a node of a graph, and (after a post) the settings
    the canvas applies to it."""

    node_id: str
    node: dict | None
    form: NodeForm | None
    settings: dict | None = None


def _find(graph: dict, node_id: str) -> dict | None:
    for node in graph.get("nodes") or []:
        if isinstance(node, dict) and node.get("id") == node_id:
            return node
    return None


def node_kind(graph: dict, node_id: str) -> NodeType | None:
    node = _find(graph, node_id)
    return node_types().get(node.get("type")) if node else None


def _graph_ports(graph: dict, report_ports: dict) -> dict[str, dict]:
    """Every node's ports: the report's, else what its (invalid) config suggests."""
    registry = node_types()
    ports = dict(report_ports)
    for node in graph.get("nodes") or []:
        if not isinstance(node, dict) or node.get("id") in ports:
            continue
        kind = registry.get(node.get("type"))
        found = kind and node_ports(kind, node.get("config") or {}, node.get("policy") or {})
        if found:
            ports[node["id"]] = found
    return ports


def _catalog_field(config: Any, message: str) -> str | None:
    """The catalog picker whose chosen entry a check message names (``model 'x' is …``)."""
    for name in CATALOG_FIELDS:
        value = getattr(config, name, None)
        if value and f"'{value}'" in message:
            return f"config.{name}"
    return None


@dataclass
class Checked:
    config: Any
    policy: Any
    errors: dict[str, list[str]]
    general: list[str]
    valid_config: bool


def settings_check(
    kind: NodeType, config: Any, policy: Any, *, workspace, user, errors=None
) -> Checked:
    """A node's settings validated as the graph check will: cleaned where valid (kept as given
    where not), with the errors by input name and those about the node as a whole."""
    errors = {k: list(v) for k, v in (errors or {}).items()}
    general: list[str] = []

    def add(exc: ValidationError, prefix: str) -> None:
        found, whole = validation_errors(exc, prefix)
        for key, messages in found.items():
            errors.setdefault(key, []).extend(messages)
        general.extend(whole)

    valid_config = False
    try:
        checked = kind.Config.model_validate(config)
    except ValidationError as exc:
        add(exc, "config")
    else:
        valid_config = True
        config = checked.model_dump(mode="json")
        for message in kind.check(checked, workspace, user):
            where = _catalog_field(checked, message)
            if where:
                errors.setdefault(where, []).append(message)
            else:
                general.append(message)
    try:
        policy = NodePolicy.model_validate(policy).model_dump(mode="json")
    except ValidationError as exc:
        add(exc, "policy")
    return Checked(config, policy, errors, general, valid_config)


def node_panel(
    *, graph: dict, node_id: str, workspace, user, parsed: Parsed | None = None
) -> Panel:
    """The panel of ``node_id`` in ``graph``: its settings (``parsed`` from a posted form, else
    the graph's) checked, its problems in the graph, and the outputs it may read."""
    node = _find(graph, node_id)
    kind = node_kind(graph, node_id)
    if node is None or kind is None:
        return Panel(node_id=node_id, node=node, form=None)
    if parsed is None:
        # A secret typed in before that was refused is not shown (nor sent back on save).
        config = config_redacted(kind, node.get("config") or {})
        policy = node.get("policy") or {}
        title = node.get("title") or ""
        raw: dict[str, str] = {}
        checked = settings_check(kind, config, policy, workspace=workspace, user=user)
    else:
        title, raw = parsed.title, parsed.raw
        checked = settings_check(
            kind, parsed.config, parsed.policy, workspace=workspace, user=user, errors=parsed.errors
        )
        node.update(config=checked.config, policy=checked.policy, title=title)
    report = graph_report(graph, workspace, user)
    ports = _graph_ports(graph, report.ports)
    # The report repeats what the form shows inline (a config it could not read, a catalog
    # check): list only the rest, the node's place in the graph.
    shown = {m for messages in checked.errors.values() for m in messages} | set(checked.general)
    problems = [
        p.message
        for p in report.problems
        if p.node == node_id and checked.valid_config and p.message not in shown
    ]
    form = build_form(
        node_id=node_id,
        kind=kind,
        title=title,
        config=checked.config,
        policy=checked.policy,
        catalog=catalog_choices(user, workspace),
        picks=kind.pickers(checked.config, workspace, user),
        references=references(graph, ports, node_id),
        errors=checked.errors,
        form_errors=checked.general,
        raw=raw,
        problems=problems,
    )
    settings = None
    if parsed is not None:
        settings = {
            "node": node_id,
            # What the canvas keeps (and autosaves): a secret just typed into a header is
            # refused by the form's check and does not reach the draft.
            "config": config_redacted(kind, checked.config),
            "policy": checked.policy,
            "title": title,
            "ports": ports.get(node_id),
            "valid": form.valid,
        }
    return Panel(node_id=node_id, node=node, form=form, settings=settings)
