"""Per-object grants: a limited member sees only what is shared with them (or their team), the
access page shows who can reach an object and why, and grants die with their object."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from catalog.models import Model, ModelGroupObjectPermission, ModelUserObjectPermission
from catalog.services import model_create, model_delete
from flows.demo import assistant_graph
from flows.models import Flow, FlowGroupObjectPermission, FlowUserObjectPermission
from flows.services import flow_create, flow_delete
from studio import access
from workspaces.models import ApiKeyGroupObjectPermission, ApiKeyUserObjectPermission
from workspaces.services import api_key_create, team_create, team_member_add, workspace_create
from workspaces.sharing import object_grant, object_revoke, who_can_access


@pytest.fixture
def model(db):
    return model_create(slug="echo", name="Echo", engine="echo")


@pytest.fixture
def flows(workspace, owner, model):
    return [
        flow_create(
            workspace=workspace,
            slug=slug,
            name=slug.title(),
            graph=assistant_graph(model="echo"),
            user=owner,
        )
        for slug in ("billing", "support", "research")
    ]


def test_a_limited_editor_sees_and_edits_only_the_flows_shared_with_them(
    client, flows, owner, make_member
):
    editor = make_member("editor", limited=True)
    billing, support, research = flows
    object_grant(obj=billing, subject=editor, level="edit", actor=owner)
    object_grant(obj=support, subject=editor, level="view", actor=owner)
    client.force_login(editor)

    page = client.get(reverse("flows:flow-list"))
    assertContains(page, "Billing")
    assertContains(page, "Support")
    assertNotContains(page, "Research")
    assert client.get(reverse("flows:flow-detail", args=["research"])).status_code == 404

    graph = json.dumps(assistant_graph(model="echo", max_tokens=5))
    saved = client.post(reverse("flows:flow-version-create", args=["billing"]), {"graph": graph})
    assert saved.status_code == 302
    refused = client.post(reverse("flows:flow-version-create", args=["support"]), {"graph": graph})
    assert refused.status_code == 403
    assert [f.versions.count() for f in flows] == [2, 1, 1]


def test_the_same_role_unlimited_reaches_every_flow(flows, make_member):
    editor = make_member("editor")
    assert all(access.has_perm(editor, flow, "change") for flow in flows)
    assert access.scope(editor, flows[0].workspace_id, Flow.objects.all()).count() == 3


def test_a_flow_shared_read_only_with_one_team(flows, owner, workspace, make_member):
    reader = make_member("editor", username="reader", limited=True)
    other = make_member("editor", username="other", limited=True)
    team = team_create(workspace=workspace, name="Research team", actor=owner)
    team_member_add(team=team, user=reader, actor=owner)
    research = flows[2]
    object_grant(obj=research, subject=team, level="view", actor=owner)

    assert access.object_actions(reader, research) == {"view"}
    assert not access.has_perm(reader, research, "change")
    assert not access.has_perm(other, research, "view")
    # The listing is one SQL query over the grants, whatever their number.
    visible = access.scope(reader, workspace.id, Flow.objects.all())
    assert list(visible.values_list("slug", flat=True)) == ["research"]
    assert not access.scope(other, workspace.id, Flow.objects.all()).exists()


def test_a_grant_never_crosses_workspaces(flows, owner, outsider):
    with pytest.raises(ValidationError):
        object_grant(obj=flows[0], subject=outsider, level="view", actor=owner)
    foreign = workspace_create(slug="foreign", name="Foreign", owner=outsider)
    foreign_team = team_create(workspace=foreign, name="Them", actor=outsider)
    with pytest.raises(ValidationError):
        object_grant(obj=flows[0], subject=foreign_team, level="view", actor=owner)
    assert not FlowUserObjectPermission.objects.exists()
    assert not FlowGroupObjectPermission.objects.exists()


def test_a_limited_member_is_granted_what_they_create(workspace, make_member, model):
    editor = make_member("editor", limited=True)
    flow = flow_create(
        workspace=workspace, slug="mine", name="Mine", graph=assistant_graph("echo"), user=editor
    )
    assert {"view", "change", "delete", "share"} <= access.object_actions(editor, flow)


def test_the_access_page_shares_shows_and_revokes(client, flows, owner, workspace, make_member):
    reader = make_member("viewer", username="reader", limited=True)
    team = team_create(workspace=workspace, name="Ops", actor=owner)
    team_member_add(team=team, user=reader, actor=owner)
    support = flows[1]
    client.force_login(owner)
    url = reverse("workspaces:share", args=["flow", support.id])

    response = client.post(
        reverse("workspaces:share-grant", args=["flow", support.id]),
        {"subject": f"user:{reader.id}", "level": "use"},
    )
    assert response.status_code == 302
    client.post(
        reverse("workspaces:share-grant", args=["flow", support.id]),
        {"subject": f"team:{team.id}", "level": "view"},
    )
    assert access.object_actions(reader, support) == {"view", "run"}

    page = client.get(url)
    assertContains(page, "shared with them; team Ops")
    rows = {row.username: row for row in who_can_access(support)}
    assert rows["reader"].actions == ["run", "view"]
    assert rows["olive"].sources == ["role owner"]

    client.post(
        reverse("workspaces:share-revoke", args=["flow", support.id]),
        {"subject": f"user:{reader.id}"},
    )
    assert access.object_actions(reader, support) == {"view"}
    object_revoke(obj=support, subject=team, actor=owner)
    assert not access.has_perm(reader, support, "view")


def test_a_bad_grant_is_refused_with_the_form_kept(client, flows, owner):
    client.force_login(owner)
    response = client.post(
        reverse("workspaces:share-grant", args=["flow", flows[0].id]),
        {"subject": "user:999999", "level": "root"},
    )
    assert response.status_code == 400
    assert not FlowUserObjectPermission.objects.exists()


def test_grants_are_removed_with_their_object(flows, owner, workspace, make_member, model):
    member = make_member("viewer", limited=True)
    team = team_create(workspace=workspace, name="Everyone", actor=owner)
    own_model = model_create(slug="own", name="Own", engine="echo", workspace=workspace)
    key, _ = api_key_create(workspace=workspace, name="k")
    for obj in (flows[0], own_model, key):
        object_grant(obj=obj, subject=member, level="view", actor=owner)
        object_grant(obj=obj, subject=team, level="view", actor=owner)
    tables = [
        FlowUserObjectPermission,
        FlowGroupObjectPermission,
        ModelUserObjectPermission,
        ModelGroupObjectPermission,
        ApiKeyUserObjectPermission,
        ApiKeyGroupObjectPermission,
    ]
    assert all(table.objects.count() == 1 for table in tables)

    flow_delete(flow=flows[0], user=owner)
    model_delete(model=own_model, actor=owner)
    key.delete()

    assert [table.objects.count() for table in tables] == [0] * 6


def test_a_limited_editor_uses_only_the_models_shared_with_them(
    flows, owner, workspace, make_member
):
    from flows.schema import GraphError
    from flows.services import flow_version_save

    editor = make_member("editor", limited=True)
    private = model_create(slug="private", name="Private", engine="echo", workspace=workspace)
    billing = flows[0]
    object_grant(obj=billing, subject=editor, level="edit", actor=owner)
    with pytest.raises(GraphError) as refused:
        flow_version_save(flow=billing, graph=assistant_graph("private"), user=editor)
    assert refused.value.errors == [
        "node 'llm_1': model 'private' is not in this workspace's catalog"
    ]
    object_grant(obj=private, subject=editor, level="use", actor=owner)
    assert (
        flow_version_save(flow=billing, graph=assistant_graph("private"), user=editor).number == 2
    )
    # Shared catalog models are usable by every member; full members use the workspace's own.
    assert access.has_perm(editor, Model.objects.get(slug="echo"), "use")
    assert access.has_perm(make_member("editor"), private, "use")
