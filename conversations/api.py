"""Conversations over the REST API (``/api/v1/``), for a client's end users: start one with a
published flow (or a published agent: ``agents.api``), send messages (streamed or not), read
them, rate answers, list and delete.

An API key reaches only the conversations it started; ``user`` names the client's end user
(any string the client chooses) so that one key can keep many users' threads apart. Errors are
``{"error": {"message", "type", "code"}}``; lists are paginated (``page``, ``per_page`` up to
100, ``has_more``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conversations.access import access_key_conversation, access_key_message
from conversations.limits import message_too_long
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
from flows.models import Flow, RunSource
from flows.runtime.waiting import run_events, run_wait
from studio import openapi
from studio.json_api import Page, PageQuery, error, forbidden, page_response, parse_body
from studio.sse import sse_frames, sse_response
from workspaces.authentication import authenticate
from workspaces.models import ApiKey


class ConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(default="", max_length=200)
    title: str = Field(default="", max_length=200)


class MessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    stream: bool = False

    @field_validator("text")
    @classmethod
    def _within_the_limit(cls, text: str) -> str:
        if reason := message_too_long(text):
            raise ValueError(reason)
        return text


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: int = Field(description="1 for a good answer, -1 for a bad one")
    comment: str = Field(default="", max_length=2000)


class ConversationOut(BaseModel):
    id: str
    flow: str
    user: str = Field(description="The client's end user it belongs to.")
    title: str
    variables: dict[str, Any] = {}
    created_at: str
    updated_at: str


class MessageOut(BaseModel):
    id: int
    role: str = Field(description="user or assistant.")
    text: str
    run_id: str | None
    status: str = Field(description="done, or pending while its answer is being written.")
    cut: bool
    citations: list[dict[str, Any]]
    notice: str = Field(
        default="", description="What its end could not do: variables it set that were not kept."
    )
    feedback: int | None
    feedback_comment: str
    created_at: str


class Exchange(BaseModel):
    question: MessageOut
    answer: MessageOut


class ConversationsQuery(PageQuery):
    user: str | None = Field(default=None, description="Only this end user's conversations.")


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
        "notice": message.notice,
        "feedback": message.feedback,
        "feedback_comment": message.feedback_comment,
        "created_at": message.created_at.isoformat(),
    }


def _refused(exc: Exception) -> JsonResponse:
    if isinstance(exc, Http404):
        return error(404, "No such conversation for this API key.", code="not_found")
    if isinstance(exc, PermissionDenied):
        return forbidden(exc)
    return error(400, "; ".join(exc.messages))


# --- a flow's conversations -----------------------------------------------------------------


# What serves conversations under a slug for an API key: a published flow, or the flow that
# serves a published agent (``agents.access.access_published_agent``).
FindFlow = Callable[[ApiKey, str], Flow]


def _start(api_key, slug: str, body: ConversationRequest, find: FindFlow) -> Conversation:
    flow = find(api_key, slug)
    conversation = conversation_start(flow=flow, api_key=api_key, end_user=body.user)
    if body.title.strip():
        conversation.title = " ".join(body.title.split())
        conversation.save(update_fields=["title"])
    return conversation


def _list(request: HttpRequest, api_key, slug: str, find: FindFlow) -> JsonResponse:
    flow = find(api_key, slug)
    mine = Conversation.objects.filter(flow=flow, api_key=api_key).select_related("flow")
    if "user" in request.GET:
        if "\x00" in request.GET["user"]:  # no stored user holds one; PostgreSQL refuses it
            return error(400, "user cannot hold a NUL character.")
        mine = mine.filter(end_user=request.GET["user"])
    return page_response(request, mine.order_by("-updated_at", "id"), conversation_data)


@openapi.operation(
    "GET",
    summary="List the key's conversations with a flow",
    tag="Conversations",
    query=ConversationsQuery,
    answers=[openapi.Answer(200, "A page of conversations, latest first.", Page[ConversationOut])],
    errors=(403, 404),
)
@openapi.operation(
    "POST",
    summary="Start a conversation with a published flow",
    tag="Conversations",
    body=ConversationRequest,
    answers=[openapi.Answer(201, "The conversation.", ConversationOut)],
    errors=(403, 404, 413),
)
@csrf_exempt
@require_http_methods(["GET", "POST"])
async def flow_conversations(request: HttpRequest, slug: str) -> HttpResponse:
    return await published_conversations(request, slug, find=access_published_flow, noun="flow")


async def published_conversations(
    request: HttpRequest, slug: str, *, find: FindFlow, noun: str
) -> HttpResponse:
    """``GET`` and ``POST …/<slug>/conversations`` for whatever ``find`` serves under a slug (a
    flow; the flow that serves an agent): the same bodies, pages and errors; ``noun`` names it
    in the 404. The conversation's own routes (messages, feedback, delete) serve both."""
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    try:
        if request.method == "GET":
            return await sync_to_async(_list)(request, api_key, slug, find)
        body = parse_body(request, ConversationRequest)
        if isinstance(body, HttpResponse):
            return body
        conversation = await sync_to_async(_start)(api_key, slug, body, find)
    except Http404:
        return error(404, f"No published {noun} named {slug!r}.", code=f"{noun}_not_found")
    except (PermissionDenied, ValidationError) as exc:
        return _refused(exc)
    return JsonResponse(conversation_data(conversation), status=201)


# --- one conversation -----------------------------------------------------------------------


def _read_or_delete(request: HttpRequest, api_key, conversation_id) -> HttpResponse:
    conversation = access_key_conversation(api_key, conversation_id)
    if request.method == "DELETE":
        conversation_delete(conversation=conversation)
        return HttpResponse(status=204)
    messages_settle(conversation)  # its variables as its last ended answer left them
    return JsonResponse(conversation_data(conversation))


@openapi.operation(
    "GET",
    summary="Read a conversation",
    tag="Conversations",
    answers=[openapi.Answer(200, "The conversation.", ConversationOut)],
    errors=(403, 404),
)
@openapi.operation(
    "DELETE",
    summary="Delete a conversation and its messages",
    tag="Conversations",
    answers=[openapi.Answer(204, "Deleted.")],
    errors=(403, 404),
)
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
    return page_response(request, conversation_messages(conversation), message_data)


def _send(api_key, conversation_id, text: str):
    conversation = access_key_conversation(api_key, conversation_id)
    return message_send(conversation=conversation, text=text, source=RunSource.API, api_key=api_key)


def _answered(exchange) -> dict[str, Any]:
    messages_settle(exchange.question.conversation)
    answer = Message.objects.get(id=exchange.answer.id)
    return {"question": message_data(exchange.question), "answer": message_data(answer)}


@openapi.operation(
    "GET",
    summary="Read a conversation's messages",
    tag="Conversations",
    query=PageQuery,
    answers=[openapi.Answer(200, "A page of messages, oldest first.", Page[MessageOut])],
    errors=(403, 404),
)
@openapi.operation(
    "POST",
    summary="Send a message and get the answer",
    tag="Conversations",
    description="The message goes with the turns before it. The answer comes whole once its "
    'run ends, or as the run\'s Server-Sent Events with `"stream": true`.',
    body=MessageRequest,
    answers=[
        openapi.Answer(200, "Both turns, or the run's events (stream).", Exchange, events=True)
    ],
    errors=(400, 403, 404, 413),
)
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


@openapi.operation(
    "POST",
    summary="Rate an answer",
    tag="Conversations",
    body=FeedbackRequest,
    answers=[openapi.Answer(200, "The rated message.", MessageOut)],
    errors=(400, 403, 404, 413),
)
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
