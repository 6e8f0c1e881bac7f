"""The compare playground: one prompt to two models, both answers streamed side by side.

The page posts the form; the answer holds one pane per model, each following its side's events
(``playground-events``, Server-Sent Events) from the browser. Models run on workers only.
"""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from catalog.forms.playground import PlaygroundForm
from catalog.selectors.playground import playground_models
from catalog.services.playground import (
    aplayground_ended,
    aplayground_job,
    playground_follow,
    playground_start,
)
from studio.htmx import render_page_or_partial
from studio.sse import sse_frames, sse_response
from workspaces.access import current_workspace

TEMPLATE = "catalog/playground.html"
_SEQ = re.compile(r"[0-9]{1,18}")


def _preselected(request: HttpRequest, models: list) -> dict:
    """``?a=<id>&b=<id>``, when they name offered models; else the first two offered."""
    offered = [str(m.id) for m in models]
    initial = {}
    for name, param, fallback in (("model_a", "a", 0), ("model_b", "b", 1)):
        wanted = request.GET.get(param, "")
        if wanted in offered:
            initial[name] = wanted
        elif offered:
            initial[name] = offered[min(fallback, len(offered) - 1)]
    return initial


@login_required
@require_GET
def playground(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    models = list(playground_models(request.user, workspace.id))
    form = PlaygroundForm(
        user=request.user, workspace=workspace, models=models, initial=_preselected(request, models)
    )
    context = {"workspace": workspace, "form": form, "models": models}
    return render(request, TEMPLATE, context)


@login_required
@require_POST
def playground_run(request: HttpRequest) -> HttpResponse:
    """Start both sides and answer with their panes; a refused form answers 400 with its errors."""
    workspace = current_workspace(request)
    models = list(playground_models(request.user, workspace.id))
    form = PlaygroundForm(request.POST, user=request.user, workspace=workspace, models=models)
    context: dict = {"workspace": workspace, "form": form, "models": models}
    status = 400
    if form.is_valid():
        streams = playground_start(workspace=workspace, user=request.user, **form.cleaned_data)
        data = form.cleaned_data
        context["panes"] = [
            {"side": "a", "model": data["model_a"], "stream_id": streams["a"]},
            {"side": "b", "model": data["model_b"], "stream_id": streams["b"]},
        ]
        status = 200
    return render_page_or_partial(request, TEMPLATE, context, partial="workbench", status=status)


@login_required
@require_GET
async def playground_events(request: HttpRequest, stream_id: str) -> HttpResponse:
    """Follow one side, resuming after ``Last-Event-ID`` (or ``?after=``). Only whoever started
    it may; to anyone else the stream does not exist. 204 once the side has ended before
    ``after``: it tells EventSource to stop reconnecting."""
    user = await request.auser()
    job = await aplayground_job(stream_id)
    if job is None or job.user_id != user.id:
        raise Http404
    after_text = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0"
    after = int(after_text) if _SEQ.fullmatch(after_text) else 0
    if after and await aplayground_ended(job, after):
        return HttpResponse(status=204)
    return sse_response(sse_frames(playground_follow(job, after)))
