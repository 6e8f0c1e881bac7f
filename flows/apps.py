from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        from flows.access import KEY_KIND
        from flows.panels import register_panel
        from flows.views.experiments import experiment_panel
        from studio import access, roles
        from workspaces.access import register_key_kind

        access.register_kind(
            "flow",
            "flows.Flow",
            {
                "view": ("view",),
                "use": ("view", "run"),
                "edit": ("view", "run", "change", "publish"),
                "manage": ("view", "run", "change", "publish", "delete", "share"),
            },
        )
        roles.register(
            {
                "viewer": {"flows.view_flow"},
                "operator": {"flows.run_flow"},
                "editor": {
                    "flows.add_flow",
                    "flows.change_flow",
                    "flows.publish_flow",
                    "flows.delete_flow",
                },
                "admin": {"flows.share_flow"},
            }
        )
        register_key_kind("flows.Flow", KEY_KIND)
        register_panel("publish", "experiment", experiment_panel, order=50)
