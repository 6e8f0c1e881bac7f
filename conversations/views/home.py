"""The home page a member lands on after logging in (what the studio is for and the next steps),
and the Apps page: every published app the member may chat with."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from conversations.selectors import chat_apps
from flows import selectors as flow_selectors
from flows.starters import starters
from studio import access
from workspaces.access import current_workspace


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    flows = access.scope(
        request.user, workspace.id, flow_selectors.flows_for_workspace(workspace.id)
    )
    context = {
        "workspace": workspace,
        "apps": chat_apps(request.user, workspace)[:3],
        "latest_flow": flows.order_by("-id").first(),
        # "Create a flow" already starts blank: the templates are the starters with content.
        "starters": [s for s in starters().values() if s.key != "blank"][:4],
    }
    return render(request, "conversations/home.html", context)


@login_required
@require_GET
def apps(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    context = {"workspace": workspace, "apps": chat_apps(request.user, workspace)}
    return render(request, "conversations/apps.html", context)
