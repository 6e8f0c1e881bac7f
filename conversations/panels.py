"""The run page's conversation panel: the turns around a chat run's answer and its feedback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import SafeString

from conversations.access import access_conversation
from conversations.models import Conversation, Message
from conversations.services import messages_settle
from flows.models import FlowKind, Run

if TYPE_CHECKING:
    from django.http import HttpRequest

# The turns shown up to the run's answer: enough to read the answer in its context, bounded so
# that a run deep in a long conversation costs one small query.
TURNS = 20


def run_conversation_panel(
    request: HttpRequest, run: Run, actions: frozenset[str]
) -> SafeString | None:
    """The conversation ``run`` answered in, if any and if the member may view it
    (``access_conversation``: its own user, or a member who may change the flow): another
    member's private chat shows nothing, not even that it exists."""
    answer = Message.objects.filter(run=run).order_by("-id").first()
    if answer is None:  # a run from the editor, the API without a conversation, a sub-flow…
        return None
    try:
        conversation = access_conversation(request.user, answer.conversation_id, "view")
    except (Http404, PermissionDenied):
        return None
    messages_settle(conversation)  # as the review page does: a just-ended answer gets its text
    turns = _turns_until(answer)
    context = {
        "conversation": conversation,
        "answer": turns[-1],  # as settled just now
        "turns": turns[-TURNS:],
        "earlier": len(turns) > TURNS,
        "open_url": _open_url(request.user, conversation, actions),
    }
    return render_to_string("conversations/_run_conversation.html", context, request=request)


def _turns_until(answer: Message) -> list[Message]:
    """The conversation's last ``TURNS + 1`` messages up to ``answer``, oldest first (one more
    than shown, to know whether earlier ones exist)."""
    found = Message.objects.filter(conversation_id=answer.conversation_id, id__lte=answer.id)
    return list(reversed(found.order_by("-id")[: TURNS + 1]))


def _open_url(user, conversation: Conversation, actions: frozenset[str]) -> str:
    """Where the member reads the whole conversation: their own chat, or the flow's review page
    (an agent's review page is the agent's, reached from its conversations list)."""
    flow = conversation.flow
    if conversation.user_id == user.pk and "run" in actions:
        return reverse("conversations:conversation", args=[flow.slug, conversation.id])
    if "change" in actions and flow.kind == FlowKind.FLOW:
        return reverse("conversations:review-detail", args=[flow.slug, conversation.id])
    return ""
