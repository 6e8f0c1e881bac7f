"""Conversations with published flows: their messages, and what end users said of the answers."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


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
    # +1 or -1 from the conversation's end user, with what they wrote.
    feedback = models.SmallIntegerField(null=True, blank=True)
    feedback_comment = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


class ChatSettings(models.Model):
    """How a flow's chat greets its end users: an opening message and suggested questions."""

    flow = models.OneToOneField(
        "flows.Flow", on_delete=models.CASCADE, related_name="chat_settings"
    )
    opening = models.TextField(blank=True)
    suggestions = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Chat settings of {self.flow_id}"
