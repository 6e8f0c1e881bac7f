from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    verbose_name = "Workspaces"

    def ready(self) -> None:
        from studio import access, roles
        from workspaces import access as workspaces_access
        from workspaces.models import ApiKey

        access.register_tenancy(
            access.Tenancy(
                membership=workspaces_access.membership,
                in_any_workspace=workspaces_access.in_any_workspace,
            )
        )
        access.register_principal(
            ApiKey,
            access.Principal(
                actions=workspaces_access.key_actions, scope=workspaces_access.key_scope
            ),
        )
        access.register_kind(
            "key",
            "workspaces.ApiKey",
            {"view": ("view",), "manage": ("view", "change", "delete", "share")},
        )
        roles.register(
            {
                "viewer": {
                    "workspaces.view_workspace",
                    "workspaces.view_team",
                    "workspaces.view_membership",
                },
                "admin": {
                    "workspaces.add_apikey",
                    "workspaces.view_apikey",
                    "workspaces.change_apikey",
                    "workspaces.delete_apikey",
                    "workspaces.share_apikey",
                    "workspaces.manage_members",
                    "workspaces.view_audit",
                    "workspaces.add_team",
                    "workspaces.change_team",
                    "workspaces.delete_team",
                },
                "owner": {"workspaces.change_workspace", "workspaces.transfer_workspace"},
            }
        )
