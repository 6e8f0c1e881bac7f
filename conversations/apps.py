from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from conversations.panels import run_conversation_panel
        from flows.panels import register_panel

        register_panel("run", "conversation", run_conversation_panel)
