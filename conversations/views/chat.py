"""The chat page of a published flow: the user's conversations with it, each one multi-turn."""

from __future__ import annotations

import contextlib

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from conversations.access import access_conversation, access_message
from conversations.limits import MAX_MESSAGE_CHARS, message_too_long
from conversations.models import Conversation
from conversations.selectors import chat_settings_of, conversation_messages, conversations_of
from conversations.services import (
    conversation_delete,
    conversation_rename,
    conversation_start,
    message_regenerate,
    message_send,
    message_stop,
    messages_settle,
)
from conversations.views.exchanges import exchange_context, feedback_from_form
from flows import selectors as flow_selectors
from flows.access import access_served_flow
from flows.models import Flow, RunSource
from studio.headers import content_security_policy
from workspaces.access import current_workspace
from workspaces.quotas import workspace_admit

# The chat page's controls post to these routes, and its answers link to their runs.
ROUTES = {
    "feedback": "conversations:message-feedback",
    "stop": "conversations:message-stop",
    "regenerate": "conversations:message-regenerate",
    "run_links": True,
}


def _render(request: HttpRequest, part: str, context: dict, status: int = 200) -> HttpResponse:
    context = context | {"routes": ROUTES, "route_key": context["flow"].slug}
    return render(request, f"conversations/chat.html{part}", context, status=status)


def _refused(request: HttpRequest, context: dict, refusal) -> HttpResponse:
    """The error bubble of a message past the workspace's limits (429, with Retry-After)."""
    response = _render(request, "#sent", context | {"error": refusal.message}, 429)
    response["Retry-After"] = str(refusal.retry_after)
    return response


def _page(request: HttpRequest, flow: Flow, conversation: Conversation | None) -> HttpResponse:
    messages = []
    if conversation is not None:
        messages_settle(conversation)
        messages = conversation_messages(conversation)
    answer_nodes = ""
    if flow.published_version is not None:
        with contextlib.suppress(ValidationError):
            binding = flow_selectors.chat_binding(flow.published_version)
            answer_nodes = ",".join(sorted(binding.answer_nodes))
    context = {
        "workspace": flow.workspace,
        "flow": flow,
        "conversation": conversation,
        "conversations": conversations_of(request.user, flow)[:100],
        "messages": messages,
        "answer_nodes": answer_nodes,
        "greeting": chat_settings_of(flow),
        "max_message_chars": MAX_MESSAGE_CHARS,
    }
    response = _render(request, "", context)
    if context["greeting"].remote_images:
        # The flow allows answers to show images from other servers (https only).
        images = "'self' data: https:"
        response["Content-Security-Policy"] = content_security_policy(request, img_src=images)
    return response


@login_required
@require_GET
def chat(request: HttpRequest, slug: str) -> HttpResponse:
    """A new conversation (it is stored with its first message), beside the user's others."""
    flow = access_served_flow(request.user, current_workspace(request), slug, "run")
    return _page(request, flow, None)


@login_required
@require_GET
def conversation_open(request: HttpRequest, slug: str, conversation_id) -> HttpResponse:
    flow = access_served_flow(request.user, current_workspace(request), slug, "run")
    conversation = access_conversation(request.user, conversation_id, "send")
    if conversation.flow_id != flow.id:
        return redirect("conversations:chat", slug=flow.slug)
    return _page(request, flow, conversation)


@login_required
@require_POST
def chat_send(request: HttpRequest, slug: str) -> HttpResponse:
    """Send the typed message in the form's conversation (a new one when it names none) and
    render its two bubbles, and the conversation's id for the next message."""
    flow = access_served_flow(request.user, current_workspace(request), slug, "run")
    message = request.POST.get("message", "")
    if too_long := message_too_long(message):
        # Refused before anything is stored, and not echoed back as a bubble.
        return _render(request, "#sent", {"flow": flow, "error": too_long}, 400)
    context: dict = {"flow": flow, "message": message.strip()}
    conversation_id = request.POST.get("conversation", "")
    try:
        if conversation_id:
            conversation = access_conversation(request.user, conversation_id, "send")
            if conversation.flow_id != flow.id:
                raise ValidationError("That conversation belongs to another flow.")
        elif not message.strip():
            raise ValidationError("Type a message first.")
        if refusal := workspace_admit(flow.workspace):
            return _refused(request, context, refusal)
        if not conversation_id:
            conversation = conversation_start(flow=flow, user=request.user)
        exchange = message_send(
            conversation=conversation, text=message, source=RunSource.CHAT, user=request.user
        )
        context |= exchange_context(exchange, conversation)
    except ValidationError as exc:
        context["error"] = "; ".join(exc.messages)
    status = 400 if "error" in context else 200
    response = _render(request, "#sent", context, status)
    if status == 200 and not conversation_id:
        # A reload (or a shared link) opens the conversation this message started.
        response["HX-Push-Url"] = reverse(
            "conversations:conversation", args=[flow.slug, context["conversation"].id]
        )
    return response


@login_required
@require_POST
def message_feedback_view(request: HttpRequest, slug: str, message_id: int) -> HttpResponse:
    """Thumbs up or down on an answer, with an optional comment; renders the answer's controls."""
    access_served_flow(request.user, current_workspace(request), slug, "run")
    message = access_message(request.user, message_id, "change")
    if refused := feedback_from_form(message, request.POST):
        return HttpResponse(refused, status=400)
    context = {"flow": message.conversation.flow, "answer": message}
    return _render(request, "#feedback", context)


@login_required
@require_POST
def message_stop_view(request: HttpRequest, slug: str, message_id: int) -> HttpResponse:
    """Stop an answer being written: its run fails as stopped, which its bubble shows."""
    access_served_flow(request.user, current_workspace(request), slug, "run")
    message = access_message(request.user, message_id, "send")
    try:
        message_stop(answer=message)
    except ValidationError as exc:
        return HttpResponse("; ".join(exc.messages), status=400)
    return HttpResponse(status=204)


@login_required
@require_POST
def message_regenerate_view(request: HttpRequest, slug: str, message_id: int) -> HttpResponse:
    """Ask the last question again: the old exchange leaves the page, the new one streams."""
    flow = access_served_flow(request.user, current_workspace(request), slug, "run")
    answer = access_message(request.user, message_id, "send")
    if refusal := workspace_admit(flow.workspace):
        return _refused(request, {"flow": flow}, refusal)
    try:
        exchange = message_regenerate(answer=answer, source=RunSource.CHAT, user=request.user)
    except ValidationError as exc:
        context = {"flow": flow, "error": "; ".join(exc.messages)}
        return _render(request, "#sent", context, 400)
    context = {"flow": flow} | exchange_context(exchange, answer.conversation)
    return _render(request, "#sent", context)


@login_required
@require_POST
def conversation_rename_view(request: HttpRequest, slug: str, conversation_id) -> HttpResponse:
    flow = access_served_flow(request.user, current_workspace(request), slug, "run")
    conversation = access_conversation(request.user, conversation_id, "change")
    try:
        conversation_rename(conversation=conversation, title=request.POST.get("title", ""))
    except ValidationError as exc:
        return HttpResponse("; ".join(exc.messages), status=400)
    return redirect("conversations:conversation", slug=flow.slug, conversation_id=conversation.id)


@login_required
@require_POST
def conversation_delete_view(request: HttpRequest, slug: str, conversation_id) -> HttpResponse:
    flow = access_served_flow(request.user, current_workspace(request), slug, "run")
    conversation = access_conversation(request.user, conversation_id, "delete")
    conversation_delete(conversation=conversation)
    return redirect("conversations:chat", slug=flow.slug)
