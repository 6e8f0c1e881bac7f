"""Access to conversations: an end user reaches only their own; a member who may change the flow
reviews all of its conversations (read only). Built on ``flows.access``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from conversations.models import Conversation, Message
from studio.access import fetch, has_perm

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
