"""Pages of the workspace itself: API keys."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from studio import access
from studio.models import ApiKey
from studio.services import api_key_create, api_key_revoke


@login_required
@require_GET
def key_list(request: HttpRequest) -> HttpResponse:
    workspace = access.current_workspace(request)
    access.access_workspace(request.user, workspace.id, "admin")
    keys = ApiKey.objects.filter(workspace=workspace).order_by("-created_at")
    return render(request, "studio/keys.html", {"workspace": workspace, "keys": keys})


@login_required
@require_POST
def key_create(request: HttpRequest) -> HttpResponse:
    workspace = access.current_workspace(request)
    access.access_workspace(request.user, workspace.id, "admin")
    name = request.POST.get("name", "").strip()[:200] or "unnamed"
    api_key, key = api_key_create(workspace=workspace, name=name, user=request.user)
    keys = ApiKey.objects.filter(workspace=workspace).order_by("-created_at")
    # The key is shown in this response only; it is not stored anywhere.
    context = {"workspace": workspace, "keys": keys, "new_key": key, "new_key_row": api_key}
    return render(request, "studio/keys.html", context)


@login_required
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = access.access_key(request.user, key_id, "admin")
    api_key_revoke(api_key=api_key)
    return redirect("key-list")
