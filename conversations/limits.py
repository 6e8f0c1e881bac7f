"""How long one chat message may be, wherever it enters: the chat page, the widget, the
conversations API (and the page's script, which is given the same number)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from flows.services.runs import MAX_TEXT_CHARS

# A message is a flow's text input: one limit for both.
MAX_MESSAGE_CHARS = MAX_TEXT_CHARS


def message_too_long(text: str) -> str:
    """Why ``text`` is too long to send, naming the limit, or ""."""
    if len(text) <= MAX_MESSAGE_CHARS:
        return ""
    return (
        f"The message is {len(text):,} characters; a message is at most "
        f"{MAX_MESSAGE_CHARS:,} characters. Nothing was sent."
    )


def message_text_check(text: str) -> None:
    """ValidationError naming the limit for a message past it."""
    if reason := message_too_long(text):
        raise ValidationError(reason)
