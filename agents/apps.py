from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        import agents.nodes.agent  # noqa: F401  # registers the flows' agent node
        from studio import access, roles

        access.register_kind(
            "agent",
            "agents.Agent",
            {
                "view": ("view",),
                "use": ("view", "use"),
                "edit": ("view", "use", "change", "publish"),
                "manage": ("view", "use", "change", "publish", "delete", "share"),
            },
        )
        roles.register(
            {
                "viewer": {"agents.view_agent"},
                "operator": {"agents.use_agent"},
                "editor": {
                    "agents.add_agent",
                    "agents.change_agent",
                    "agents.publish_agent",
                    "agents.delete_agent",
                },
                "admin": {"agents.share_agent"},
            }
        )
