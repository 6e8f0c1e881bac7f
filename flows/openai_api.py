"""An OpenAI-compatible face for published flows: ``GET /v1/models``, ``POST /v1/chat/completions``.

``model`` is a published flow's slug; the last user message feeds the flow's first text input;
the answer is the flow's output. Streaming carries the tokens of the nodes that feed the output.
Other apps serve their models through flows too (``register_models``): a published agent is
``model=<agent slug>`` (``agent.<slug>`` when a flow has that slug), its tool calls on the
server.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from pydantic import BaseModel, ConfigDict, Field

from catalog.engines.base import is_context_refusal
from flows.access import access_published_flow
from flows.api import start_run
from flows.experiments import serving_version
from flows.models import Flow, Run, RunSource, RunStatus
from flows.runtime.waiting import run_events, run_wait
from flows.selectors import chat_binding, published_flows, run_answer_text
from studio import access, events, openapi
from studio.json_api import PageQuery, error, forbidden, page_response, parse_body
from studio.sse import sse_response
from workspaces.authentication import authenticate
from workspaces.models import ApiKey


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


def _history(messages: list[Message]) -> list[dict]:
    """The turns before the last user message: the conversation the flow's model nodes may
    remember (``Run.history``). System and tool messages are the flow's own business."""
    last = max(i for i, m in enumerate(messages) if m.role == "user")
    turns = [m for m in messages[:last] if m.role in ("user", "assistant")]
    return [{"role": m.role, "content": m.text()} for m in turns]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    # Sampling fields (temperature, max_tokens…) are accepted and left to the flow's own nodes.
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=100)
    messages: list[Message] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    # OpenAI's end-user id: during an A/B experiment it keeps the user's arm.
    user: str | None = Field(default=None, max_length=512)


class ModelOut(BaseModel):
    id: str = Field(
        description="The published flow's slug, or the published agent's (``agent.<slug>`` "
        "when a flow has its slug)."
    )
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    """OpenAI's list; ``page``, ``per_page`` and ``has_more`` only when a page was asked for."""

    object: Literal["list"] = "list"
    data: list[ModelOut]
    page: int | None = None
    per_page: int | None = None
    has_more: bool | None = None


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int
    message: CompletionMessage
    finish_reason: str


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage


@dataclass(frozen=True)
class ModelSource:
    """Models served beside the published flows, through the flows that serve them (``agents``
    registers its published agents): ``listed(api_key)`` gives ``(name, flow)`` for each one
    the key may run; ``find(api_key, name)`` the flow a name runs, or None when the name is not
    one of its models (then it names a flow), raising as ``access_published_flow`` does."""

    listed: Callable[[ApiKey], list[tuple[str, Flow]]]
    find: Callable[[ApiKey, str], Flow | None]


_MODEL_SOURCES: list[ModelSource] = []


def register_models(source: ModelSource) -> None:
    """Called by an app's ``ready()``."""
    if source not in _MODEL_SOURCES:
        _MODEL_SOURCES.append(source)


def _runnable_models(api_key) -> list[tuple[str, Flow]]:
    """The models the key may run, by name: its published flows (by slug) and the registered
    sources' models; a key without flow access lists none."""
    flows = published_flows(api_key.workspace_id)
    runnable = access.scope(api_key, api_key.workspace_id, flows, "run")
    models = [(flow.slug, flow) for flow in runnable]
    for source in _MODEL_SOURCES:
        models += source.listed(api_key)
    return sorted(models, key=lambda model: model[0])


def _model_flow(api_key, name: str) -> Flow:
    """The flow the model ``name`` runs: a registered source's, else the published flow of
    that slug (Http404, PermissionDenied as ``access_published_flow``)."""
    for source in _MODEL_SOURCES:
        flow = source.find(api_key, name)
        if flow is not None:
            return flow
    return access_published_flow(api_key, name)


@openapi.operation(
    "GET",
    summary="List the published flows and agents the key may run, as models",
    tag="OpenAI-compatible",
    description="OpenAI's clients read the whole list, so without `page` or `per_page` every "
    "model is listed; with either, one page, with `page`, `per_page` and `has_more`.",
    query=PageQuery,
    answers=[openapi.Answer(200, "The models.", ModelList)],
)
@require_GET
async def models(request: HttpRequest) -> HttpResponse:
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    listed = await sync_to_async(_runnable_models)(api_key)
    owner = api_key.workspace.slug

    def shape(model: tuple[str, Flow]) -> dict:
        name, flow = model
        created = int(flow.created_at.timestamp())
        return ModelOut(id=name, created=created, owned_by=owner).model_dump()

    if "page" in request.GET or "per_page" in request.GET:
        return page_response(request, listed, shape, envelope={"object": "list"})
    return JsonResponse(
        ModelList(data=[shape(model) for model in listed]).model_dump(exclude_none=True)
    )


def _usage(usage: dict) -> dict:
    return {
        "prompt_tokens": usage.get("input_tokens", 0),
        "completion_tokens": usage.get("output_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
    }


@openapi.operation(
    "POST",
    summary="Run a published flow or agent as a chat model (OpenAI-compatible)",
    tag="OpenAI-compatible",
    description="`model` is a published flow's slug; the last user message is its input, the "
    "earlier user and assistant turns its history. With `stream` the answer is OpenAI's "
    "`chat.completion.chunk` events, ending with `data: [DONE]`.",
    body=ChatRequest,
    answers=[
        openapi.Answer(200, "The completion, or its chunks (stream).", ChatCompletion, events=True)
    ],
    errors=(400, 403, 404, 413, 502),
)
@csrf_exempt
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    body = parse_body(request, ChatRequest)
    if isinstance(body, HttpResponse):
        return body
    user_messages = [m for m in body.messages if m.role == "user"]
    if not user_messages:
        return error(400, "messages must contain a user message.")
    try:
        flow = await sync_to_async(_model_flow)(api_key, body.model)
        # An A/B experiment keeps a caller's arm by its Idempotency-Key, else OpenAI's ``user``.
        split_key = request.headers.get("Idempotency-Key") or body.user or None
        served = await sync_to_async(serving_version)(flow, split_key)
        binding = await sync_to_async(chat_binding)(served[0])
        run = await sync_to_async(start_run)(
            flow=flow,
            inputs={binding.input: user_messages[-1].text()},
            api_key=api_key,
            source=RunSource.OPENAI,
            history=_history(body.messages),
            served=served,
        )
    except Http404:
        return error(404, f"The model {body.model!r} does not exist.", code="model_not_found")
    except PermissionDenied as exc:
        return forbidden(exc)
    except ValidationError as exc:
        return error(400, "; ".join(exc.messages))
    completion_id = f"chatcmpl-{run.id.hex}"
    created = int(time.time())
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _stream(
            run.id, completion_id, created, body.model, binding.answer_nodes, include_usage
        )
        return sse_response(chunks)
    run = await run_wait(run)
    if run.status != RunStatus.SUCCEEDED:
        if is_context_refusal(run.error):
            return error(400, run.error, "invalid_request_error", "context_length_exceeded")
        return error(502, f"The flow run failed: {run.error}", "server_error", "run_failed")
    return JsonResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": run_answer_text(run)},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(run.usage),
        }
    )


async def _stream(
    run_id, completion_id: str, created: int, model: str, answer_nodes: frozenset[str], usage: bool
) -> AsyncIterator[str]:
    def chunk(delta: dict, finish: str | None = None) -> str:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    streamed = False
    async for event in run_events(run_id):
        if event is None:
            yield ": keep-alive\n\n"
        elif event["type"] == events.TOKEN and event["node"] in answer_nodes:
            streamed = True
            yield chunk({"content": event["data"]["text"]})
        elif event["type"] == events.RUN_FAILED:
            reason = event["data"].get("reason")
            message = (
                {
                    "message": reason,
                    "type": "invalid_request_error",
                    "code": "context_length_exceeded",
                }
                if is_context_refusal(reason)
                else {
                    "message": f"The flow run failed: {reason}",
                    "type": "server_error",
                    "code": "run_failed",
                }
            )
            yield f"data: {json.dumps({'error': message})}\n\n"
            return
        elif event["type"] == events.RUN_FINISHED:
            if not streamed:  # a flow without streaming nodes: send its answer whole
                run = await Run.objects.aget(id=run_id)
                yield chunk({"content": run_answer_text(run)})
            yield chunk({}, "stop")
            if usage:
                payload = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(event["data"].get("usage", {})),
                }
                yield f"data: {json.dumps(payload)}\n\n"
    yield "data: [DONE]\n\n"
