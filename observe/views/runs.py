"""The runs list: across the workspace, per flow and per agent; its table and "next page" are
htmx partials of the same page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from agents.access import access_agent
from flows.access import access_flow
from flows.models import Flow
from observe.forms import RunFilterForm
from observe.selectors import runs_filtered, runs_page
from studio.htmx import render_page_or_partial
from workspaces.access import current_workspace


@login_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    return _runs(request, flow=None, context={})


@login_required
@require_GET
def flow_run_list(request: HttpRequest, slug: str) -> HttpResponse:
    flow = access_flow(request.user, current_workspace(request), slug, "view")
    return _runs(request, flow=flow, context={"flow": flow})


@login_required
@require_GET
def agent_run_list(request: HttpRequest, agent_slug: str) -> HttpResponse:
    agent = access_agent(request.user, current_workspace(request), agent_slug, "view")
    # An agent never published has no backing flow, and so no runs yet.
    return _runs(request, flow=agent.flow, context={"agent": agent}, empty=agent.flow is None)


def _runs(
    request: HttpRequest, *, flow: Flow | None, context: dict[str, Any], empty: bool = False
) -> HttpResponse:
    workspace = current_workspace(request)
    form = RunFilterForm(
        request.GET, user=request.user, workspace=workspace, flow_id=flow.id if flow else None
    )
    context |= {"workspace": workspace, "form": form, "page": None}
    if form.is_valid() and not empty:
        runs = runs_filtered(request.user, workspace.id, form.filters())
        page = runs_page(runs, after=form.cleaned_data["after"], search=form.cleaned_data["q"])
        query = request.GET.copy()
        query.pop("after", None)
        context |= {"page": page, "query": query.urlencode()}
    # A bad filter is answered with the page and the form's errors (400: the list is not shown).
    status = 400 if form.errors else 200
    # "Next page" appends rows to the table; the filter form replaces the table.
    more = form.is_valid() and form.cleaned_data["after"] is not None
    return render_page_or_partial(
        request, "observe/runs.html", context, partial="rows" if more else "table", status=status
    )
