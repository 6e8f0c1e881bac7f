"""The REST API of published agents: ``POST /api/v1/agents/<slug>/runs`` starts a run of the
agent's backing flow, with the body, answers and ``Idempotency-Key`` of the flows' runs API
(``flows.api``); the run is then read and followed at ``/api/v1/runs/<id>`` as any run. A key
whose scope runs flows (all of them) reaches the published agents its maker may use.

``/api/v1/agents/<slug>/conversations`` lists and starts a key's conversations with the agent
(``conversations.api``, on the backing flow); the conversation's own routes do the rest."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from agents.access import access_published_agent
from conversations.api import (
    ConversationOut,
    ConversationRequest,
    ConversationsQuery,
    published_conversations,
)
from flows.api import IdempotencyHeaders, RunOut, RunRequest, published_runs_create
from studio import openapi
from studio.json_api import Page


@openapi.operation(
    "POST",
    summary="Start a run of a published agent",
    tag="Runs",
    description='Its input is `{"message": "…"}`; its output `text` is the agent\'s answer '
    "(its tool calls run on the server). Answers when the run ends, or at once as its events "
    'with `"stream": true` (the agent\'s steps among them: tool.call, tool.result…).',
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
    operation_id="agent_runs_create_post",
)
@csrf_exempt
@require_POST
async def agent_runs_create(request: HttpRequest, agent_slug: str) -> HttpResponse:
    return await published_runs_create(
        request, agent_slug, find=access_published_agent, noun="agent"
    )


@openapi.operation(
    "GET",
    summary="List the key's conversations with an agent",
    tag="Conversations",
    query=ConversationsQuery,
    answers=[openapi.Answer(200, "A page of conversations, latest first.", Page[ConversationOut])],
    errors=(403, 404),
    operation_id="agent_conversations_get",
)
@openapi.operation(
    "POST",
    summary="Start a conversation with a published agent",
    tag="Conversations",
    description="Then send, read, rate and delete as with a flow's conversations "
    "(`/api/v1/conversations/<id>/messages`…): each message runs the agent with the turns "
    "before it.",
    body=ConversationRequest,
    answers=[openapi.Answer(201, "The conversation.", ConversationOut)],
    errors=(403, 404, 413),
    operation_id="agent_conversations_post",
)
@csrf_exempt
@require_http_methods(["GET", "POST"])
async def agent_conversations(request: HttpRequest, agent_slug: str) -> HttpResponse:
    return await published_conversations(
        request, agent_slug, find=access_published_agent, noun="agent"
    )
