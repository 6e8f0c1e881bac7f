"""The REST API of published flows: start a run (JSON or Server-Sent Events), read a run,
follow a run's events. Authenticated by ``Authorization: Bearer <key>``; only the stored
published version of a flow ever runs. A key reaches the flows its scope names and the runs it
started (``studio.access.access_api_run``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from flows.access import access_api_run, access_published_flow
from flows.experiments import Arm, serving_version
from flows.models import Flow, FlowVersion, Run, RunSource
from flows.runtime.waiting import run_events, run_payload, run_wait
from flows.selectors import version_graph
from flows.services import run_answer, run_create
from flows.services.runs import run_inputs_clean
from studio import openapi
from studio.json_api import error, forbidden, parse_body
from studio.sse import sse_frames, sse_response
from workspaces.authentication import authenticate
from workspaces.models import ApiKey


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = {}
    stream: bool = False


class AnswerRequest(BaseModel):
    """A human-input node's answer (``values``), or a decision on an agent's tool call that
    waits for approval (``approve``, with an optional ``reason`` and the request's ``key``)."""

    model_config = ConfigDict(extra="forbid")
    node: str = Field(max_length=200, description="The waiting node's key (run.waiting's node).")
    values: dict[str, Any] = Field(default={}, description="A human-input node's fields.")
    approve: StrictBool | None = Field(
        default=None, description="For an approval: true runs the call, false refuses it."
    )
    reason: str = Field(
        default="", max_length=2_000, description="Why the call is refused (told to the agent)."
    )
    key: str | None = Field(
        default=None,
        max_length=300,
        description="The approval request's key (run.waiting's data.key): an answer to an "
        "earlier request is refused with 409.",
    )

    def answer(self) -> dict[str, Any]:
        """What the node's type checks: the values, or the approval."""
        if self.approve is None:
            return self.values
        return {"approve": self.approve, "reason": self.reason, "key": self.key}


class RunOut(BaseModel):
    """A run as the API answers it (``flows.runtime.waiting.run_payload``)."""

    run_id: str
    flow: str
    version: int | None
    status: str = Field(description="queued, running, waiting, succeeded or failed.")
    outputs: dict[str, Any]
    usage: dict[str, Any]
    error: str | None
    created_at: str
    finished_at: str | None


class EventsQuery(BaseModel):
    after: int | None = Field(
        default=None, ge=0, description="Resume after this sequence number (or Last-Event-ID)."
    )


class EventsHeaders(BaseModel):
    last_event_id: str | None = Field(
        default=None,
        alias="Last-Event-ID",
        description="Resume after this sequence number (a reconnecting EventSource sends it).",
    )


RUN_EVENTS = (
    "Server-Sent Events: `id` is the sequence number, `event` the type (run.started, "
    "node.started, token, node.finished, run.waiting, run.finished, run.failed…), `data` the "
    "event as JSON."
)


def start_run(
    *,
    flow,
    inputs: dict,
    api_key: ApiKey,
    source: str,
    history: list | None = None,
    idempotency_key: str = "",
    served: tuple[FlowVersion, Arm] | None = None,
) -> Run:
    """A run of the flow's published version, or of ``served``: the version and arm an A/B
    experiment picked (``flows.experiments.serving_version``; the REST runs and the OpenAI
    calls pass it, MCP does not and keeps the published version)."""
    version, arm = served or (flow.published_version, "")
    return run_create(
        flow=flow,
        version=version,
        arm=arm,
        inputs=inputs,
        source=source,
        api_key=api_key,
        history=history,
        idempotency_key=idempotency_key,
    )


# ``Idempotency-Key``: printable ASCII, as Stripe's and the IETF draft's keys are.
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyHeaders(BaseModel):
    idempotency_key: str | None = Field(
        default=None,
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY.pattern,
        description="Makes a retry safe: the same key from the same API key answers with the run "
        "the first request started (header Idempotent-Replayed: true).",
    )


class IdempotencyKeyReused(Exception):
    """The key named an earlier run of another flow or with other inputs."""


def _start_published(
    api_key: ApiKey,
    slug: str,
    inputs: dict,
    idempotency_key: str = "",
    find: Callable[[ApiKey, str], Flow] = access_published_flow,
) -> tuple[Run, bool]:
    """A run of the published version of the flow ``find`` gives for ``slug``, if the key may
    run it (one trip to the thread), and whether it is an earlier run that the same
    ``idempotency_key`` started."""
    flow = find(api_key, slug)
    if idempotency_key:
        earlier = _earlier(api_key, idempotency_key)
        if earlier is not None:
            return _replayed(earlier, flow, inputs), True
    try:
        run = start_run(
            flow=flow,
            inputs=inputs,
            api_key=api_key,
            source=RunSource.API,
            idempotency_key=idempotency_key,
            served=serving_version(flow, idempotency_key or None),
        )
    except IntegrityError:  # the same key, sent at the same time: the other request won
        return _replayed(_earlier(api_key, idempotency_key), flow, inputs), True
    return run, False


def _earlier(api_key: ApiKey, idempotency_key: str) -> Run | None:
    runs = Run.objects.select_related("flow", "flow_version").defer("flow_version__graph")
    return runs.filter(api_key=api_key, idempotency_key=idempotency_key).first()


def _replayed(earlier: Run, flow, inputs: dict) -> Run:
    """The earlier run, if the request is the one that started it (same flow, same inputs)."""
    try:
        same = earlier.flow_id == flow.id and earlier.inputs == run_inputs_clean(
            version_graph(earlier.flow_version_id), inputs
        )
    except ValidationError:
        same = False
    if not same:
        raise IdempotencyKeyReused
    return earlier


def sse(run_id: Any, after: int = 0) -> AsyncIterator[str]:
    """The run's events as Server-Sent Events; ``id`` is the sequence number (Last-Event-ID)."""
    return sse_frames(run_events(run_id, after))


@openapi.operation(
    "POST",
    summary="Start a run of a published flow",
    tag="Runs",
    description='Answers when the run ends, or at once as its events with `"stream": true`.',
    body=RunRequest,
    headers=IdempotencyHeaders,
    answers=[
        openapi.Answer(
            200,
            "The finished run, or its events (stream).",
            RunOut,
            events=True,
            headers={"Idempotent-Replayed": "true when the answer is an earlier run's."},
        )
    ],
    errors=(400, 403, 404, 413, 422),
)
@csrf_exempt
@require_POST
async def runs_create(request: HttpRequest, slug: str) -> HttpResponse:
    return await published_runs_create(request, slug, find=access_published_flow, noun="flow")


async def published_runs_create(
    request: HttpRequest, slug: str, *, find: Callable[[ApiKey, str], Flow], noun: str
) -> HttpResponse:
    """``POST …/<slug>/runs`` for whatever ``find`` serves under a slug (a flow; the flow
    that serves an agent): the same body, answers and ``Idempotency-Key``; ``noun`` names it
    in the 404."""
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    body = parse_body(request, RunRequest)
    if isinstance(body, HttpResponse):
        return body
    idempotency_key = request.headers.get("Idempotency-Key", "")
    if idempotency_key and not IDEMPOTENCY_KEY.match(idempotency_key):
        message = "Idempotency-Key must be 1 to 255 printable ASCII characters."
        return error(400, message, code="invalid_idempotency_key")
    try:
        run, replayed = await sync_to_async(_start_published)(
            api_key, slug, body.inputs, idempotency_key, find
        )
    except Http404:
        return error(404, f"No published {noun} named {slug!r}.", code=f"{noun}_not_found")
    except PermissionDenied as exc:
        return forbidden(exc)
    except ValidationError as exc:
        return error(400, "; ".join(exc.messages))
    except IdempotencyKeyReused:
        message = f"This Idempotency-Key was used for another request ({noun} or inputs differ)."
        return error(422, message, code="idempotency_key_reused")
    if body.stream:
        response = sse_response(sse(run.id))
    else:
        response = JsonResponse(run_payload(await run_wait(run)))
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


async def _key_run(request: HttpRequest, run_id, perm: str) -> Run | HttpResponse:
    """The run if the request's key may ``perm`` on it (view, or run to answer), else the 401,
    403 or 404 answer."""
    api_key = await authenticate(request)
    if isinstance(api_key, HttpResponse):
        return api_key
    try:
        return await sync_to_async(access_api_run)(api_key, run_id, perm)
    except Http404:
        return error(404, "No such run.", code="run_not_found")
    except PermissionDenied as exc:
        return forbidden(exc)


@openapi.operation(
    "GET",
    summary="Read a run",
    tag="Runs",
    answers=[openapi.Answer(200, "The run.", RunOut)],
    errors=(403, 404),
)
@require_GET
async def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    run = await _key_run(request, run_id, "view")
    return run if isinstance(run, HttpResponse) else JsonResponse(run_payload(run))


@openapi.operation(
    "GET",
    summary="Follow a run's events",
    tag="Runs",
    query=EventsQuery,
    headers=EventsHeaders,
    answers=[openapi.Answer(200, RUN_EVENTS, events=True)],
    errors=(403, 404),
)
@require_GET
async def run_stream(request: HttpRequest, run_id) -> HttpResponse:
    """Follow a run's events, resuming after ``Last-Event-ID`` (or ``?after=``)."""
    run = await _key_run(request, run_id, "view")
    if isinstance(run, HttpResponse):
        return run
    after = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0"
    return sse_response(sse(run.id, int(after) if after.isdigit() else 0))


@openapi.operation(
    "POST",
    summary="Answer a run that waits for a person",
    tag="Runs",
    body=AnswerRequest,
    answers=[openapi.Answer(200, "The run after the answer.", RunOut)],
    errors=(400, 403, 404, 409, 413),
)
@csrf_exempt
@require_POST
async def run_answer_create(request: HttpRequest, run_id) -> HttpResponse:
    """Answer a run's waiting node: a human input's ``{"node": "review", "values": {...}}``,
    or an agent's call waiting for approval: ``{"node": "agent_1", "approve": true}`` or
    ``{"node": "agent_1", "approve": false, "reason": "..."}``. 409 when that question was
    answered already or is no longer the one asked."""
    run = await _key_run(request, run_id, "run")
    if isinstance(run, HttpResponse):
        return run
    body = parse_body(request, AnswerRequest)
    if isinstance(body, HttpResponse):
        return body
    try:
        await sync_to_async(run_answer)(run=run, node_key=body.node, values=body.answer())
    except ValidationError as exc:
        status = 409 if exc.code == "conflict" else 400
        return error(status, "; ".join(exc.messages), code=exc.code or None)
    run = await Run.objects.select_related("flow", "flow_version").aget(id=run.id)
    return JsonResponse(run_payload(run))
