"""Reads of flows and runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from flows.models import Flow, FlowKind, FlowVersion, NodeResult, NodeStatus, Run
from flows.nodes import node_types
from flows.schema import CheckedGraph, check_graph


def flows_for_workspace(workspace_id: int) -> QuerySet[Flow]:
    """The workspace's flows, not the hidden ones that serve published agents."""
    return Flow.objects.filter(workspace_id=workspace_id, kind=FlowKind.FLOW).select_related(
        "published_version"
    )


def published_flows(workspace_id: int) -> QuerySet[Flow]:
    return flows_for_workspace(workspace_id).filter(published_version__isnull=False)


def runs_for_flow(flow: Flow, limit: int = 50) -> list[Run]:
    return list(flow.runs.select_related("flow_version")[:limit])


def run_nodes(run: Run) -> QuerySet[NodeResult]:
    return run.node_results.all()


def people_waiting_types() -> list[str]:
    """The node types whose waits a person answers (``NodeType.pauses_run``)."""
    return [name for name, kind in node_types().items() if kind.pauses_run]


def run_waiting_for_people(run: Run) -> list[NodeResult]:
    """The run's nodes that wait for a person's answer (human input, an approval)."""
    waiting = run.node_results.filter(
        status=NodeStatus.WAITING, node_type__in=people_waiting_types()
    )
    return list(waiting)


_GRAPHS: dict[int, CheckedGraph] = {}
_GRAPHS_KEPT = 256


def version_graph(version_id: int, stored: Any = None) -> CheckedGraph:
    """The checked graph of a saved version, kept per process: a version never changes once
    saved. ``stored``: its graph as the caller read it, else it is read here on a miss."""
    graph = _GRAPHS.get(version_id)
    if graph is None:
        if stored is None:
            stored = FlowVersion.objects.values_list("graph", flat=True).get(id=version_id)
        graph = check_graph(stored)
        if len(_GRAPHS) >= _GRAPHS_KEPT:
            _GRAPHS.pop(next(iter(_GRAPHS)), None)
        _GRAPHS[version_id] = graph
    return graph


@dataclass(frozen=True)
class ChatBinding:
    """How a chat message enters a flow, and which nodes' tokens make up the answer."""

    input: str
    answer_nodes: frozenset[str]


def chat_binding(version: FlowVersion) -> ChatBinding:
    """The text input a chat message feeds (``message`` if there is one, else the first text
    field) and the nodes wired straight into the output; ValidationError if it takes no text."""
    graph = version_graph(version.id, version.graph)
    fields = [f for node in graph.of_type("input") for f in node.config.fields]
    text_fields = [f for f in fields if f.type in ("text", "any")]
    if not text_fields:
        raise ValidationError("This flow takes no text input, so it cannot serve chat.")
    target = next((f for f in text_fields if f.name == "message"), text_fields[0])
    # The nodes wired into the output, looking through the nodes that join branches (their
    # sources stream the tokens: one answer per run, from whichever branch was taken).
    answer: set[str] = set()
    todo = [e.source for n in graph.of_type("output") for e in graph.incoming(n.id)]
    while todo:
        source = todo.pop()
        if source in answer:
            continue
        answer.add(source)
        if graph.nodes[source].kind.merges:
            todo.extend(e.source for e in graph.incoming(source))
    return ChatBinding(input=target.name, answer_nodes=frozenset(answer))


def published_flow(workspace_id: int, slug: str) -> Flow | None:
    """The workspace's flow of that slug if it has a published version (fetched with it)."""
    return published_flows(workspace_id).filter(slug=slug).first()


def run_by_id(run_id: UUID | str) -> Run | None:
    """The run of that id, or None once it was deleted."""
    return Run.objects.filter(id=run_id).first()


def run_answer_text(run: Run) -> str:
    """The run's answer as text, as the APIs that answer in text give it: its ``text`` output,
    else its first text output, else all of its outputs as JSON."""
    if "text" in run.outputs:
        return str(run.outputs["text"] or "")
    values = [v for v in run.outputs.values() if isinstance(v, str)]
    return values[0] if values else json.dumps(run.outputs)
