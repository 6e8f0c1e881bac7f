"""Conversations over the REST API (``/api/v1/``), for a client's end users: start one with a
published flow, send messages (streamed or not), read them, rate answers, list and delete.

An API key reaches only the conversations it started; ``user`` names the client's end user
(any string the client chooses) so that one key can keep many users' threads apart. Errors are
``{"error": {"message", "type", "code"}}``; lists are paginated (``page``, ``per_page`` up to
100, ``has_more``)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import EmptyPage, Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from pydantic import BaseModel, ConfigDict, Field

from conversations.access import access_key_conversation, access_key_message
from conversations.models import Conversation, Message
from conversations.selectors import conversation_messages
from conversations.services import (
    conversation_delete,
    conversation_start,
    message_feedback,
    message_send,
    messages_settle,
)
from flows.access import access_published_flow
from flows.models import RunSource
from flows.runtime.waiting import run_events, run_wait
from studio.json_api import error, forbidden, parse_body
from studio.sse import sse_frames, sse_response
from workspaces.authentication import authenticate

PER_PAGE_MAX = 100


class ConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(default="", max_length=200)
    title: str = Field(default="", max_length=200)


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=200_000)
    stream: bool = False


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: int = Field(description="1 for a good answer, -1 for a bad one")
    comment: str = Field(default="", max_length=2000)


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "flow": conversation.flow.slug,
        "user": conversation.end_user,
        "title": conversation.title,
        "variables": conversation.variables,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }


def message_data(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "text": message.text,
        "run_id": str(message.run_id) if message.run_id else None,
        "status": "done" if message.role == "user" or message.settled else "pending",
        "cut": message.cut,
        "citations": message.citations,
        "feedback": message.feedback,
        "feedback_comment": message.feedback_comment,
        "created_at": message.created_at.isoformat(),
    }


def _page(request: HttpRequest, items, shape) -> JsonResponse:
    """One page of ``items``: ``?page=`` (from 1) and ``?per_page=`` (1 to 100, 20 if unset)."""
    try:
        number = int(request.GET.get("page", "1"))
        per_page = int(request.GET.get("per_page", "20"))
    except ValueError:
        return error(400, "page and per_page must be whole numbers.")
    if number < 1 or not 1 <= per_page <= PER_PAGE_MAX:
        return error(400, f"page must be at least 1 and per_page between 1 and {PER_PAGE_MAX}.")
    paginator = Paginator(items, per_page)
    try:
        page = paginator.page(number)
        data = [shape(item) for item in page]
        more = page.has_next()
    except EmptyPage:
        data, more = [], False
    return JsonResponse({"data": data, "page": number, "per_page": per_page, "has_more": more})


def _refused(exc: Exception) -> JsonResponse:
    if isinstance(exc, Http404):
        return error(404, "No such conversation for this API key.", code="not_found")
    if isinstance(exc, PermissionDenied):
        return forbidden(exc)
    return error(400, "; ".join(exc.messages))


# --- a flow's conversations -----------------------------------------------------------------


def _start(api_key, slug: str, body: ConversationRequest) -> Conversation:
    flow = access_published_flow(api_key, slug)
    conversation = conversation_start(flow=flow, api_key=api_key, end_user=body.user)
    if body.title.strip():
        conversation.title = " ".join(body.title.split())
        conversation.save(update_fields=["title"])
    return conversation


def _list(request: HttpRequest, api_key, slug: str) -> JsonResponse:
    flow = access_published_flow(api_key, slug)
    mine = Conversation.objects.filter(flow=flow, api_key=api_key).select_related("flow")
    if "user" in request.GET:
        mine = mine.filter(end_user=request.GET["user"])
    return _page(request, mine.order_by("-updated_at", "id"), conversation_data)


@csrf_exempt
@require_http_methods(["GET", "POST"])
async def flow_conversations(request: HttpRequest, slug: str) -> HttpResponse:
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    try:
        if request.method == "GET":
            return await sync_to_async(_list)(request, api_key, slug)
        body = parse_body(request, ConversationRequest)
        if isinstance(body, HttpResponse):
            return body
        conversation = await sync_to_async(_start)(api_key, slug, body)
    except Http404:
        return error(404, f"No published flow named {slug!r}.", code="flow_not_found")
    except (PermissionDenied, ValidationError) as exc:
        return _refused(exc)
    return JsonResponse(conversation_data(conversation), status=201)


# --- one conversation -----------------------------------------------------------------------


def _read_or_delete(request: HttpRequest, api_key, conversation_id) -> HttpResponse:
    conversation = access_key_conversation(api_key, conversation_id)
    if request.method == "DELETE":
        conversation_delete(conversation=conversation)
        return HttpResponse(status=204)
    return JsonResponse(conversation_data(conversation))


@csrf_exempt
@require_http_methods(["GET", "DELETE"])
async def conversation_detail(request: HttpRequest, conversation_id) -> HttpResponse:
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    try:
        return await sync_to_async(_read_or_delete)(request, api_key, conversation_id)
    except (Http404, PermissionDenied) as exc:
        return _refused(exc)


def _messages(request: HttpRequest, api_key, conversation_id) -> JsonResponse:
    conversation = access_key_conversation(api_key, conversation_id)
    messages_settle(conversation)
    return _page(request, conversation_messages(conversation), message_data)


def _send(api_key, conversation_id, text: str):
    conversation = access_key_conversation(api_key, conversation_id)
    return message_send(conversation=conversation, text=text, source=RunSource.API, api_key=api_key)


def _answered(exchange) -> dict[str, Any]:
    messages_settle(exchange.question.conversation)
    answer = Message.objects.get(id=exchange.answer.id)
    return {"question": message_data(exchange.question), "answer": message_data(answer)}


@csrf_exempt
@require_http_methods(["GET", "POST"])
async def conversation_messages_view(request: HttpRequest, conversation_id) -> HttpResponse:
    """GET: the messages, oldest first. POST ``{"text", "stream"}``: send one; the answer comes
    whole once its run ends, or as the run's Server-Sent Events with ``"stream": true``."""
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    try:
        if request.method == "GET":
            return await sync_to_async(_messages)(request, api_key, conversation_id)
        body = parse_body(request, MessageRequest)
        if isinstance(body, HttpResponse):
            return body
        exchange = await sync_to_async(_send)(api_key, conversation_id, body.text)
    except (Http404, PermissionDenied, ValidationError) as exc:
        return _refused(exc)
    if body.stream:
        return sse_response(sse_frames(run_events(exchange.run.id)))
    await run_wait(exchange.run)
    return JsonResponse(await sync_to_async(_answered)(exchange))


def _rate(api_key, message_id: int, body: FeedbackRequest) -> Message:
    message = access_key_message(api_key, message_id)
    return message_feedback(message=message, rating=body.rating, comment=body.comment)


@csrf_exempt
@require_http_methods(["POST"])
async def message_feedback_view(request: HttpRequest, message_id: int) -> HttpResponse:
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    body = parse_body(request, FeedbackRequest)
    if isinstance(body, HttpResponse):
        return body
    try:
        message = await sync_to_async(_rate)(api_key, message_id, body)
    except (Http404, PermissionDenied, ValidationError) as exc:
        return _refused(exc)
    return JsonResponse(message_data(message))
