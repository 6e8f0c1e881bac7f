"""Pages of the prompt library: the list, a prompt's versions, writing, publishing and approving
versions, and the diff of two versions."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog.access import access_prompt, access_prompt_version
from catalog.forms.prompts import PromptCreateForm, PromptVersionForm
from catalog.models import Prompt, PromptVersion
from catalog.selectors import prompts as selectors
from catalog.services.prompts import (
    prompt_create,
    prompt_delete,
    prompt_version_approve,
    prompt_version_create,
    prompt_version_publish,
    prompt_version_update,
)
from studio.htmx import render_page_or_partial
from workspaces.access import access_workspace, current_workspace, workspace_perms


def _detail_url(prompt: Prompt, number: int | None = None) -> str:
    url = reverse("catalog:prompt-detail", args=[prompt.id])
    return f"{url}?version={number}" if number is not None else url


def _number(value: str | None) -> int | None:
    """A version number from the query string; None when absent, Http404 when not a number."""
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise Http404(f"{value!r} is not a version number") from None
    if number < 1:
        raise Http404(f"{value!r} is not a version number")
    return number


def _flow_snippet(prompt: Prompt, version: PromptVersion | None) -> dict[str, str]:
    """The LLM node config keys that use this prompt: following the latest approved version,
    and pinned to the shown version when it is published."""

    def keys(number: int | None, variables: list[str]) -> str:
        body = json.dumps(
            {"library_prompt": prompt.slug, "library_version": number, "variables": variables},
            indent=2,
        )
        return body.removeprefix("{\n").removesuffix("\n}")

    approved = selectors.prompt_version_resolve(prompt.workspace_id, prompt.slug, None)
    snippets = {}
    if approved is not None:
        snippets["latest"] = keys(None, approved.variables)
    if version is not None and version.published_at is not None:
        snippets["pinned"] = keys(version.number, version.variables)
    return snippets


def _data(request: HttpRequest):
    # A POST is a submission even when empty: its form must be bound (and refused).
    return request.POST if request.method == "POST" else None


@login_required
@require_GET
def prompt_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    context = {
        "workspace": workspace,
        "prompts": selectors.prompts_visible(request.user, workspace.id),
        "can_create": "catalog.add_prompt" in workspace_perms(request.user, workspace.id),
    }
    return render(request, "catalog/prompts/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def prompt_new(request: HttpRequest) -> HttpResponse:
    workspace = access_workspace(request.user, current_workspace(request).id, "catalog.add_prompt")
    form = PromptCreateForm(_data(request), workspace_id=workspace.id)
    if request.method == "POST" and form.is_valid():
        try:
            prompt = prompt_create(workspace=workspace, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Created {prompt.name} with a draft version 1.")
            return redirect("catalog:prompt-detail", prompt_id=prompt.id)
    context = {"workspace": workspace, "form": form, "mode": "create"}
    status = 400 if form.is_bound else 200
    return render(request, "catalog/prompts/form.html", context, status=status)


@login_required
@require_GET
def prompt_detail(request: HttpRequest, prompt_id: int) -> HttpResponse:
    """A prompt's versions and one version's text (``?version=<number>``, default the latest).
    An htmx request for the page's body (versions and the chosen one) gets only that."""
    prompt = access_prompt(request.user, prompt_id, "view")
    versions = list(selectors.prompt_versions(prompt))
    number = _number(request.GET.get("version"))
    if number is None:
        version = versions[0] if versions else None
    else:
        version = next((v for v in versions if v.number == number), None)
        if version is None:
            raise Http404(f"{prompt.name} has no version {number}")
    previous = next((v for v in versions if version and v.number < version.number), None)
    # The compare form starts on this version's changes; the first version is compared with
    # the latest instead, having nothing before it.
    compare = (previous, version) if previous else (version, versions[0] if versions else None)
    context = {
        "workspace": prompt.workspace,
        "prompt": prompt,
        "versions": versions,
        "version": version,
        "previous": previous,
        "compare_a": compare[0],
        "compare_b": compare[1],
        "snippets": _flow_snippet(prompt, version),
        "can_audit": "workspaces.view_audit" in workspace_perms(request.user, prompt.workspace_id),
    }
    return render_page_or_partial(
        request, "catalog/prompts/detail.html", context, partial="prompt-body", target="prompt-body"
    )


@login_required
@require_http_methods(["GET", "POST"])
def prompt_version_new(request: HttpRequest, prompt_id: int) -> HttpResponse:
    """Save a new draft version; the form starts from the latest version's text."""
    prompt = access_prompt(request.user, prompt_id, "change")
    latest = selectors.prompt_versions(prompt).first()
    initial = {"system": latest.system, "template": latest.template} if latest else {}
    form = PromptVersionForm(_data(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version = prompt_version_create(prompt=prompt, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Saved version {version.number} as a draft.")
            return redirect(_detail_url(prompt, version.number))
    context = {"workspace": prompt.workspace, "prompt": prompt, "form": form, "mode": "new"}
    return render(
        request, "catalog/prompts/form.html", context, status=400 if form.is_bound else 200
    )


@login_required
@require_http_methods(["GET", "POST"])
def prompt_version_edit(request: HttpRequest, version_id: int) -> HttpResponse:
    """Edit a draft. A published version answers 409 and stays as it is."""
    version = access_prompt_version(request.user, version_id, "change")
    prompt = version.prompt
    context = {"workspace": prompt.workspace, "prompt": prompt, "version": version, "mode": "edit"}
    if version.published_at is not None:
        return _refuse_edit(request, context)
    initial = {"system": version.system, "template": version.template, "note": version.note}
    form = PromptVersionForm(_data(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version = prompt_version_update(
                version=version, actor=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            if PromptVersion.objects.filter(id=version.id, published_at__isnull=False).exists():
                return _refuse_edit(request, context)  # published while the form was open
            form.add_error(None, exc)
        else:
            messages.success(request, f"Saved version {version.number}.")
            return redirect(_detail_url(prompt, version.number))
    context["form"] = form
    return render(
        request, "catalog/prompts/form.html", context, status=400 if form.is_bound else 200
    )


def _refuse_edit(request: HttpRequest, context: dict) -> HttpResponse:
    context = {**context, "published": True}
    return render(request, "catalog/prompts/form.html", context, status=409)


@login_required
@require_POST
def prompt_version_publish_view(request: HttpRequest, version_id: int) -> HttpResponse:
    version = access_prompt_version(request.user, version_id, "change")
    try:
        version = prompt_version_publish(version=version, actor=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Published version {version.number}: it can no longer change.")
    return redirect(_detail_url(version.prompt, version.number))


@login_required
@require_POST
def prompt_version_approve_view(request: HttpRequest, version_id: int) -> HttpResponse:
    version = access_prompt_version(request.user, version_id, "approve")
    try:
        version = prompt_version_approve(version=version, actor=request.user)
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(
            request, f"Approved version {version.number}: flows that follow the prompt use it."
        )
    return redirect(_detail_url(version.prompt, version.number))


@login_required
@require_GET
def prompt_diff(request: HttpRequest, prompt_id: int) -> HttpResponse:
    """The line diff of versions ``?a=`` and ``?b=`` (numbers; default: the latest version
    against the one before it). An unknown version answers 404 with the reason on the page."""
    prompt = access_prompt(request.user, prompt_id, "view")
    versions = list(selectors.prompt_versions(prompt))
    by_number = {v.number: v for v in versions}
    context: dict = {"workspace": prompt.workspace, "prompt": prompt, "versions": versions}
    try:
        a_number, b_number = _number(request.GET.get("a")), _number(request.GET.get("b"))
    except Http404 as exc:
        return _diff_error(request, context, str(exc))
    if b_number is None and versions:
        b_number = versions[0].number
    if a_number is None and b_number is not None:
        a_number = max((n for n in by_number if n < b_number), default=b_number)
    missing = [n for n in (a_number, b_number) if n not in by_number]
    if missing:
        return _diff_error(request, context, f"{prompt.name} has no version {missing[0]}.")
    a, b = by_number[a_number], by_number[b_number]
    rows = selectors.prompt_diff(a, b)
    added, removed = selectors.diff_counts(rows)
    context.update({"a": a, "b": b, "rows": rows, "added": added, "removed": removed})
    return render_page_or_partial(
        request, "catalog/prompts/diff.html", context, partial="diff", target="diff-panel"
    )


def _diff_error(request: HttpRequest, context: dict, error: str) -> HttpResponse:
    return render_page_or_partial(
        request,
        "catalog/prompts/diff.html",
        {**context, "error": error},
        partial="diff",
        target="diff-panel",
        status=404,
    )


@login_required
@require_POST
def prompt_remove(request: HttpRequest, prompt_id: int) -> HttpResponse:
    prompt = access_prompt(request.user, prompt_id, "delete")
    prompt_delete(prompt=prompt, actor=request.user)
    messages.success(request, f"Deleted the prompt {prompt.name} with all its versions.")
    return redirect("catalog:prompt-list")
