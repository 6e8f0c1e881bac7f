"""The agent pages."""

from django.urls import path

from agents import api, mcp_server
from agents.views import agents, builder, conversations, memory, preview, transfer, versions, widget

app_name = "agents"

urlpatterns = [
    # The MCP server: a workspace's published flows and agents as tools, for a bearer of an API key.
    path("mcp/", mcp_server.endpoint, name="mcp"),
    path(
        "api/v1/agents/<slug:agent_slug>/runs", api.agent_runs_create, name="api-agent-runs-create"
    ),
    path(
        "api/v1/agents/<slug:agent_slug>/conversations",
        api.agent_conversations,
        name="api-agent-conversations",
    ),
    path("agents/", agents.agent_list, name="agent-list"),
    path("agents/new", agents.agent_new, name="agent-new"),
    path("agents/import", transfer.agent_import_view, name="agent-import"),
    path("agents/<slug:agent_slug>/", builder.agent_detail, name="agent-detail"),
    path("agents/<slug:agent_slug>/save", builder.agent_save, name="agent-save"),
    path("agents/<slug:agent_slug>/publish", builder.agent_publish_view, name="agent-publish"),
    path("agents/<slug:agent_slug>/preview", preview.agent_preview, name="agent-preview"),
    path("agents/<slug:agent_slug>/versions/", versions.agent_versions, name="agent-versions"),
    path("agents/<slug:agent_slug>/export", transfer.agent_export_view, name="agent-export"),
    path("agents/<slug:agent_slug>/delete", versions.agent_remove, name="agent-delete"),
    path("agents/<slug:agent_slug>/widget/", widget.agent_widget, name="agent-widget"),
    path(
        "agents/<slug:agent_slug>/conversations/",
        conversations.agent_conversations,
        name="agent-conversations",
    ),
    path(
        "agents/<slug:agent_slug>/conversations/<uuid:conversation_id>/",
        conversations.agent_conversation,
        name="agent-conversation",
    ),
    path("agents/<slug:agent_slug>/memory/", memory.agent_memory, name="agent-memory"),
    path("agents/<slug:agent_slug>/my-memory/", memory.my_memory, name="my-memory"),
]
