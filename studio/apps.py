from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class StudioConfig(AppConfig):
    name = "studio"
    verbose_name = "Studio"

    def ready(self) -> None:
        from studio import checks  # noqa: F401 - registers the deploy checks
        from studio.roles import roles_sync

        # Setting up the role groups is part of migrating, like Django's own permissions. The
        # signal goes once per ``migrate`` (and flush) to each app with models: this package has
        # none, so the role groups follow Django's own auth app, which every installation has.
        post_migrate.connect(
            roles_sync, sender=apps.get_app_config("auth"), dispatch_uid="studio.roles_sync"
        )
