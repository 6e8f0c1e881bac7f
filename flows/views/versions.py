"""A flow's history: its numbered versions, what changed between two of them (or between the
draft and the published version), rolling back, and export to a file."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from flows.access import access_flow
from flows.editor.graph_diff import graph_diff
from flows.editor.redaction import graph_redacted
from flows.models import Flow, FlowVersion, VersionKind
from flows.services.transfer import FORMATS, flow_export
from flows.services.versions import flow_version_republish, flow_version_restore
from studio.htmx import render_page_or_partial
from workspaces.access import current_workspace

DRAFT = "draft"
PUBLISHED = "published"


def _versions(flow: Flow) -> list[FlowVersion]:
    """The numbered versions, newest first (the editor's unnumbered draft snapshots are not
    history)."""
    return list(
        flow.versions.filter(kind=VersionKind.VERSION, number__isnull=False)
        .select_related("created_by")
        .order_by("-number")
    )


def _version(flow: Flow, number: int) -> FlowVersion:
    version = flow.versions.filter(kind=VersionKind.VERSION, number=number).first()
    if version is None:
        raise Http404(f"{flow.name} has no version {number}.")
    return version


@dataclass(frozen=True)
class Row:
    version: FlowVersion
    previous: int | None  # the number of the version before it


class Refused(Exception):
    """A side of the comparison that cannot be shown, with the reason and the status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _side(flow: Flow, versions: list[FlowVersion], value: str) -> tuple[str, dict]:
    """A side of the comparison (``draft``, ``published`` or a number): its label and graph."""
    if value == DRAFT:
        if flow.draft is None:
            raise Refused("This flow has no draft.", 404)
        return "draft", graph_redacted(flow.draft)
    if value == PUBLISHED:
        published = next((v for v in versions if v.id == flow.published_version_id), None)
        if published is None:
            raise Refused("No version of this flow is published.", 404)
        return f"v{published.number} (published)", graph_redacted(published.graph)
    if not value.isdigit():
        raise Refused(f"{value!r} is not a version: choose a number, draft or published.", 400)
    found = next((v for v in versions if v.number == int(value)), None)
    if found is None:
        raise Refused(f"{flow.name} has no version {value}.", 404)
    return f"v{found.number}", graph_redacted(found.graph)


@login_required
@require_GET
def flow_history(request: HttpRequest, slug: str) -> HttpResponse:
    """The numbered versions and, with ``?a=&b=`` (a number, ``draft`` or ``published``), what
    changed from ``a`` to ``b``. An htmx request for the comparison gets only that."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "view")
    versions = _versions(flow)
    a, b = request.GET.get("a", ""), request.GET.get("b", "")
    context = {
        "workspace": workspace,
        "flow": flow,
        "rows": [
            Row(v, versions[i + 1].number if i + 1 < len(versions) else None)
            for i, v in enumerate(versions)
        ],
        "versions": versions,
        "a": a,
        "b": b,
    }
    status = 200
    if a or b:
        try:
            a_label, a_graph = _side(flow, versions, a or PUBLISHED)
            b_label, b_graph = _side(flow, versions, b or DRAFT)
        except Refused as exc:
            context["error"], status = str(exc), exc.status
        else:
            context.update(
                a_label=a_label,
                b_label=b_label,
                diff=graph_diff(a_graph, b_graph, labels=(a_label, b_label)),
            )
    return render_page_or_partial(
        request,
        "flows/versions.html",
        context,
        partial="compare",
        target="compare-panel",
        status=status,
    )


@login_required
@require_POST
def flow_version_republish_view(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Roll back what is served: publish version ``number`` again (needs ``publish``)."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "publish")
    version = _version(flow, number)
    try:
        flow_version_republish(flow=flow, version=version, user=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Version {number} is published again.")
    return redirect("flows:flow-history", slug=flow.slug)


@login_required
@require_POST
def flow_version_restore_view(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Copy version ``number`` into the draft (needs ``change``); nothing is published."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "change")
    version = _version(flow, number)
    try:
        flow_version_restore(flow=flow, version=version, user=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(
            request,
            f"Version {number} is now the draft. The published version did not change.",
        )
    return redirect("flows:flow-history", slug=flow.slug)


@login_required
@require_GET
def flow_export_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Download ``?version=N`` (default: the published version, else the latest) as
    ``?format=json`` (default) or ``yaml``."""
    workspace = current_workspace(request)
    flow = access_flow(request.user, workspace, slug, "view")
    fmt = request.GET.get("format", "json")
    if fmt not in FORMATS:
        return HttpResponseBadRequest(f"format: choose json or yaml, not {fmt!r}.")
    number = request.GET.get("version", "")
    if number:
        if not number.isdigit():
            raise Http404(f"{number!r} is not a version number.")
        version = _version(flow, int(number))
    else:
        versions = _versions(flow)
        published = next((v for v in versions if v.id == flow.published_version_id), None)
        version = published or (versions[0] if versions else None)
        if version is None:
            raise Http404(f"{flow.name} has no version to export.")
    exported = flow_export(flow=flow, version=version, fmt=fmt)
    return HttpResponse(
        exported.content,
        content_type=exported.content_type,
        headers={"Content-Disposition": content_disposition_header(True, exported.filename)},
    )
