"""Access to conversations: an end user reaches only their own; a member who may change the flow
reviews all of its conversations (read only). Built on ``flows.access``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404

from conversations.models import ChatSettings, Conversation, Message, Source
from conversations.widget_tokens import WidgetSession
from flows.models import Flow
from studio.access import fetch, has_perm

User = get_user_model()

# What a conversation's own end user may do; a reviewer may only ``view``.
ACTIONS = ("view", "send", "change", "delete")


def access_key_conversation(api_key, conversation_id: Any) -> Conversation:
    """A conversation an API key reaches: one it started, with a flow it may still run.
    Http404 for any other (no probing for ids), PermissionDenied when its flow is out of the
    key's reach now."""
    conversation = fetch(Conversation, "flow", id=conversation_id)
    if conversation.api_key_id != api_key.id:
        raise Http404
    if not has_perm(api_key, conversation.flow, "run"):
        raise PermissionDenied("This API key may not run this conversation's flow.")
    return conversation


def access_key_message(api_key, message_id: Any) -> Message:
    message = fetch(Message, "conversation", id=message_id)
    access_key_conversation(api_key, message.conversation_id)
    return message


def access_message(user, message_id: Any, action: str) -> Message:
    """A message, by its conversation's access (``access_conversation``)."""
    message = fetch(Message, "conversation", id=message_id)
    access_conversation(user, message.conversation_id, action)
    return message


def access_conversation(user, conversation_id: Any, action: str) -> Conversation:
    """The conversation if ``user`` may take ``action`` on it: its own user may take any, while
    they may still run the flow; a member who may change the flow may view it. Http404 for
    anyone else (no probing for ids), PermissionDenied for a reviewer asking more than view."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    conversation = fetch(Conversation, "flow", id=conversation_id)
    own = user.is_authenticated and conversation.user_id == user.pk
    if own and has_perm(user, conversation.flow, "run"):
        return conversation
    if has_perm(user, conversation.flow, "change"):
        if action == "view":
            return conversation
        raise PermissionDenied("only its own user may change a conversation")
    raise Http404


def conversation_of_flow(flow: Flow, conversation_id: Any) -> Conversation:
    """A conversation with ``flow``, for a reviewer whose access to ``flow`` (or to the agent it
    serves) the caller has checked; Http404 for a conversation with any other flow."""
    return fetch(Conversation, "flow", "user", "api_key", id=conversation_id, flow=flow)


# --- the embed widget ---------------------------------------------------------------------


def access_widget_flow(
    session: WidgetSession, embed_id: str, *, own_origin: str, origin: str | None
) -> tuple[Flow, ChatSettings]:
    """The flow a widget session may chat with, and its chat settings: the token's flow,
    published, with its widget on, embedded on an origin its editors listed (or the studio's
    own pages), reached from that origin or the studio's own (``origin``: the request's
    ``Origin`` header, None when it sent none). A signed-in session's member must still be
    allowed to run it. Http404 when the flow is not the token's or cannot be embedded,
    PermissionDenied (its reason said) for the rest."""
    settings = widget_settings(embed_id)
    flow = settings.flow
    if flow.id != session.flow_id:
        raise Http404
    if session.origin != own_origin and session.origin not in settings.allowed_origins:
        raise PermissionDenied(f"This chat may not be embedded on {session.origin}.")
    if origin is not None and origin not in (own_origin, session.origin):
        raise PermissionDenied(f"Requests from {origin} may not use this chat.")
    if session.user_id is not None:
        user = User.objects.filter(pk=session.user_id, is_active=True).first()
        if user is None or not has_perm(user, flow, "run"):
            raise PermissionDenied("You may no longer use this chat: sign in again.")
    elif settings.sign_in_required:
        raise PermissionDenied("Sign in to use this chat.")
    return flow, settings


def widget_settings(embed_id: str) -> ChatSettings:
    """The chat settings of the published flow whose widget is at ``embed_id``, if it is on;
    Http404 otherwise (an unpublished flow, a widget turned off, an unknown id)."""
    settings = (
        ChatSettings.objects.select_related("flow", "flow__published_version")
        .filter(embed_id=embed_id, embed_enabled=True, flow__published_version__isnull=False)
        .first()
    )
    if settings is None:
        raise Http404
    return settings


def access_widget_conversation(session: WidgetSession, conversation_id: Any) -> Conversation:
    """A conversation of the widget session's end user with its flow; Http404 for any other."""
    conversation = fetch(Conversation, "flow", id=conversation_id)
    if (
        conversation.source != Source.WIDGET
        or conversation.flow_id != session.flow_id
        or conversation.end_user != session.end_user
    ):
        raise Http404
    return conversation


def access_widget_message(session: WidgetSession, message_id: Any) -> Message:
    message = fetch(Message, "conversation", id=message_id)
    access_widget_conversation(session, message.conversation_id)
    return message
