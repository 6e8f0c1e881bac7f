from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Model catalog"

    def ready(self) -> None:
        from studio import access

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
