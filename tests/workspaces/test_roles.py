"""What each workspace role may and may not do, asked through the pages a person uses."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from catalog.services import model_create
from flows.demo import assistant_graph
from flows.models import Flow, Run
from studio.roles import ROLE_PERMISSIONS, group_name
from workspaces.models import ApiKey, Membership, Team

ROLES = ["viewer", "operator", "editor", "admin", "owner"]


@pytest.fixture
def setting(db, workspace, make_member, make_flow):
    model = model_create(slug="echo", name="Echo", engine="echo")
    flow = make_flow(model, slug="helper")
    users = {role: make_member(role, username=f"the-{role}") for role in ROLES if role != "owner"}
    users["owner"] = Membership.objects.get(workspace=workspace, role="owner").user
    return {"flow": flow, "users": users, "model": model}


def _actions(flow: Flow, workspace) -> dict:
    """Each action a person can try, as (method, url, data)."""
    graph = json.dumps(assistant_graph(model="echo"))
    member = Membership.objects.filter(workspace=workspace, role="viewer").first()
    return {
        "view flow": ("get", reverse("flows:flow-detail", args=[flow.slug]), None),
        "open chat": ("get", reverse("conversations:chat", args=[flow.slug]), None),
        "send chat": (
            "post",
            reverse("conversations:chat-send", args=[flow.slug]),
            {"message": "hi"},
        ),
        "save version": (
            "post",
            reverse("flows:flow-version-create", args=[flow.slug]),
            {"graph": graph},
        ),
        "publish": ("post", reverse("flows:flow-publish", args=[flow.slug]), {}),
        "share flow": ("get", reverse("workspaces:share", args=["flow", flow.id]), None),
        "see members": ("get", reverse("workspaces:member-list"), None),
        "invite": (
            "post",
            reverse("workspaces:member-invite"),
            {"who": "new@example.com", "role": "viewer"},
        ),
        "change role": (
            "post",
            reverse("workspaces:member-change", args=[member.id]),
            {"role": "operator"},
        ),
        "create team": ("post", reverse("workspaces:team-create"), {"name": "Support"}),
        "read audit": ("get", reverse("workspaces:audit-list"), None),
        "create key": ("post", reverse("workspaces:key-create"), {"name": "ci"}),
        "transfer": ("post", reverse("workspaces:workspace-transfer"), {"to": member.id}),
    }


# The lowest role allowed each action.
LOWEST = {
    "view flow": "viewer",
    "open chat": "operator",
    "send chat": "operator",
    "save version": "editor",
    "publish": "editor",
    "share flow": "admin",
    "see members": "viewer",
    "invite": "admin",
    "change role": "admin",
    "create team": "admin",
    "read audit": "admin",
    "create key": "admin",
    "transfer": "owner",
}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_do_exactly_its_actions(client, setting, workspace, role):
    user = setting["users"][role]
    client.force_login(user)
    for action, (method, url, data) in _actions(setting["flow"], workspace).items():
        if action == "transfer" and role == "owner":
            continue  # done last: it changes who the owner is
        response = getattr(client, method)(url, data or {})
        allowed = ROLES.index(role) >= ROLES.index(LOWEST[action])
        if allowed:
            assert response.status_code in (200, 302), (role, action, response.status_code)
        else:
            assert response.status_code == 403, (role, action, response.status_code)


def test_what_refused_actions_leave_behind(client, setting, workspace):
    """A refused action changes nothing: no version, no publish, no run, no key, no team."""
    flow = setting["flow"]
    client.force_login(setting["users"]["viewer"])
    for method, url, data in _actions(flow, workspace).values():
        getattr(client, method)(url, data or {})
    flow.refresh_from_db()
    assert flow.versions.count() == 1
    assert flow.published_version.number == 1
    assert not Run.objects.exists()
    assert not ApiKey.objects.exists()
    assert not Team.objects.exists()
    assert Membership.objects.get(workspace=workspace, role="owner").user.username == "olive"


def test_an_operator_runs_a_published_flow_but_cannot_change_it(client, setting):
    client.force_login(setting["users"]["operator"])
    response = client.post(reverse("conversations:chat-send", args=["helper"]), {"message": "hi"})
    assert response.status_code == 200
    run = Run.objects.get()
    assert run.created_by == setting["users"]["operator"]
    assert client.get(reverse("flows:run-detail", args=[run.id])).status_code == 200
    assert client.post(reverse("flows:flow-delete", args=["helper"])).status_code == 403
    assert Flow.objects.filter(slug="helper").exists()


def test_an_editor_deletes_a_flow_with_its_runs(client, setting):
    client.force_login(setting["users"]["editor"])
    response = client.post(reverse("flows:flow-delete", args=["helper"]))
    assert response.status_code == 302
    assert not Flow.objects.filter(slug="helper").exists()


def test_only_the_owner_makes_an_admin(client, setting, workspace):
    viewer = Membership.objects.get(workspace=workspace, user=setting["users"]["viewer"])
    client.force_login(setting["users"]["admin"])
    client.post(reverse("workspaces:member-change", args=[viewer.id]), {"role": "admin"})
    viewer.refresh_from_db()
    assert viewer.role == "viewer"

    client.force_login(setting["users"]["owner"])
    client.post(reverse("workspaces:member-change", args=[viewer.id]), {"role": "admin"})
    viewer.refresh_from_db()
    assert viewer.role == "admin"


def test_roles_are_groups_whose_permissions_the_access_layer_reads(setting, workspace):
    from django.contrib.auth.models import Group

    from studio import access, roles

    for role, perms in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=group_name(role))
        names = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert names == perms
    # Taking run_flow away from the operator group takes it from every operator.
    group = Group.objects.get(name=group_name("operator"))
    group.permissions.remove(group.permissions.get(codename="run_flow"))
    roles._cache.clear()
    assert not access.has_perm(setting["users"]["operator"], setting["flow"], "run")
    assert access.has_perm(setting["users"]["editor"], setting["flow"], "run")
