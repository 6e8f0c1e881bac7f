"""Pages of the catalog."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from catalog import selectors
from studio import access


@login_required
@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    workspace = access.current_workspace(request)
    models = selectors.models_visible(request.user, workspace.id)
    return render(request, "catalog/list.html", {"workspace": workspace, "models": models})
