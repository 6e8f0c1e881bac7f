"""Writes of agents: create, save the draft, publish, delete. Each is audited inside its own
transaction; who may make them is checked by the caller through ``agents.access``.

A draft is checked before it is stored (the spec's schema, then what it names in the
workspace: the model or route, the library prompt, each tool and its settings), so a stored
draft is always one that could be published; a refused save stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from pydantic import ValidationError as SchemaError

from agents.models import Agent, AgentVersion
from agents.spec import AgentSpec
from agents.tools import tools
from catalog.selectors.prompts import prompt_version_resolve
from conversations.selectors import chat_settings_of
from conversations.services import chat_settings_change
from flows.models import Flow, FlowKind
from flows.nodes.model_call import target_problems
from flows.services import flow_delete, flow_publish, flow_version_save
from studio import access
from studio.slugs import slug_from, slug_unique
from workspaces.audit import audit_record
from workspaces.models import Workspace
from workspaces.sharing import creator_grant


@dataclass(frozen=True)
class Problem:
    """One reason a spec is refused; ``where`` is its path in the spec (``("limits",
    "max_steps")``, ``("tools", 0, "config")``), empty for the spec as a whole."""

    where: tuple[str | int, ...]
    message: str

    def __str__(self) -> str:
        path = ".".join(str(p) for p in self.where)
        return f"{path}: {self.message}" if path else self.message


class SpecRefused(ValidationError):
    """The spec was not stored; ``problems`` says why, each at its place in the spec."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__([str(p) for p in problems])


def _schema_problems(exc: SchemaError) -> list[Problem]:
    problems = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        problems.append(Problem(tuple(error["loc"]), message))
    return problems


def _tool_problems(spec: AgentSpec, workspace: Workspace, user: Any) -> list[Problem]:
    registry = tools()
    problems: list[Problem] = []
    for index, use in enumerate(spec.tools):
        tool = registry.get(use.tool)
        if tool is None:
            problems.append(Problem(("tools", index, "tool"), f"there is no tool {use.tool!r}"))
            continue
        try:
            config = tool.Config.model_validate(use.config)
        except SchemaError as exc:
            for p in _schema_problems(exc):
                problems.append(Problem(("tools", index, "config"), str(p)))
            continue
        for message in tool.check(config, workspace, user):
            problems.append(Problem(("tools", index, "config"), message))
    return problems


def _prompt_problems(spec: AgentSpec, workspace: Workspace, user: Any) -> list[Problem]:
    wanted = spec.instructions
    if not wanted.library_prompt:
        return []
    version = prompt_version_resolve(workspace.id, wanted.library_prompt, wanted.library_version)
    # One answer for a missing prompt and one the user may not use: no probing for slugs.
    if version is None or (user is not None and not access.has_perm(user, version.prompt, "use")):
        which = (
            f"published version {wanted.library_version}"
            if wanted.library_version
            else "approved version"
        )
        return [
            Problem(
                ("instructions", "library_prompt"),
                f"prompt {wanted.library_prompt!r} has no {which}",
            )
        ]
    return []


def agent_spec_check(*, spec: Any, workspace: Workspace, user: Any = None) -> dict:
    """``spec`` as it is stored (defaults filled in), if it is an ``AgentSpec`` whose model or
    route, library prompt and tools are in ``workspace`` and usable by ``user`` (None: not
    checked for a person); SpecRefused with every problem otherwise."""
    try:
        parsed = AgentSpec.model_validate(spec)
    except SchemaError as exc:
        raise SpecRefused(_schema_problems(exc)) from None
    problems = [
        Problem(("route",) if parsed.route else ("model",), message)
        for message in target_problems(parsed, workspace, user)
    ]
    problems += _prompt_problems(parsed, workspace, user)
    problems += _tool_problems(parsed, workspace, user)
    if problems:
        raise SpecRefused(problems)
    return parsed.model_dump(mode="json")


def agent_create(
    *,
    workspace: Workspace,
    name: str,
    slug: str,
    description: str = "",
    spec: Any = None,
    actor=None,
) -> Agent:
    """A new agent; ``spec`` (optional) becomes its draft after the same checks as a save. A
    taken slug is a ValidationError. A limited member is granted what they create."""
    draft = agent_spec_check(spec=spec, workspace=workspace, user=actor) if spec else None
    if Agent.objects.filter(workspace=workspace, slug=slug).exists():
        raise ValidationError(f"An agent of this workspace is already named {slug!r}.")
    with transaction.atomic():
        agent = Agent.objects.create(
            workspace=workspace,
            slug=slug,
            name=name,
            description=description,
            draft=draft,
            created_by=actor,
        )
        audit_record(
            workspace=workspace,
            actor=actor,
            action="agent.create",
            target=agent,
            after={"slug": slug, "name": name},
        )
        creator_grant(obj=agent, user=actor)
    return agent


def agent_draft_save(
    *,
    agent: Agent,
    spec: Any,
    actor=None,
    name: str | None = None,
    description: str | None = None,
) -> Agent:
    """Store ``spec`` as the agent's draft (and its name and description when given).
    SpecRefused, with nothing stored, when the spec does not pass ``agent_spec_check`` for
    ``actor``. The published version keeps serving until the draft is published."""
    draft = agent_spec_check(spec=spec, workspace=agent.workspace, user=actor)
    with transaction.atomic():
        locked = Agent.objects.select_for_update().get(id=agent.id)
        before = {"name": locked.name, "description": locked.description, "draft": locked.draft}
        locked.draft = draft
        if name is not None:
            locked.name = name
        if description is not None:
            locked.description = description
        locked.save(update_fields=["draft", "name", "description", "updated_at"])
        audit_record(
            workspace=agent.workspace_id,
            actor=actor,
            action="agent.change",
            target=locked,
            before=before,
            after={"name": locked.name, "description": locked.description, "draft": draft},
        )
    agent.draft, agent.name, agent.description = locked.draft, locked.name, locked.description
    return agent


def agent_publish(*, agent: Agent, actor=None, note: str = "") -> AgentVersion:
    """Publish the draft: as the next numbered version when it differs from the latest, else
    the latest as it is. The draft is checked again (what it names may have gone since it was
    saved); SpecRefused, nothing published, if it no longer passes. ValidationError when the
    agent has no draft yet."""
    with transaction.atomic():
        # The stored draft, not the caller's copy: another save may have come in between.
        locked = Agent.objects.select_for_update().get(id=agent.id)
        if locked.draft is None:
            raise ValidationError("Save the agent's settings before publishing it.")
        spec = agent_spec_check(spec=locked.draft, workspace=agent.workspace, user=actor)
        before = locked.published_version.number if locked.published_version else None
        latest = locked.versions.order_by("-number").first()
        if latest is not None and latest.spec == spec:
            version = latest
        else:
            number = (locked.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            version = AgentVersion.objects.create(
                agent=locked, number=number, spec=spec, note=note[:500], created_by=actor
            )
        locked.published_version = version
        locked.flow = _served_flow_publish(agent=locked, version=version, actor=actor)
        locked.save(update_fields=["published_version", "flow", "updated_at"])
        audit_record(
            workspace=agent.workspace_id,
            actor=actor,
            action="agent.publish",
            target=locked,
            before={"published_version": before},
            after={
                "published_version": version.number,
                "flow": locked.flow.slug,
                **({"note": note} if note else {}),
            },
        )
    agent.published_version, agent.flow = version, locked.flow
    return version


def served_graph(agent_slug: str, number: int) -> dict:
    """The graph of an agent's backing flow: the message in, the agent's version ``number``
    (given the conversation the run belongs to), its answer out as ``text``."""

    def place(x: int) -> dict:
        return {"x": x, "y": 80}

    return {
        "nodes": [
            {
                "id": "input_1",
                "type": "input",
                "position": place(0),
                "config": {"fields": [{"name": "message", "type": "text", "label": "Message"}]},
            },
            {
                "id": "agent_1",
                "type": "agent",
                "position": place(280),
                "config": {"agent": agent_slug, "version": number},
            },
            {
                "id": "output_1",
                "type": "output",
                "position": place(560),
                "config": {"fields": [{"name": "text", "type": "text", "label": "Answer"}]},
            },
        ],
        "edges": [
            {
                "id": "e1",
                "source": "input_1",
                "source_port": "message",
                "target": "agent_1",
                "target_port": "message",
            },
            {
                "id": "e2",
                "source": "agent_1",
                "source_port": "answer",
                "target": "output_1",
                "target_port": "text",
            },
        ],
    }


def agent_backing_flow(*, agent: Agent, actor=None) -> Flow:
    """The agent's backing flow, made when it has none (kind ``agent``, under a free
    ``agent-<slug>`` slug, unpublished: the first publish or the builder's preview makes it),
    its name and description kept as the agent's. The caller holds the agent's row; the new
    flow is stored on ``agent.flow``, not saved on the agent's row."""
    flow = agent.flow
    if flow is None:
        taken = Flow.objects.filter(workspace_id=agent.workspace_id)
        flow = Flow.objects.create(
            workspace_id=agent.workspace_id,
            kind=FlowKind.AGENT,
            slug=slug_unique(slug_from(f"agent-{agent.slug}"), taken),
            name=agent.name,
            description=agent.description,
            created_by=actor,
        )
        agent.flow = flow
    elif (flow.name, flow.description) != (agent.name, agent.description):
        flow.name, flow.description = agent.name, agent.description
        flow.save(update_fields=["name", "description", "updated_at"])
    return flow


def _served_flow_publish(*, agent: Agent, version: AgentVersion, actor) -> Flow:
    """The agent's backing flow (made on the first publish, kind ``agent``, under a free
    ``agent-<slug>`` slug), serving ``version``: its graph is checked and published as flows'
    are, and its chat greets as the spec says. Runs in the caller's transaction, which holds
    the agent's row."""
    flow = agent_backing_flow(agent=agent, actor=actor)
    graph = served_graph(agent.slug, version.number)
    current = flow.published_version
    if current is None or current.graph != graph:
        served = flow_version_save(
            flow=flow, graph=graph, user=actor, note=f"Agent version {version.number}"
        )
        flow_publish(flow=flow, version=served, user=actor)
    spec = AgentSpec.model_validate(version.spec)
    greeting = chat_settings_of(flow)
    if (greeting.opening, greeting.suggestions) != (spec.opening, spec.suggestions):
        chat_settings_change(
            flow=flow, opening=spec.opening, suggestions=spec.suggestions, user=actor
        )
    return flow


def agent_delete(*, agent: Agent, actor=None) -> None:
    """Delete an agent with its versions and grants, and its backing flow with that flow's
    runs and conversations."""
    with transaction.atomic():
        if agent.flow is not None:
            flow_delete(flow=agent.flow, user=actor)
        audit_record(
            workspace=agent.workspace_id,
            actor=actor,
            action="agent.delete",
            target=agent,
            before={
                "slug": agent.slug,
                "name": agent.name,
                "published_version": (
                    agent.published_version.number if agent.published_version else None
                ),
            },
        )
        agent.delete()
