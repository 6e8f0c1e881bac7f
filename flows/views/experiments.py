"""A flow's online A/B experiment on its publish page: the panel, start, stop or promote b."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from flows.access import access_flow
from flows.models import Flow, VersionKind
from flows.services.experiments import (
    MAX_WEIGHT,
    MIN_WEIGHT,
    flow_experiment_start,
    flow_experiment_stop,
)
from workspaces.access import current_workspace

DEFAULT_WEIGHT = 50


def experiment_panel(
    request: HttpRequest, flow: Flow, actions: frozenset[str]
) -> SafeString | None:
    """The publish page's A/B panel (``flows.panels``): the running experiment, or the form that
    starts one for a member who may publish. Nothing for a flow not published."""
    if flow.published_version_id is None:
        return None
    can_publish = "publish" in actions
    if flow.experiment_version_id is None and not can_publish:
        return None
    candidates = flow.versions.filter(kind=VersionKind.VERSION, number__isnull=False).exclude(
        id=flow.published_version_id
    )
    context = {
        "flow": flow,
        "can_publish": can_publish,
        "candidates": candidates.only("id", "number", "note").order_by("-number"),
        "weight": DEFAULT_WEIGHT,
        "min_weight": MIN_WEIGHT,
        "max_weight": MAX_WEIGHT,
    }
    return render_to_string("flows/_experiment.html", context, request=request)


def _number(value: str, what: str) -> int:
    if not value.strip().isdigit():
        raise ValidationError(f"Choose the {what} as a whole number.")
    return int(value)


@login_required
@require_POST
def flow_experiment_start_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Start an experiment: ``version`` (a number) serves ``weight`` per cent as arm b."""
    flow = access_flow(request.user, current_workspace(request), slug, "publish")
    try:
        number = _number(request.POST.get("version", ""), "version")
        weight = _number(request.POST.get("weight", ""), "weight of version b")
        version = flow.versions.filter(number=number).first()
        if version is None:
            raise ValidationError(f"{flow.name} has no version {number}.")
        flow_experiment_start(flow=flow, version=version, weight=weight, user=request.user)
    except ValidationError as exc:
        messages.error(request, "The experiment did not start: " + "; ".join(exc.messages))
    else:
        messages.success(request, f"Version {number} now serves {weight}% of the traffic.")
    return redirect("flows:flow-detail", slug=flow.slug)


@login_required
@require_POST
def flow_experiment_stop_view(request: HttpRequest, slug: str) -> HttpResponse:
    """End the experiment; with ``promote`` publish version b, else keep the published one."""
    flow = access_flow(request.user, current_workspace(request), slug, "publish")
    promote = request.POST.get("promote") == "1"
    try:
        flow = flow_experiment_stop(flow=flow, user=request.user, promote=promote)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        number = flow.published_version.number
        done = f"published version {number}" if promote else f"version {number} serves everyone"
        messages.success(request, f"The experiment ended: {done}.")
    return redirect("flows:flow-detail", slug=flow.slug)
