"""The builder's live preview: a studio run of the agent's saved draft, on its backing flow.

The preview never runs a spec the browser sends: it runs ``Agent.draft`` as stored (checked
again here, as publishing checks it), through the agent node's ``draft`` option, which runs a
draft only in a studio run of the agent's own backing flow by someone who may change it
(``agents/nodes/agent.py``). The run's events (steps, thoughts, tool calls and results,
approvals, the answer's tokens) stream over ``/ws/runs/<id>/`` as any run's do.

Who may preview is checked by the caller through ``agents.access`` (``change``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from agents.models import Agent
from agents.services import agent_backing_flow, agent_spec_check, served_graph
from flows.models import FlowVersion, Run, RunSource, VersionKind
from flows.schema import check_graph
from flows.services.runs import run_create

AGENT_NODE = "agent_1"  # the agent's node in ``served_graph``


def preview_graph(agent_slug: str) -> dict:
    """The backing flow's graph with its agent node running the draft."""
    graph = served_graph(agent_slug, 1)
    for node in graph["nodes"]:
        if node["id"] == AGENT_NODE:
            node["config"] = {"agent": agent_slug, "draft": True}
    return graph


def _snapshot(agent: Agent, graph: dict, user: Any) -> FlowVersion:
    """An unnumbered draft version of the backing flow holding ``graph``: made the first time,
    reused after (the preview graph only changes with the agent's slug). Takes the agent's
    row lock, so two first previews make one backing flow."""
    with transaction.atomic():
        locked = Agent.objects.select_for_update().get(id=agent.id)
        had = locked.flow_id
        flow = agent_backing_flow(agent=locked, actor=user)
        if had != flow.id:
            locked.save(update_fields=["flow", "updated_at"])
        agent.flow = flow
        found = flow.versions.filter(kind=VersionKind.DRAFT, graph=graph).first()
        if found is not None:
            return found
        return FlowVersion.objects.create(
            flow=flow, kind=VersionKind.DRAFT, number=None, graph=graph, created_by=user
        )


def agent_preview_run(
    *, agent: Agent, user: Any, message: str, history: list[dict] | None = None
) -> Run:
    """Start a studio run of ``agent``'s saved draft answering ``message``, after ``history``
    (the preview's earlier turns, ``{"role", "content"}``). ValidationError when the agent has
    no saved draft; SpecRefused (each problem listed) when the draft no longer passes its
    check; ValidationError when the history is malformed or too long."""
    if agent.draft is None:
        raise ValidationError("Save the agent's settings before trying it in the preview.")
    agent_spec_check(spec=agent.draft, workspace=agent.workspace, user=user)
    graph = preview_graph(agent.slug)
    check_graph(graph, agent.workspace, user)
    version = _snapshot(agent, graph, user)
    return run_create(
        flow=agent.flow,
        version=version,
        inputs={"message": message},
        source=RunSource.STUDIO,
        user=user,
        history=history or [],
    )
