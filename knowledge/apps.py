from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge bases"

    def ready(self) -> None:
        from knowledge.access import KEY_KIND
        from studio import access, roles
        from workspaces.access import register_key_kind

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
        roles.register(
            {
                "viewer": {"knowledge.view_knowledgebase"},
                "operator": {"knowledge.use_knowledgebase"},
                "editor": {
                    "knowledge.add_knowledgebase",
                    "knowledge.change_knowledgebase",
                    "knowledge.delete_knowledgebase",
                },
                "admin": {"knowledge.share_knowledgebase"},
            }
        )
        register_key_kind("knowledge.KnowledgeBase", KEY_KIND)
