from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        from studio import access

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
