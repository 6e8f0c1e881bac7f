"""The embed widget's chat: the same conversations, bubbles and services as the chat page, for
an end user named by the widget's token (``Authorization: Bearer``), never by a cookie.

Each view is reached through ``widget_view``, which reads the token and checks the flow, the
embedding web site and the request's origin (``access_widget_flow``) before the view runs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from conversations.access import (
    access_widget_conversation,
    access_widget_flow,
    access_widget_message,
)
from conversations.limits import message_too_long
from conversations.models import Conversation, Source
from conversations.selectors import conversation_messages
from conversations.services import (
    conversation_delete,
    conversation_start,
    message_regenerate,
    message_send,
    message_stop,
    messages_settle,
)
from conversations.views.exchanges import exchange_context, feedback_from_form
from conversations.views.widget import own_origin, request_origin
from conversations.widget import widget_admit
from conversations.widget_tokens import TokenRefused, WidgetSession, bearer, token_read
from flows import selectors as flow_selectors
from flows.models import Flow, RunSource

# The widget's controls post to these routes; its end users do not see runs.
ROUTES = {
    "feedback": "conversations:widget-feedback",
    "stop": "conversations:widget-stop",
    "regenerate": "conversations:widget-regenerate",
    "run_links": False,
}


def widget_view(view: Callable) -> Callable:
    """The view with the widget's ``flow``, ``settings`` and ``session``; 401 for a missing or
    expired token (the widget asks for a new one), 403 for an origin or member refused."""

    @csrf_exempt  # no cookie is read: the token is the credential
    @wraps(view)
    def checked(request: HttpRequest, embed_id: str, *args, **kwargs) -> HttpResponse:
        try:
            session = token_read(bearer(request.headers.get("Authorization")))
            flow, settings = access_widget_flow(
                session, embed_id, own_origin=own_origin(request), origin=request_origin(request)
            )
        except TokenRefused as exc:
            return HttpResponse(str(exc), status=401, content_type="text/plain")
        except PermissionDenied as exc:
            return HttpResponse(str(exc), status=403, content_type="text/plain")
        request.widget = (flow, settings, session)
        return view(request, *args, **kwargs)

    return checked


def _render(request: HttpRequest, part: str, context: dict, status: int = 200) -> HttpResponse:
    flow, settings, _ = request.widget
    base = {"flow": flow, "routes": ROUTES, "route_key": settings.embed_id, "greeting": settings}
    context = base | context
    return render(request, f"conversations/chat.html{part}", context, status=status)


def _answer_nodes(flow: Flow) -> str:
    try:
        return ",".join(sorted(flow_selectors.chat_binding(flow.published_version).answer_nodes))
    except ValidationError:
        return ""


def _member(session: WidgetSession):
    """The member a signed-in widget speaks for (``access_widget_flow`` has checked that they
    may still run the flow), so that their conversations and runs are theirs; None for a
    visitor."""
    if session.user_id is None:
        return None
    return get_user_model().objects.filter(pk=session.user_id).first()


def _mine(session: WidgetSession, flow: Flow):
    return Conversation.objects.filter(
        flow=flow, source=Source.WIDGET, end_user=session.end_user
    ).order_by("-updated_at")


@require_GET
@widget_view
def widget_conversations(request: HttpRequest) -> HttpResponse:
    """The end user's conversations with the flow, the latest first."""
    flow, settings, session = request.widget
    context = {"conversations": _mine(session, flow)[:50], "embed_id": settings.embed_id}
    return render(request, "conversations/widget.html#conversation-list", context)


@require_GET
@widget_view
def widget_conversation(request: HttpRequest, conversation_id) -> HttpResponse:
    """A conversation's messages (or, for ``new``, the greeting of a new one)."""
    flow, _, session = request.widget
    conversation = None
    messages = []
    if conversation_id != "new":
        conversation = access_widget_conversation(session, conversation_id)
        messages_settle(conversation)
        messages = conversation_messages(conversation)
    context = {
        "conversation": conversation,
        "messages": messages,
        "answer_nodes": _answer_nodes(flow),
    }
    return _render(request, "#history", context)


@require_POST
@widget_view
def widget_send(request: HttpRequest) -> HttpResponse:
    """Send a message in the form's conversation (a new one when it names none), within the end
    user's and the workspace's limits (429 with Retry-After past them)."""
    flow, settings, session = request.widget
    text = request.POST.get("message", "")
    if too_long := message_too_long(text):
        # Refused before anything is stored or counted, and not echoed back as a bubble.
        return _render(request, "#sent", {"error": too_long}, 400)
    context: dict = {"message": text.strip()}
    conversation_id = request.POST.get("conversation", "")
    try:
        if conversation_id:
            conversation = access_widget_conversation(session, conversation_id)
            messages_settle(conversation)  # its last answer's tokens count before this message
        elif not text.strip():
            raise ValidationError("Type a message first.")
        refusal = widget_admit(session=session, flow=flow, settings=settings)
        if refusal is not None:
            context["error"] = refusal.message
            response = _render(request, "#sent", context, 429)
            response["Retry-After"] = str(refusal.retry_after)
            return response
        member = _member(session)
        if not conversation_id:
            conversation = conversation_start(
                flow=flow, user=member, end_user=session.end_user, source=Source.WIDGET
            )
        exchange = message_send(
            conversation=conversation, text=text, source=RunSource.WIDGET, user=member
        )
        context |= exchange_context(exchange, conversation)
    except ValidationError as exc:
        context["error"] = "; ".join(exc.messages)
    return _render(request, "#sent", context, 400 if "error" in context else 200)


@require_POST
@widget_view
def widget_feedback(request: HttpRequest, message_id: int) -> HttpResponse:
    _, _, session = request.widget
    message = access_widget_message(session, message_id)
    if refused := feedback_from_form(message, request.POST):
        return HttpResponse(refused, status=400)
    return _render(request, "#feedback", {"answer": message})


@require_POST
@widget_view
def widget_stop(request: HttpRequest, message_id: int) -> HttpResponse:
    _, _, session = request.widget
    try:
        message_stop(answer=access_widget_message(session, message_id))
    except ValidationError as exc:
        return HttpResponse("; ".join(exc.messages), status=400)
    return HttpResponse(status=204)


@require_POST
@widget_view
def widget_regenerate(request: HttpRequest, message_id: int) -> HttpResponse:
    flow, settings, session = request.widget
    answer = access_widget_message(session, message_id)
    refusal = widget_admit(session=session, flow=flow, settings=settings)
    if refusal is not None:
        response = _render(request, "#sent", {"error": refusal.message}, 429)
        response["Retry-After"] = str(refusal.retry_after)
        return response
    try:
        exchange = message_regenerate(answer=answer, source=RunSource.WIDGET, user=_member(session))
    except ValidationError as exc:
        return _render(request, "#sent", {"error": "; ".join(exc.messages)}, 400)
    context = exchange_context(exchange, answer.conversation)
    return _render(request, "#sent", context)


@require_POST
@widget_view
def widget_conversation_delete(request: HttpRequest, conversation_id) -> HttpResponse:
    _, _, session = request.widget
    conversation_delete(conversation=access_widget_conversation(session, conversation_id))
    return HttpResponse(status=204)
