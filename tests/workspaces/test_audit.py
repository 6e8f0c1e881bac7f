"""Every change to flows, models, members, permissions and keys leaves an audit entry (who,
when, what, before and after) that admins can filter and export."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from catalog.services import model_create, model_delete, model_update
from flows.demo import assistant_graph
from flows.services import flow_create, flow_delete, flow_publish, flow_version_save
from workspaces.models import AuditEvent, Membership
from workspaces.services import (
    api_key_create,
    api_key_revoke,
    member_add,
    member_change,
    member_remove,
    team_create,
    team_member_add,
    user_deactivate,
    workspace_transfer,
)
from workspaces.sharing import object_grant, object_revoke


@pytest.fixture
def history(workspace, owner, make_member, outsider):
    """One change of every kind, made by the owner."""
    model = model_create(slug="echo", name="Echo", engine="echo", workspace=workspace, actor=owner)
    model_update(model=model, name="Echo v2", actor=owner)
    flow = flow_create(
        workspace=workspace, slug="f", name="F", graph=assistant_graph("echo"), user=owner
    )
    flow_version_save(flow=flow, graph=assistant_graph("echo", max_tokens=9), user=owner)
    flow_publish(flow=flow, user=owner)
    editor = make_member("editor", username="edith")
    member_change(
        membership=Membership.objects.get(user=editor), role="viewer", limited=True, actor=owner
    )
    object_grant(obj=flow, subject=editor, level="edit", actor=owner)
    object_revoke(obj=flow, subject=editor, actor=owner)
    team = team_create(workspace=workspace, name="Ops", actor=owner)
    team_member_add(team=team, user=editor, actor=owner)
    key, _ = api_key_create(workspace=workspace, name="ci", user=owner)
    api_key_revoke(api_key=key, user=owner)
    guest = member_add(workspace=workspace, user=outsider, role="viewer", actor=owner)
    member_remove(membership=guest, actor=owner)
    user_deactivate(user=editor, actor=owner)
    admin = make_member("admin", username="ada")
    workspace_transfer(workspace=workspace, to_user=admin, actor=owner)
    flow_delete(flow=flow, user=admin)
    model_delete(model=model, actor=admin)
    return {"flow": flow, "model": model}


def test_each_kind_of_change_is_recorded(history, workspace):
    actions = set(AuditEvent.objects.filter(workspace=workspace).values_list("action", flat=True))
    assert actions >= {
        "model.create",
        "model.change",
        "model.delete",
        "flow.create",
        "flow.version_create",
        "flow.publish",
        "flow.delete",
        "member.add",
        "member.change",
        "member.remove",
        "permission.grant",
        "permission.revoke",
        "team.create",
        "team.member_add",
        "key.create",
        "key.revoke",
        "user.deactivate",
        "workspace.transfer",
    }


def test_an_entry_says_who_and_what_before_and_after(history, workspace):
    publish = AuditEvent.objects.get(action="flow.publish")
    assert publish.actor.username == "olive"
    assert publish.target_label == "F"
    assert (publish.before, publish.after) == (
        {"published_version": None},
        {"published_version": 2},
    )
    change = AuditEvent.objects.get(action="model.change")
    assert (change.before["name"], change.after["name"]) == ("Echo", "Echo v2")
    role = AuditEvent.objects.get(action="member.change", target_label="edith")
    assert (role.before["role"], role.after["role"]) == ("editor", "viewer")
    assert role.after["limited"] is True
    grant = AuditEvent.objects.get(action="permission.grant")
    assert grant.after == {"subject": "edith", "level": "edit"}
    deleted = AuditEvent.objects.get(action="flow.delete")
    assert deleted.actor_label == "ada"


def test_the_log_is_filtered_and_exported(client, history, workspace):
    admin = Membership.objects.get(workspace=workspace, role="owner").user
    client.force_login(admin)

    page = client.get(reverse("workspaces:audit-list"), {"action": "flow.", "actor": "olive"})
    assertContains(page, "flow.publish")
    assertContains(page, "flow.version_create")
    assertNotContains(page, "key.create")
    assertNotContains(page, "flow.delete")  # made by ada

    export = client.get(reverse("workspaces:audit-export"), {"action": "key."})
    assert export["Content-Type"] == "text/csv"
    assert "attachment" in export["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert [row["action"] for row in rows] == ["key.revoke", "key.create"]
    assert rows[0]["actor"] == "olive"
    assert '"revoked_at": null' in rows[0]["before"]


def test_a_viewer_cannot_read_the_log(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("workspaces:audit-list")).status_code == 403
    assert client.get(reverse("workspaces:audit-export")).status_code == 403


def test_a_bad_filter_is_refused_plainly(client, owner):
    client.force_login(owner)
    response = client.get(reverse("workspaces:audit-list"), {"since": "yesterday-ish"})
    assertContains(response, "Enter a valid date", status_code=400)


def test_a_spreadsheet_formula_in_a_name_is_defused(client, owner, workspace):
    api_key_create(workspace=workspace, name="=HYPERLINK(1)", user=owner)
    client.force_login(owner)
    export = client.get(reverse("workspaces:audit-export"))
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert rows[0]["target"].startswith("'=HYPERLINK")
