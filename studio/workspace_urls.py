from django.urls import path

from studio.views import audit, members, teams

urlpatterns = [
    path("members/", members.member_list, name="member-list"),
    path("members/invite", members.member_invite, name="member-invite"),
    path("members/<int:membership_id>/change", members.member_change, name="member-change"),
    path("members/<int:membership_id>/remove", members.member_remove, name="member-remove"),
    path(
        "members/<int:membership_id>/deactivate",
        members.member_deactivate,
        name="member-deactivate",
    ),
    path(
        "members/<int:membership_id>/reactivate",
        members.member_reactivate,
        name="member-reactivate",
    ),
    path("transfer", members.workspace_transfer, name="workspace-transfer"),
    path("switch", members.workspace_switch, name="workspace-switch"),
    path("teams/", teams.team_list, name="team-list"),
    path("teams/create", teams.team_create, name="team-create"),
    path("teams/<int:team_id>/delete", teams.team_delete, name="team-delete"),
    path("teams/<int:team_id>/members/add", teams.team_member_add, name="team-member-add"),
    path(
        "teams/<int:team_id>/members/<int:user_id>/remove",
        teams.team_member_remove,
        name="team-member-remove",
    ),
    path("audit/", audit.audit_list, name="audit-list"),
    path("audit.csv", audit.audit_export, name="audit-export"),
]
