"""Agents as objects: creating one, saving its draft (checked against the workspace), publishing
immutable versions, deleting, and who may do each through the access layer."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from agents.access import access_agent
from agents.models import Agent, AgentVersion
from agents.services import (
    SpecRefused,
    agent_create,
    agent_delete,
    agent_draft_save,
    agent_publish,
)
from catalog.services import model_create
from knowledge.services.bases import BaseSettings, kb_create
from workspaces.models import AuditEvent
from workspaces.sharing import object_grant


@pytest.fixture
def agent(workspace, owner):
    return agent_create(workspace=workspace, name="Helper", slug="helper", actor=owner)


def _spec(model: str = "echo", **extra) -> dict:
    return {"model": model, "instructions": {"text": "Be brief."}, **extra}


def _problems(exc: SpecRefused) -> list[str]:
    return [str(p) for p in exc.problems]


def test_create_save_and_publish_make_numbered_versions(agent, owner, echo_model):
    assert agent.draft is None
    agent_draft_save(agent=agent, spec=_spec(), actor=owner)
    agent.refresh_from_db()
    assert agent.draft["model"] == "echo"
    assert agent.draft["limits"]["max_steps"] == 8  # stored with the defaults filled in

    first = agent_publish(agent=agent, actor=owner, note="first")
    assert (first.number, first.note) == (1, "first")
    # Publishing an unchanged draft publishes the latest version as it is.
    assert agent_publish(agent=agent, actor=owner).id == first.id

    agent_draft_save(agent=agent, spec=_spec(opening="Hello!"), actor=owner)
    second = agent_publish(agent=agent, actor=owner)
    agent.refresh_from_db()
    assert second.number == 2 and agent.published_version_id == second.id
    first.refresh_from_db()
    assert first.spec["opening"] == ""  # the earlier version is unchanged
    actions = list(
        AuditEvent.objects.filter(target_type="agent")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "agent.create",
        "agent.change",
        "agent.publish",
        "agent.publish",
        "agent.change",
        "agent.publish",
    ]


def test_publishing_without_a_saved_draft_is_refused(agent, owner):
    with pytest.raises(ValidationError, match="Save the agent's settings"):
        agent_publish(agent=agent, actor=owner)
    assert not AgentVersion.objects.exists()


def test_a_refused_save_keeps_the_stored_draft(agent, owner, echo_model):
    agent_draft_save(agent=agent, spec=_spec(), actor=owner)
    with pytest.raises(SpecRefused) as refused:
        agent_draft_save(
            agent=agent, spec=_spec(limits={"max_steps": 500}, strategy="psychic"), actor=owner
        )
    problems = _problems(refused.value)
    assert any(p.startswith("limits.max_steps:") for p in problems), problems
    assert any(p.startswith("strategy:") for p in problems), problems
    agent.refresh_from_db()
    assert agent.draft["limits"]["max_steps"] == 8


def test_publishing_checks_the_draft_again(agent, owner, workspace):
    house = model_create(slug="house", name="House", engine="echo", workspace=workspace)
    agent_draft_save(agent=agent, spec=_spec("house"), actor=owner)
    house.delete()
    with pytest.raises(SpecRefused) as refused:
        agent_publish(agent=agent, actor=owner)
    assert _problems(refused.value) == ["model: model 'house' is not in this workspace's catalog"]
    agent.refresh_from_db()
    assert agent.published_version is None and not AgentVersion.objects.exists()


def test_a_spec_needs_a_model_or_a_route(agent, owner):
    with pytest.raises(SpecRefused) as refused:
        agent_draft_save(agent=agent, spec={"instructions": {"text": "x"}}, actor=owner)
    assert "choose a model or a route (one of them)" in _problems(refused.value)


def test_a_model_outside_the_workspace_is_refused(agent, owner, outsider):
    from workspaces.models import Workspace

    other = Workspace.objects.get(slug="other")
    model_create(slug="private", name="Private", engine="echo", workspace=other)
    with pytest.raises(SpecRefused) as refused:
        agent_draft_save(agent=agent, spec=_spec("private"), actor=owner)
    assert _problems(refused.value) == ["model: model 'private' is not in this workspace's catalog"]


def test_a_model_the_user_may_not_use_is_refused(workspace, owner, make_member):
    model_create(slug="house", name="House", engine="echo", workspace=workspace)
    limited = make_member("editor", limited=True)
    agent = agent_create(workspace=workspace, name="Mine", slug="mine", actor=limited)
    # The limited member was granted their own agent, but not the workspace's model.
    assert access_agent(limited, workspace, "mine", "change") == agent
    with pytest.raises(SpecRefused) as refused:
        agent_draft_save(agent=agent, spec=_spec("house"), actor=limited)
    assert _problems(refused.value) == ["model: model 'house' is not in this workspace's catalog"]
    # The owner may use it.
    agent_draft_save(agent=agent, spec=_spec("house"), actor=owner)


def test_tools_are_checked_by_name_config_and_workspace(agent, owner, echo_model):
    spec = _spec(
        tools=[
            {"tool": "teleport"},
            {"tool": "knowledge_search", "config": {"top_k": 3}},
            {"tool": "knowledge_search", "name": "other", "config": {"knowledge_base": "nope"}},
        ]
    )
    with pytest.raises(SpecRefused) as refused:
        agent_draft_save(agent=agent, spec=spec, actor=owner)
    where = {p.where: p.message for p in refused.value.problems}
    assert where[("tools", 0, "tool")] == "there is no tool 'teleport'"
    assert "knowledge_base: Field required" in where[("tools", 1, "config")]
    assert where[("tools", 2, "config")] == "knowledge base 'nope' is not in this workspace"


def test_a_tool_with_its_base_is_kept(agent, owner, workspace, echo_model):
    kb_create(workspace=workspace, slug="handbook", values=BaseSettings(name="Handbook"))
    use = {"tool": "knowledge_search", "config": {"knowledge_base": "handbook"}}
    agent_draft_save(agent=agent, spec=_spec(tools=[use | {"needs_approval": True}]), actor=owner)
    agent.refresh_from_db()
    assert agent.draft["tools"][0]["needs_approval"] is True


def test_an_unusable_library_prompt_is_refused(agent, owner, echo_model):
    spec = _spec(instructions={"library_prompt": "missing"})
    with pytest.raises(SpecRefused) as refused:
        agent_draft_save(agent=agent, spec=spec, actor=owner)
    assert _problems(refused.value) == [
        "instructions.library_prompt: prompt 'missing' has no approved version"
    ]


def test_a_taken_slug_is_refused(agent, workspace, owner):
    with pytest.raises(ValidationError, match="already named 'helper'"):
        agent_create(workspace=workspace, name="Again", slug="helper", actor=owner)


def test_delete_removes_the_agent_and_its_versions(agent, owner, echo_model):
    agent_draft_save(agent=agent, spec=_spec(), actor=owner)
    agent_publish(agent=agent, actor=owner)
    agent_delete(agent=agent, actor=owner)
    assert not Agent.objects.exists() and not AgentVersion.objects.exists()
    assert AuditEvent.objects.filter(action="agent.delete").count() == 1


# --- access -----------------------------------------------------------------------------------


def test_a_viewer_reads_but_may_not_change(agent, workspace, viewer):
    assert access_agent(viewer, workspace, "helper", "view") == agent
    for action in ("change", "publish", "delete", "share"):
        with pytest.raises(PermissionDenied):
            access_agent(viewer, workspace, "helper", action)


def test_an_outsider_gets_404(agent, workspace, outsider):
    with pytest.raises(Http404):
        access_agent(outsider, workspace, "helper", "view")


def test_a_grant_lets_a_limited_member_in(agent, workspace, owner, make_member):
    limited = make_member("viewer", limited=True)
    with pytest.raises(Http404):
        access_agent(limited, workspace, "helper", "view")
    object_grant(obj=agent, subject=limited, level="edit", actor=owner)
    assert access_agent(limited, workspace, "helper", "change") == agent
    with pytest.raises(PermissionDenied):
        access_agent(limited, workspace, "helper", "delete")
