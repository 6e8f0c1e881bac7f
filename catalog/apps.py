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
