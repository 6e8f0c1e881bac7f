"""The teams page: create a team, add and remove its members, delete it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from workspaces import selectors, services
from workspaces.access import access_team, access_workspace, current_workspace, workspace_perms
from workspaces.forms import TeamForm, TeamMemberForm


@login_required
@require_GET
def team_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    access_workspace(request.user, workspace.id, "workspaces.view_team")
    context = {
        "workspace": workspace,
        "teams": selectors.teams_of(workspace),
        "can_change": "workspaces.change_team" in workspace_perms(request.user, workspace.id),
        "member_form": TeamMemberForm(workspace=workspace),
    }
    return render(request, "workspaces/teams.html", context)


def _done(request: HttpRequest, action) -> HttpResponse:
    try:
        action()
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    return redirect("workspaces:team-list")


@login_required
@require_POST
def team_create(request: HttpRequest) -> HttpResponse:
    workspace = access_workspace(request.user, current_workspace(request).id, "workspaces.add_team")
    form = TeamForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A team needs a name of at most 100 characters.")
        return redirect("workspaces:team-list")
    return _done(
        request,
        lambda: services.team_create(
            workspace=workspace, name=form.cleaned_data["name"], actor=request.user
        ),
    )


@login_required
@require_POST
def team_delete(request: HttpRequest, team_id: int) -> HttpResponse:
    team = access_team(request.user, team_id, "workspaces.delete_team")
    return _done(request, lambda: services.team_delete(team=team, actor=request.user))


@login_required
@require_POST
def team_member_add(request: HttpRequest, team_id: int) -> HttpResponse:
    team = access_team(request.user, team_id, "workspaces.change_team")
    form = TeamMemberForm(request.POST, workspace=team.workspace)
    if not form.is_valid():
        messages.error(request, "Choose a member of the workspace.")
        return redirect("workspaces:team-list")
    user = form.cleaned_data["member"].user
    return _done(
        request, lambda: services.team_member_add(team=team, user=user, actor=request.user)
    )


@login_required
@require_POST
def team_member_remove(request: HttpRequest, team_id: int, user_id: int) -> HttpResponse:
    team = access_team(request.user, team_id, "workspaces.change_team")
    user = get_user_model().objects.filter(id=user_id, groups=team.group).first()
    if user is None:
        raise Http404
    return _done(
        request, lambda: services.team_member_remove(team=team, user=user, actor=request.user)
    )
