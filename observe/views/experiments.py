"""A flow's online A/B experiment: each arm's figures and how confident their difference is."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from flows.access import access_flow
from observe.experiments import MIN_SAMPLES, experiment_report
from workspaces.access import current_workspace


@login_required
@require_GET
def flow_experiment(request: HttpRequest, slug: str) -> HttpResponse:
    flow = access_flow(request.user, current_workspace(request), slug, "view")
    context = {
        "workspace": flow.workspace,
        "flow": flow,
        "report": experiment_report(flow),
        "min_samples": MIN_SAMPLES,
    }
    return render(request, "observe/experiment.html", context)
