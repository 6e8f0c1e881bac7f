"""Exporting an agent (its draft or a published version) to a file, and importing one."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods

from agents.access import access_agent
from agents.transfer import FORMATS, MAX_FILE_BYTES, ImportRefused, agent_export, agent_import
from agents.views.agents import ADD_AGENT
from workspaces.access import access_workspace, current_workspace


class ImportForm(forms.Form):
    file = forms.FileField(label="Agent file (JSON or YAML)")


@login_required
@require_GET
def agent_export_view(request: HttpRequest, agent_slug: str) -> HttpResponse:
    """Download ``?version=N`` (default: the draft) as ``?format=json`` (default) or ``yaml``."""
    agent = access_agent(request.user, current_workspace(request), agent_slug, "view")
    fmt = request.GET.get("format", "json")
    if fmt not in FORMATS:
        return HttpResponseBadRequest(f"format: choose json or yaml, not {fmt!r}.")
    number = request.GET.get("version", "")
    version = None
    if number:
        version = agent.versions.filter(number=number).first() if number.isdigit() else None
        if version is None:
            raise Http404(f"{agent.name} has no version {number!r}.")
    try:
        exported = agent_export(agent=agent, version=version, fmt=fmt)
    except ValidationError as exc:
        raise Http404("; ".join(exc.messages)) from None
    return HttpResponse(
        exported.content,
        content_type=exported.content_type,
        headers={"Content-Disposition": content_disposition_header(True, exported.filename)},
    )


def _render(request: HttpRequest, workspace, errors: list[str], status: int = 200):
    context = {
        "workspace": workspace,
        "form": ImportForm(),
        "import_errors": errors,
        "max_kb": MAX_FILE_BYTES // 1024,
    }
    return render(request, "agents/import.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def agent_import_view(request: HttpRequest) -> HttpResponse:
    """GET: the upload form. POST: a new agent from the file, opened in the builder with the
    problems its spec has here; a refused file stores nothing and lists every problem."""
    workspace = access_workspace(request.user, current_workspace(request).id, ADD_AGENT)
    if request.method == "GET":
        return _render(request, workspace, [])
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        errors = [f"file: {e}" for e in form.errors.get("file", ["choose a file"])]
        return _render(request, workspace, errors, status=400)
    upload = form.cleaned_data["file"]
    if upload.size > MAX_FILE_BYTES:
        # Refused before reading: an oversized upload is never held in memory.
        return _render(request, workspace, [f"file: larger than {MAX_FILE_BYTES // 1024} KB"], 400)
    try:
        agent, problems = agent_import(
            workspace=workspace, data=upload.read(), filename=upload.name or "", user=request.user
        )
    except ImportRefused as exc:
        return _render(request, workspace, exc.errors, status=400)
    messages.success(request, f"Imported {agent.name} as a draft.")
    for problem in problems:
        messages.warning(request, f"To fix before publishing: {problem}")
    return redirect("agents:agent-detail", agent_slug=agent.slug)
