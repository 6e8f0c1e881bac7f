"""What the chat page and the embed widget share around a message: the context its bubbles
render with, and a rating read from the answer's feedback form."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import QueryDict

from conversations.models import Conversation, Message
from conversations.services import Exchange, message_feedback


def exchange_context(exchange: Exchange, conversation: Conversation) -> dict:
    """The ``#sent`` partial's context for an exchange just made (sent or regenerated)."""
    return {
        "conversation": conversation,
        "message": exchange.question.text,
        "question": exchange.question,
        "run": exchange.run,
        "answer_nodes": ",".join(sorted(exchange.answer_nodes)),
        "answer": exchange.answer,
        "replaced": exchange.replaced,
    }


def feedback_from_form(message: Message, form: QueryDict) -> str | None:
    """Rate ``message`` from its feedback form; the reason it was refused, or None. No rating
    is a comment sent with Enter, for the rating given before."""
    given = form.get("rating", "")
    try:
        rating = int(given) if given else message.feedback
        if rating is None:
            raise ValidationError("Choose 👍 or 👎 first.")
        message_feedback(message=message, rating=rating, comment=form.get("comment", ""))
    except ValueError:
        return "Bad rating."
    except ValidationError as exc:
        return "; ".join(exc.messages)
    return None
