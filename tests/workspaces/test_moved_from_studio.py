"""The tenancy's models moved from the ``studio`` app to ``workspaces``: a database made before
the move, with rows in every moved table and objects of other apps pointing at them, keeps them
all after ``migrate``, and its permissions and grants follow."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from studio.access import has_perm
from workspaces.models import (
    ApiKey,
    ApiKeyGroupObjectPermission,
    ApiKeyUserObjectPermission,
    AuditEvent,
    Invitation,
    Membership,
    Team,
    Workspace,
)

# The migrations of each app on main before the move.
BEFORE = [
    ("studio", "0003_apikey_scopes"),
    ("catalog", "0004_credential_allowed_hosts"),
    ("flows", "0005_run_tree"),
    ("knowledge", "0001_knowledge_bases"),
    ("workspaces", None),
]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


def _latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def _rows_before_the_move(old) -> dict[str, int]:
    """One row in every table the move renames, made through the models as they were."""
    user_model = old.get_model("auth", "User")
    group_model = old.get_model("auth", "Group")
    permission_model = old.get_model("auth", "Permission")
    content_type_model = old.get_model("contenttypes", "ContentType")
    workspace = old.get_model("studio", "Workspace").objects.create(slug="old", name="Old")
    user = user_model.objects.create(username="olga")
    group = group_model.objects.create(name="team:old-reviewers")
    old.get_model("studio", "Membership").objects.create(
        workspace=workspace, user=user, role="admin"
    )
    team = old.get_model("studio", "Team").objects.create(
        workspace=workspace, name="Reviewers", group=group
    )
    old.get_model("studio", "Invitation").objects.create(
        workspace=workspace,
        email="new@example.com",
        token_hash="0" * 64,
        invited_by=user,
        expires_at=timezone.now(),
    )
    key = old.get_model("studio", "ApiKey").objects.create(
        workspace=workspace,
        name="deploy",
        prefix="abcd1234",
        secret_hash="f" * 64,
        created_by=user,
        flow_access="run",
    )
    key_type, _ = content_type_model.objects.get_or_create(app_label="studio", model="apikey")
    view_key, _ = permission_model.objects.get_or_create(
        content_type=key_type, codename="view_apikey", defaults={"name": "Can view api key"}
    )
    old.get_model("studio", "ApiKeyUserObjectPermission").objects.create(
        content_object=key, user=user, permission=view_key
    )
    old.get_model("studio", "ApiKeyGroupObjectPermission").objects.create(
        content_object=key, group=group, permission=view_key
    )
    old.get_model("studio", "AuditEvent").objects.create(
        workspace=workspace, actor=user, actor_label="olga", action="key.create"
    )
    flow = old.get_model("flows", "Flow").objects.create(
        workspace=workspace, slug="helper", name="Helper"
    )
    return {
        "workspace": workspace.id,
        "user": user.id,
        "team": team.id,
        "key": key.id,
        "flow": flow.id,
        "key_type": key_type.id,
    }


@pytest.mark.django_db(transaction=True)
def test_a_database_made_before_the_move_keeps_every_row_after_it():
    old = _migrate(BEFORE).loader.project_state(BEFORE[:-1]).apps
    made = _rows_before_the_move(old)

    _migrate(_latest())

    workspace = Workspace.objects.get(id=made["workspace"])
    user = get_user_model().objects.get(id=made["user"])
    assert (workspace.slug, workspace.name) == ("old", "Old")
    assert Membership.objects.get(workspace=workspace, user=user).role == "admin"
    team = Team.objects.get(id=made["team"])
    assert (team.name, team.workspace_id, team.group.name) == (
        "Reviewers",
        workspace.id,
        "team:old-reviewers",
    )
    invitation = Invitation.objects.get(workspace=workspace)
    assert (invitation.email, invitation.invited_by_id) == ("new@example.com", user.id)
    key = ApiKey.objects.get(id=made["key"])
    assert (key.prefix, key.flow_access, key.created_by_id) == ("abcd1234", "run", user.id)
    assert AuditEvent.objects.get(workspace=workspace).action == "key.create"
    # The other apps' foreign keys reach the moved rows, in the ORM and in the database.
    from flows.models import Flow

    assert Flow.objects.get(id=made["flow"]).workspace == workspace
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM flows_flow f JOIN workspaces_workspace w"
            " ON w.id = f.workspace_id WHERE f.id = %s",
            [made["flow"]],
        )
        assert cursor.fetchone()[0] == 1
    # Content types moved rather than made anew, so permissions and grants kept their rows.
    key_type = ContentType.objects.get_for_model(ApiKey)
    assert (key_type.id, key_type.app_label) == (made["key_type"], "workspaces")
    assert not ContentType.objects.filter(app_label="studio", model="apikey").exists()
    view_key = Permission.objects.get(content_type=key_type, codename="view_apikey")
    assert ApiKeyUserObjectPermission.objects.get(content_object=key).permission == view_key
    grant = ApiKeyGroupObjectPermission.objects.get(content_object=key)
    assert grant.group == Group.objects.get(name="team:old-reviewers")
    assert has_perm(user, key, "view")


@pytest.mark.django_db(transaction=True)
def test_the_move_can_be_undone_and_done_again():
    _migrate(BEFORE)
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
    assert "studio_apikey" in tables and "workspaces_apikey" not in tables
    _migrate(_latest())
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
    assert "workspaces_apikey" in tables and "studio_apikey" not in tables
