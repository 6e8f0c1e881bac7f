"""A run's trace (which follows the run's events while it is not over), and answering a run
that waits for a person."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from flows import selectors
from flows.access import access_run
from flows.forms import answer_values, approval_values
from flows.models import NodeResult
from flows.panels import panels
from flows.runtime.waiting import run_events
from flows.services import run_answer
from studio import access, events
from studio.htmx import render_page_or_partial
from studio.sse import sse_response

# The run page's stream: what changes the trace, not the tokens (the trace does not show them).
STREAM_READY = "stream.ready"  # render the current state now: events after it are heard
STREAM_END = "stream.end"  # the run is over: render once more and stop


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    run = access_run(request.user, run_id, "view")
    actions = access.object_actions(request.user, run.flow)
    context = {
        "run": run,
        "nodes": selectors.run_nodes(run),
        "workspace": run.workspace,
        "waiting": [_shown(node) for node in selectors.run_waiting_for_people(run)],
        "can_answer": "run" in actions,
        "panels": panels("run", request, run, actions),
    }
    return render_page_or_partial(request, "flows/run.html", context, partial="trace")


@login_required
@require_GET
async def run_events_stream(request: HttpRequest, run_id) -> HttpResponse:
    """The run's events (all but tokens) as Server-Sent Events for its page, resuming after
    ``Last-Event-ID``; 404 to whoever may not see the run."""
    user = await request.auser()
    run = await sync_to_async(access_run)(user, run_id, "view")
    after = request.headers.get("Last-Event-ID", "")
    return sse_response(_run_page_frames(user, run.id, int(after) if after.isdigit() else 0))


def _may_view(user, run_id) -> bool:
    try:
        access_run(user, run_id, "view")
    except (Http404, PermissionDenied):
        return False
    return True


async def _run_page_frames(user, run_id, after: int) -> AsyncIterator[str]:
    """``stream.ready`` first (so a page that (re)connects renders the state it missed), then
    the run's events; each is sent only while ``user`` may still see the run, as the WebSocket
    does. Events carry no data: the page renders the trace from the database."""
    yield f"event: {STREAM_READY}\ndata: {{}}\n\n"
    async for event in run_events(run_id, after):
        if not await sync_to_async(_may_view)(user, run_id):
            return
        if event is None:
            yield ": keep-alive\n\n"
        elif event["type"] != events.TOKEN:
            data = json.dumps({key: event[key] for key in ("seq", "type", "node")})
            yield f"id: {event['seq']}\nevent: {event['type']}\ndata: {data}\n\n"
    yield f"event: {STREAM_END}\ndata: {{}}\n\n"


@login_required
@require_POST
def run_answer_submit(request: HttpRequest, run_id, node_key: str) -> HttpResponse:
    """A person's answer to a waiting node: a human input's fields, or an approval of an agent's
    tool call (needs ``run`` on the flow)."""
    run = access_run(request.user, run_id, "run")
    waiting = {r.node_id: r for r in selectors.run_waiting_for_people(run)}
    if node_key not in waiting:
        raise Http404("This run is not waiting for that answer.")
    details = waiting[node_key].details
    try:
        if _asks_approval(details):
            values = approval_values(request.POST)
        else:
            values = answer_values(details["fields"], request.POST)
        run_answer(run=run, node_key=node_key, values=values, user=request.user)
    except ValidationError as exc:
        if request.htmx:  # a chat following the run answers in place (conversations/chat.js)
            return HttpResponse("; ".join(exc.messages), status=400, content_type="text/plain")
        messages.error(request, "; ".join(exc.messages))
    else:
        if request.htmx:
            return HttpResponse(status=204)
        messages.success(request, _answered(values if _asks_approval(details) else None))
    return redirect("flows:run-detail", run_id=run.id)


def _asks_approval(details: dict) -> bool:
    return (details.get("asked") or {}).get("kind") == "approval"


def _answered(approval: dict | None) -> str:
    if approval is None:
        return "Answer sent: the run goes on."
    if approval["approve"]:
        return "Approved: the call runs and the run goes on."
    return "Rejected: the agent goes on without that call."


def _shown(node: NodeResult) -> NodeResult:
    """A waiting node as its card shows it: an approval's arguments as indented JSON."""
    asked = node.details.get("asked") or {}
    if asked.get("kind") == "approval":
        node.arguments_json = json.dumps(asked.get("arguments"), indent=2, ensure_ascii=False)
    return node
