"""The members, teams, audit log, API keys, sharing and invitation pages."""

from django.urls import path

from workspaces.views import audit, invitations, keys, members, sharing, teams

app_name = "workspaces"

urlpatterns = [
    path("keys/", keys.key_list, name="key-list"),
    path("keys/create", keys.key_create, name="key-create"),
    path("keys/<int:key_id>/scopes", keys.key_scopes, name="key-scopes"),
    path("keys/<int:key_id>/confirm", keys.key_confirm, name="key-confirm"),
    path("keys/<int:key_id>/limits", keys.key_limits, name="key-limits"),
    path("keys/<int:key_id>/revoke", keys.key_revoke, name="key-revoke"),
    path("workspace/members/", members.member_list, name="member-list"),
    path("workspace/members/invite", members.member_invite, name="member-invite"),
    path(
        "workspace/members/<int:membership_id>/change",
        members.member_change,
        name="member-change",
    ),
    path(
        "workspace/members/<int:membership_id>/remove",
        members.member_remove,
        name="member-remove",
    ),
    path(
        "workspace/members/<int:membership_id>/deactivate",
        members.member_deactivate,
        name="member-deactivate",
    ),
    path(
        "workspace/members/<int:membership_id>/reactivate",
        members.member_reactivate,
        name="member-reactivate",
    ),
    path("workspace/limits", keys.workspace_limits, name="workspace-limits"),
    path("workspace/transfer", members.workspace_transfer, name="workspace-transfer"),
    path("workspace/switch", members.workspace_switch, name="workspace-switch"),
    path("workspace/teams/", teams.team_list, name="team-list"),
    path("workspace/teams/create", teams.team_create, name="team-create"),
    path("workspace/teams/<int:team_id>/delete", teams.team_delete, name="team-delete"),
    path(
        "workspace/teams/<int:team_id>/members/add",
        teams.team_member_add,
        name="team-member-add",
    ),
    path(
        "workspace/teams/<int:team_id>/members/<int:user_id>/remove",
        teams.team_member_remove,
        name="team-member-remove",
    ),
    path("workspace/audit/", audit.audit_list, name="audit-list"),
    path("workspace/audit.csv", audit.audit_export, name="audit-export"),
    path("share/<slug:kind>/<int:object_id>/", sharing.share, name="share"),
    path("share/<slug:kind>/<int:object_id>/grant", sharing.share_grant, name="share-grant"),
    path("share/<slug:kind>/<int:object_id>/revoke", sharing.share_revoke, name="share-revoke"),
    path("invitations/<str:token>/", invitations.invitation, name="invitation"),
]
