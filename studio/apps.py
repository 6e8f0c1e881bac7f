from django.apps import AppConfig
from django.db.models.signals import post_migrate


class StudioConfig(AppConfig):
    name = "studio"
    verbose_name = "Studio"

    def ready(self) -> None:
        from studio import access
        from studio.roles import roles_sync

        # Setting up the role groups is part of migrating, like Django's own permissions.
        post_migrate.connect(roles_sync, sender=self, dispatch_uid="studio.roles_sync")
        access.register_kind(
            "key",
            "studio.ApiKey",
            {"view": ("view",), "manage": ("view", "change", "delete", "share")},
        )
