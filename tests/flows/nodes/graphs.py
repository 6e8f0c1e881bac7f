"""Small graphs around the node under test, and running them through the real worker."""

from __future__ import annotations

from typing import Any

from flows.models import Run, RunSource
from flows.services import flow_create, flow_publish, run_create
from tests.flows.helpers import wait_for_run


def node(node_id: str, type_: str, config: dict) -> dict:
    return {"id": node_id, "type": type_, "config": config, "position": {"x": 0, "y": 0}}


def edge(source: str, target: str) -> dict:
    """An edge from ``"node.port"`` to ``"node.port"``."""
    source_node, source_port = source.split(".", 1)
    target_node, target_port = target.split(".", 1)
    return {
        "id": f"{source}->{target}",
        "source": source_node,
        "source_port": source_port,
        "target": target_node,
        "target_port": target_port,
    }


def graph(
    *nodes: dict,
    edges: list[dict],
    inputs: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
) -> dict:
    """``nodes`` between ``input_1`` (fields ``inputs``) and ``output_1`` (fields ``outputs``)."""

    def fields(spec: dict[str, str]) -> list[dict]:
        return [{"name": name, "type": type_} for name, type_ in spec.items()]

    return {
        "nodes": [
            node("input_1", "input", {"fields": fields(inputs or {"message": "text"})}),
            *nodes,
            node("output_1", "output", {"fields": fields(outputs or {"text": "text"})}),
        ],
        "edges": edges,
    }


def run_graph(*, workspace, owner, graph: dict, inputs: dict[str, Any]) -> Run:
    """Publish ``graph`` as a flow, run it on the worker and wait for the run to end."""
    flow = flow_create(
        workspace=workspace, slug="under-test", name="Under test", graph=graph, user=owner
    )
    flow = flow_publish(flow=flow, user=owner)
    run = run_create(
        flow=flow, version=flow.published_version, inputs=inputs, source=RunSource.STUDIO
    )
    return wait_for_run(run.id)
