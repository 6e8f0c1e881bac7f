"""Reads of conversations: a user's list, the messages, and the history a new run is given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.urls import reverse

from conversations.models import ChatSettings, Conversation, Message, Role
from flows import selectors as flow_selectors
from flows.history import MAX_CHARS, MAX_TURNS
from flows.models import Flow
from studio import access
from workspaces.models import Workspace


def chat_settings_of(flow: Flow) -> ChatSettings:
    """The flow's chat settings (unsaved defaults when none were set)."""
    return ChatSettings.objects.filter(flow=flow).first() or ChatSettings(flow=flow)


def conversations_of(user, flow: Flow) -> QuerySet[Conversation]:
    """The user's own conversations with ``flow``, the latest first."""
    return Conversation.objects.filter(flow=flow, user=user)


def conversations_of_flow(flow: Flow) -> QuerySet[Conversation]:
    """Every conversation with ``flow`` (for those who review it), the latest first, with its
    number of messages and of answers rated up and down."""
    return (
        Conversation.objects.filter(flow=flow)
        .select_related("user", "api_key")
        .annotate(
            message_count=Count("messages"),
            rated_up=Count("messages", filter=Q(messages__feedback=1)),
            rated_down=Count("messages", filter=Q(messages__feedback=-1)),
        )
        .order_by("-updated_at", "id")
    )


def conversation_messages(conversation: Conversation) -> list[Message]:
    return list(conversation.messages.select_related("run"))


def conversation_history(conversation: Conversation) -> list[dict]:
    """The turns a new run of the conversation is given: every message with text, oldest
    first, cut from the oldest end to the history's limits (``flows/history.py``)."""
    rows = conversation.messages.exclude(text="").values_list("role", "text")
    turns = [{"role": role, "content": text} for role, text in rows]
    turns = turns[-MAX_TURNS:]
    while sum(len(t["content"]) for t in turns) > MAX_CHARS:
        turns.pop(0)
    while turns and turns[0]["role"] == Role.ASSISTANT:
        turns.pop(0)
    return turns


@dataclass(frozen=True)
class ChatApp:
    """One thing a member can chat with: a published flow, or another ``kind`` an app
    registers (``register_chat_apps``: agents), with its own URLs."""

    kind: str
    name: str
    slug: str
    chat_url: str
    open_url: str


# What other apps offer to chat with, each a function of (user, workspace); ``agents`` adds its
# published agents from its ``ready()``.
_APP_SOURCES: list[Callable[[Any, Workspace], list[ChatApp]]] = []


def register_chat_apps(source: Callable[[Any, Workspace], list[ChatApp]]) -> None:
    if source not in _APP_SOURCES:
        _APP_SOURCES.append(source)


def chat_apps(user, workspace: Workspace) -> list[ChatApp]:
    """What ``user`` may chat with in ``workspace``, by name: the published flows they may run
    and what the registered sources offer them."""
    flows = access.scope(
        user, workspace.id, flow_selectors.published_flows(workspace.id), "run"
    ).order_by("name")
    apps = [
        ChatApp(
            kind="flow",
            name=flow.name,
            slug=flow.slug,
            chat_url=reverse("conversations:chat", args=[flow.slug]),
            open_url=reverse("flows:flow-detail", args=[flow.slug]),
        )
        for flow in flows
    ]
    for source in _APP_SOURCES:
        apps += source(user, workspace)
    return sorted(apps, key=lambda app: (app.name.lower(), app.kind, app.slug))
