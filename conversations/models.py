"""Conversations with published flows: their messages, and what end users said of the answers."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Source(models.TextChoices):
    CHAT = "chat", "Chat page"
    API = "api", "API"
    WIDGET = "widget", "Embed widget"


class Conversation(models.Model):
    """One end user's thread with a published flow: a member in the studio's chat, or a
    client of the API (its key, and the end user it names)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="conversations"
    )
    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="conversations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    api_key = models.ForeignKey(
        "workspaces.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    end_user = models.CharField(max_length=200, blank=True)
    # Where the thread is held: the studio's chat page, the API, or the embed widget (whose
    # ``end_user`` is the visitor or member its signed token names).
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.CHAT)
    title = models.CharField(max_length=200, blank=True)
    # Values nodes keep between the conversation's turns.
    variables = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["flow", "user", "-updated_at"], name="conversation_flow_user"),
        ]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.id}"


class Role(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class Message(models.Model):
    """A turn: the user's text, or the answer of the run it started (its text once it ended)."""

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField(blank=True)
    run = models.ForeignKey(
        "flows.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Filled from the run when it ends: whether ``text`` is final, and whether a model stopped
    # at its token limit rather than at the answer's end.
    settled = models.BooleanField(default=False)
    cut = models.BooleanField(default=False)
    citations = models.JSONField(default=list, blank=True)
    # What the answer's end could not do, said to the user: conversation variables its run
    # wrote that could not be kept (another turn filled the conversation meanwhile).
    notice = models.CharField(max_length=500, blank=True)
    # +1 or -1 from the conversation's end user, with what they wrote.
    feedback = models.SmallIntegerField(null=True, blank=True)
    feedback_comment = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


class ChatSettings(models.Model):
    """How a flow's chat greets its end users (an opening message, suggested questions), what its
    answers may show, and its embed widget."""

    flow = models.OneToOneField(
        "flows.Flow", on_delete=models.CASCADE, related_name="chat_settings"
    )
    opening = models.TextField(blank=True)
    suggestions = models.JSONField(default=list, blank=True)
    # Whether answers may show images from other servers (each one tells its server who read
    # the answer, and whoever wrote the text picks the server).
    remote_images = models.BooleanField(default=False)
    # The embed widget: off until an editor turns it on; the web sites (origins) that may
    # frame it; how it looks; whether its end users sign in with a studio account.
    embed_enabled = models.BooleanField(default=False)
    # The widget's public address (``/embed/<embed_id>/``): random, so that the widgets of a
    # studio cannot be listed by counting, and set when the widget is first turned on.
    embed_id = models.CharField(max_length=24, unique=True, null=True, blank=True)
    allowed_origins = models.JSONField(default=list, blank=True)
    widget_title = models.CharField(max_length=100, blank=True)
    widget_colour = models.CharField(max_length=7, default="#2563eb")
    sign_in_required = models.BooleanField(default=False)
    # Per end user of the widget (None: no limit beyond the workspace's).
    end_user_requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    end_user_tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Chat settings of {self.flow_id}"
