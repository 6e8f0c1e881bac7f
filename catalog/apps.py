from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Model catalog"

    def ready(self) -> None:
        from studio import access, roles

        access.register_kind(
            "model",
            "catalog.Model",
            {
                "view": ("view",),
                "use": ("view", "use"),
                "edit": ("view", "use", "change"),
                "manage": ("view", "use", "change", "delete", "share"),
            },
        )
        access.register_kind(
            "route",
            "catalog.Route",
            {
                "view": ("view",),
                "use": ("view", "use"),
                "edit": ("view", "use", "change"),
                "manage": ("view", "use", "change", "delete", "share"),
            },
        )
        access.register_kind(
            "prompt",
            "catalog.Prompt",
            {
                "view": ("view",),
                "use": ("view", "use"),
                "edit": ("view", "use", "change"),
                # Approving stays with the role (admins): a grant never lets an author approve.
                "manage": ("view", "use", "change", "delete", "share"),
            },
        )
        roles.register(
            {
                "viewer": {
                    "catalog.view_model",
                    "catalog.view_route",
                    "catalog.view_prompt",
                    "catalog.view_usage",
                },
                "operator": {"catalog.use_model", "catalog.use_route", "catalog.use_prompt"},
                "editor": {"catalog.add_prompt", "catalog.change_prompt", "catalog.delete_prompt"},
                "admin": {
                    "catalog.add_model",
                    "catalog.change_model",
                    "catalog.delete_model",
                    "catalog.share_model",
                    "catalog.add_route",
                    "catalog.change_route",
                    "catalog.delete_route",
                    "catalog.share_route",
                    "catalog.approve_prompt",
                    "catalog.share_prompt",
                    "catalog.view_credential",
                    "catalog.add_credential",
                    "catalog.delete_credential",
                },
            }
        )
