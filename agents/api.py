"""The REST API of published agents: ``POST /api/v1/agents/<slug>/runs`` starts a run of the
agent's backing flow, with the body, answers and ``Idempotency-Key`` of the flows' runs API
(``flows.api``); the run is then read and followed at ``/api/v1/runs/<id>`` as any run. A key
whose scope runs flows (all of them) reaches the published agents its maker may use."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.access import access_published_agent
from flows.api import IdempotencyHeaders, RunOut, RunRequest, published_runs_create
from studio import openapi


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
