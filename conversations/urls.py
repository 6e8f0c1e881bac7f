"""The home page and the apps list, the chat pages (a member's own conversations with a flow),
the embed widget (its page, sessions and chat), the conversations API and the review of a
flow's conversations by its editors."""

from django.urls import path

from conversations import api
from conversations.views import chat, home, review, settings, widget, widget_chat

app_name = "conversations"

urlpatterns = [
    # The page a member lands on ("/" sends them here) and the apps they may chat with.
    path("home/", home.home, name="home"),
    path("apps/", home.apps, name="apps"),
    path(
        "api/v1/flows/<slug:slug>/conversations",
        api.flow_conversations,
        name="api-flow-conversations",
    ),
    path(
        "api/v1/conversations/<uuid:conversation_id>",
        api.conversation_detail,
        name="api-conversation",
    ),
    path(
        "api/v1/conversations/<uuid:conversation_id>/messages",
        api.conversation_messages_view,
        name="api-conversation-messages",
    ),
    path(
        "api/v1/messages/<int:message_id>/feedback",
        api.message_feedback_view,
        name="api-message-feedback",
    ),
    path("flows/<slug:slug>/conversations/", review.conversation_list, name="review-list"),
    path("flows/<slug:slug>/chat-settings/", settings.chat_settings, name="chat-settings"),
    path(
        "flows/<slug:slug>/conversations/<uuid:conversation_id>/",
        review.conversation_detail,
        name="review-detail",
    ),
    path("embed/<str:embed_id>/", widget.widget, name="widget"),
    path("embed/<str:embed_id>/session", widget.widget_session, name="widget-session"),
    path("embed/<str:embed_id>/sign-in", widget.widget_sign_in, name="widget-sign-in"),
    path(
        "embed/<str:embed_id>/conversations",
        widget_chat.widget_conversations,
        name="widget-conversations",
    ),
    path(
        "embed/<str:embed_id>/new",
        widget_chat.widget_conversation,
        {"conversation_id": "new"},
        name="widget-new",
    ),
    path(
        "embed/<str:embed_id>/c/<uuid:conversation_id>/",
        widget_chat.widget_conversation,
        name="widget-conversation",
    ),
    path(
        "embed/<str:embed_id>/c/<uuid:conversation_id>/delete",
        widget_chat.widget_conversation_delete,
        name="widget-conversation-delete",
    ),
    path("embed/<str:embed_id>/send", widget_chat.widget_send, name="widget-send"),
    path(
        "embed/<str:embed_id>/m/<int:message_id>/feedback",
        widget_chat.widget_feedback,
        name="widget-feedback",
    ),
    path(
        "embed/<str:embed_id>/m/<int:message_id>/stop",
        widget_chat.widget_stop,
        name="widget-stop",
    ),
    path(
        "embed/<str:embed_id>/m/<int:message_id>/regenerate",
        widget_chat.widget_regenerate,
        name="widget-regenerate",
    ),
    path("chat/<slug:slug>/", chat.chat, name="chat"),
    path("chat/<slug:slug>/send", chat.chat_send, name="chat-send"),
    path("chat/<slug:slug>/c/<uuid:conversation_id>/", chat.conversation_open, name="conversation"),
    path("chat/<slug:slug>/m/<int:message_id>/stop", chat.message_stop_view, name="message-stop"),
    path(
        "chat/<slug:slug>/m/<int:message_id>/regenerate",
        chat.message_regenerate_view,
        name="message-regenerate",
    ),
    path(
        "chat/<slug:slug>/m/<int:message_id>/feedback",
        chat.message_feedback_view,
        name="message-feedback",
    ),
    path(
        "chat/<slug:slug>/c/<uuid:conversation_id>/rename",
        chat.conversation_rename_view,
        name="conversation-rename",
    ),
    path(
        "chat/<slug:slug>/c/<uuid:conversation_id>/delete",
        chat.conversation_delete_view,
        name="conversation-delete",
    ),
]
