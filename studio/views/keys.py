"""The API keys page: create (shown once), revoke."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from studio import access, selectors
from studio.models import Workspace
from studio.services import api_key_create, api_key_revoke


def _keys_context(request: HttpRequest, workspace: Workspace) -> dict:
    example = workspace.flows.filter(published_version__isnull=False).order_by("slug").first()
    perms = access.workspace_perms(request.user, workspace.id)
    return {
        "workspace": workspace,
        "keys": selectors.keys_for(request.user, workspace),
        "can_create": "studio.add_apikey" in perms,
        # The curl examples name a real flow of the workspace when there is one.
        "example_slug": example.slug if example else "assistant",
        "base_url": request.build_absolute_uri("/").rstrip("/"),
    }


@login_required
@require_GET
def key_list(request: HttpRequest) -> HttpResponse:
    workspace = access.current_workspace(request)
    return render(request, "studio/keys.html", _keys_context(request, workspace))


@never_cache  # the response holds the new key: no copy in any cache
@login_required
@require_POST
def key_create(request: HttpRequest) -> HttpResponse:
    workspace = access.current_workspace(request)
    access.access_workspace(request.user, workspace.id, "studio.add_apikey")
    name = request.POST.get("name", "").strip()[:200] or "unnamed"
    api_key, key = api_key_create(workspace=workspace, name=name, user=request.user)
    # The key is shown in this response only; it is not stored anywhere.
    context = {**_keys_context(request, workspace), "new_key": key, "new_key_row": api_key}
    return render(request, "studio/keys.html", context)


@login_required
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = access.access_key(request.user, key_id, "change")
    api_key_revoke(api_key=api_key, user=request.user)
    return redirect("key-list")
