from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge bases"

    def ready(self) -> None:
        from studio import access

        access.register_kind(
            "kb",
            "knowledge.KnowledgeBase",
            {
                "view": ("view",),
                "use": ("view", "use"),
                "edit": ("view", "use", "change"),
                "manage": ("view", "use", "change", "delete", "share"),
            },
        )
