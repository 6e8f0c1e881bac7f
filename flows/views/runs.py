"""A run's trace, and answering a run that waits for a person."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from flows import selectors
from flows.forms import answer_values
from flows.services import run_answer
from studio import access


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    run = access.access_run(request.user, run_id, "view")
    context = {
        "run": run,
        "nodes": selectors.run_nodes(run),
        "workspace": run.workspace,
        "waiting": selectors.run_waiting_for_people(run),
        "can_answer": "run" in access.object_actions(request.user, run.flow),
    }
    template = "flows/run.html#trace" if request.htmx else "flows/run.html"
    return render(request, template, context)


@login_required
@require_POST
def run_answer_submit(request: HttpRequest, run_id, node_key: str) -> HttpResponse:
    """A person's answer to a waiting human-input node (needs ``run`` on the flow)."""
    run = access.access_run(request.user, run_id, "run")
    waiting = {r.node_id: r for r in selectors.run_waiting_for_people(run)}
    if node_key not in waiting:
        raise Http404("This run is not waiting for that answer.")
    try:
        values = answer_values(waiting[node_key].details["fields"], request.POST)
        run_answer(run=run, node_key=node_key, values=values, user=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, "Answer sent: the run goes on.")
    return redirect("run-detail", run_id=run.id)
