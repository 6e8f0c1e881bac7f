"""The members page: invite, change a role, remove, deactivate, transfer ownership."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from workspaces import selectors, services
from workspaces.access import (
    access_membership,
    access_workspace,
    current_workspace,
    user_workspaces,
    workspace_perms,
)
from workspaces.forms import InviteForm, MemberChangeForm, TransferForm
from workspaces.models import Workspace
from workspaces.views.invitations import accept_url

MANAGE = "workspaces.manage_members"


def _render(request: HttpRequest, workspace: Workspace, status: int = 200, **extra) -> HttpResponse:
    perms = workspace_perms(request.user, workspace.id)
    context = {
        "workspace": workspace,
        "members": selectors.members_of(workspace),
        "invitations": selectors.open_invitations(workspace),
        "can_manage": MANAGE in perms,
        "can_transfer": "workspaces.transfer_workspace" in perms,
        "invite_form": InviteForm(),
        "transfer_form": TransferForm(workspace=workspace),
        "roles": MemberChangeForm.base_fields["role"].choices,
        **extra,
    }
    return render(request, "workspaces/members.html", context, status=status)


def _refused(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    messages.error(request, "; ".join(exc.messages))
    return redirect("workspaces:member-list")


@login_required
@require_GET
def member_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    access_workspace(request.user, workspace.id, "workspaces.view_membership")
    return _render(request, workspace)


@never_cache  # may show an invitation link, which carries its secret
@login_required
@require_POST
def member_invite(request: HttpRequest) -> HttpResponse:
    workspace = access_workspace(request.user, current_workspace(request).id, MANAGE)
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _render(request, workspace, status=400, invite_form=form)
    data = form.cleaned_data
    user = form.existing_user()
    try:
        if user is not None:
            if workspace.memberships.filter(user=user).exists():
                raise ValidationError(f"{user.get_username()} is already a member.")
            services.member_add(
                workspace=workspace,
                user=user,
                role=data["role"],
                limited=data["limited"],
                actor=request.user,
            )
            messages.success(request, f"{user.get_username()} joined as {data['role']}.")
            return redirect("workspaces:member-list")
        invitation, token = services.invitation_create(
            workspace=workspace,
            email=data["who"],
            role=data["role"],
            limited=data["limited"],
            actor=request.user,
            accept_url=lambda t: accept_url(request, t),
        )
    except ValidationError as exc:
        form.add_error(None, exc)
        return _render(request, workspace, status=400, invite_form=form)
    link = accept_url(request, token)
    mailed = settings.EMAIL_BACKEND != services.CONSOLE_MAIL
    return _render(
        request, workspace, invitation_link=link, invited=invitation, invitation_mailed=mailed
    )


@login_required
@require_POST
def member_change(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = access_membership(request.user, membership_id, MANAGE)
    form = MemberChangeForm(request.POST)
    if not form.is_valid():
        return _refused(request, ValidationError("Choose a role."))
    try:
        services.member_change(
            membership=membership,
            role=form.cleaned_data["role"],
            limited=form.cleaned_data["limited"],
            actor=request.user,
        )
    except ValidationError as exc:
        return _refused(request, exc)
    messages.success(request, f"{membership.user.get_username()} is now {membership.role}.")
    return redirect("workspaces:member-list")


@login_required
@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = access_membership(request.user, membership_id, MANAGE)
    try:
        services.member_remove(membership=membership, actor=request.user)
    except ValidationError as exc:
        return _refused(request, exc)
    messages.success(request, f"Removed {membership.user.get_username()}.")
    return redirect("workspaces:member-list")


@login_required
@require_POST
def member_deactivate(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = access_membership(request.user, membership_id, MANAGE)
    try:
        services.user_deactivate(user=membership.user, actor=request.user)
    except ValidationError as exc:
        return _refused(request, exc)
    messages.success(request, f"Deactivated {membership.user.get_username()}: signed out.")
    return redirect("workspaces:member-list")


@login_required
@require_POST
def member_reactivate(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = access_membership(request.user, membership_id, MANAGE)
    try:
        services.user_reactivate(user=membership.user, actor=request.user)
    except ValidationError as exc:
        return _refused(request, exc)
    messages.success(request, f"Reactivated {membership.user.get_username()}.")
    return redirect("workspaces:member-list")


@login_required
@require_POST
def workspace_transfer(request: HttpRequest) -> HttpResponse:
    workspace = access_workspace(
        request.user, current_workspace(request).id, "workspaces.transfer_workspace"
    )
    form = TransferForm(request.POST, workspace=workspace)
    if not form.is_valid():
        return _render(request, workspace, status=400, transfer_form=form)
    to_user = form.cleaned_data["to"].user
    try:
        services.workspace_transfer(workspace=workspace, to_user=to_user, actor=request.user)
    except ValidationError as exc:
        return _refused(request, exc)
    messages.success(request, f"{to_user.get_username()} now owns {workspace.name}.")
    return redirect("workspaces:member-list")


@login_required
@require_POST
def workspace_switch(request: HttpRequest) -> HttpResponse:
    """Work in another of the user's workspaces."""
    chosen = request.POST.get("workspace_id", "")
    workspace = get_object_or_404(
        user_workspaces(request.user), id=int(chosen) if chosen.isdigit() else 0
    )
    request.session["workspace_id"] = workspace.id
    return redirect("flows:home")
