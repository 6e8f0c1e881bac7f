from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        import agents.nodes.agent  # noqa: F401  # registers the flows' agent node
        from agents.access import FLOW_DELEGATE, agent_by_api_name
        from agents.selectors import agent_chat_apps, agents_for_key
        from conversations.selectors import register_chat_apps
        from flows.openai_api import ModelSource, register_models
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
        # A published agent is served by its backing flow, reached as the agent is.
        access.register_delegate("flows.Flow", FLOW_DELEGATE)
        register_chat_apps(agent_chat_apps)
        register_models(
            ModelSource(
                listed=lambda api_key: [(name, a.flow) for name, a in agents_for_key(api_key)],
                find=agent_by_api_name,
            )
        )
