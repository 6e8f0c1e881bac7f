"""The dashboard: runs, latency, tokens, cost, feedback and cache figures over a period, as
charts and tables."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from observe.dashboards import dashboard_report, dashboard_series
from observe.forms import DashboardForm
from workspaces.access import current_workspace


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    form = DashboardForm(request.GET, user=request.user, workspace=workspace)
    context: dict[str, Any] = {"workspace": workspace, "form": form}
    if form.is_valid():
        report = dashboard_report(
            request.user,
            workspace,
            days=form.cleaned_data["days"],
            flow_id=form.cleaned_data["flow"],
        )
        context |= {"report": report, "series": dashboard_series(report)}
    # A bad period or flow is answered with the page and the form's errors, and no figures.
    return render(request, "observe/dashboard.html", context, status=400 if form.errors else 200)
