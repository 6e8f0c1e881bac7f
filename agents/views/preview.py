"""The builder's live preview: a message to the agent's saved draft, answered as a run that the
page follows over its WebSocket (``static/agents/preview.js`` with ``conversations/chat.js``)."""

from __future__ import annotations

import json
from typing import Literal

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as SchemaError

from agents.access import access_agent
from agents.preview import AGENT_NODE, agent_preview_run
from agents.services import SpecRefused
from conversations.limits import MAX_MESSAGE_CHARS
from flows.schema import GraphError
from workspaces.access import current_workspace
from workspaces.quotas import workspace_admit

MAX_TURNS = 100  # earlier preview turns sent back with a message (the most recent)
PARTIAL = "agents/builder.html#preview-turn"


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class PreviewMessage(BaseModel):
    """What the preview's form posts: the message, and the conversation so far as JSON."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    history: list[Turn] = Field(default_factory=list, max_length=MAX_TURNS)


def _parsed(request: HttpRequest) -> PreviewMessage:
    try:
        history = json.loads(request.POST.get("history") or "[]")
    except ValueError:
        raise ValidationError("The preview's conversation could not be read.") from None
    try:
        return PreviewMessage.model_validate(
            {"message": request.POST.get("message", "").strip(), "history": history}
        )
    except SchemaError as exc:
        where = {"message": "The message", "history": "The conversation so far"}
        raise ValidationError(
            [f"{where.get(str(e['loc'][0]), 'The request')}: {e['msg']}" for e in exc.errors()]
        ) from None


@login_required
@require_POST
def agent_preview(request: HttpRequest, agent_slug: str) -> HttpResponse:
    """Send a message to the saved draft: renders the message and the answer's bubble, which
    follows the run; 400 with the reasons (each problem of the draft) when it cannot run."""
    agent = access_agent(request.user, current_workspace(request), agent_slug, "change")
    context: dict = {"agent": agent, "answer_nodes": AGENT_NODE}
    try:
        sent = _parsed(request)
        context["message"] = sent.message
        if refusal := workspace_admit(agent.workspace):
            response = render(request, PARTIAL, context | {"error": refusal.message}, status=429)
            response["Retry-After"] = str(refusal.retry_after)
            return response
        context["run"] = agent_preview_run(
            agent=agent,
            user=request.user,
            message=sent.message,
            history=[turn.model_dump() for turn in sent.history],
        )
    except SpecRefused as exc:
        context |= {"error": "The draft cannot run:", "problems": [str(p) for p in exc.problems]}
    except GraphError as exc:
        context |= {"error": "The draft cannot run:", "problems": exc.errors}
    except ValidationError as exc:
        context["error"] = "; ".join(exc.messages)
    return render(request, PARTIAL, context, status=400 if "error" in context else 200)
