"""The chat pages: a flow's conversations for the signed-in member."""

from django.urls import path

from conversations.views import chat

app_name = "conversations"

urlpatterns = [
    path("chat/<slug:slug>/", chat.chat, name="chat"),
    path("chat/<slug:slug>/send", chat.chat_send, name="chat-send"),
    path("chat/<slug:slug>/c/<uuid:conversation_id>/", chat.conversation_open, name="conversation"),
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
