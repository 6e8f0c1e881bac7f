"""The API keys page: create with scopes and limits (shown once), re-scope, limit, confirm a
legacy key, revoke; the workspace's own limits, and the usage of each against them."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from workspaces import selectors
from workspaces.access import access_key, access_workspace, current_workspace, workspace_perms
from workspaces.key_forms import (
    KeyCreateForm,
    KeyScopeForm,
    LimitsForm,
    key_initial,
    limits_initial,
)
from workspaces.models import Workspace
from workspaces.quotas import (
    api_key_limits_update,
    key_subject,
    quota_usage_of,
    workspace_limits_update,
    workspace_subject,
)
from workspaces.services import (
    api_key_create,
    api_key_legacy_confirm,
    api_key_revoke,
    api_key_scopes_update,
)

WORKSPACE_LIMITS = "workspaces.manage_members"


def _keys_context(
    request: HttpRequest,
    workspace: Workspace,
    limits_form: tuple[int, LimitsForm] | None = None,
    **extra,
) -> dict:
    """The page's context; ``limits_form``: a key's refused limits form, shown again."""
    example = workspace.flows.filter(kind="flow", published_version__isnull=False)
    example = example.order_by("slug").first()
    perms = workspace_perms(request.user, workspace.id)
    can_create = "workspaces.add_apikey" in perms
    keys = selectors.keys_listed(request.user, workspace)
    usage = quota_usage_of(workspace, keys)
    for key in keys:
        key.quota = usage[key_subject(key.id)]
    for key in keys if can_create else ():
        # Each row's re-scope form, with its own prefix so the page's ids stay unique.
        key.scope_form = KeyScopeForm(
            user=request.user,
            workspace=workspace,
            editing=True,
            initial=key_initial(key),
            prefix=f"key{key.id}",
        )
        key.limits_form = (
            limits_form[1]
            if limits_form and limits_form[0] == key.id
            else LimitsForm(initial=limits_initial(key), prefix=f"limits{key.id}")
        )
    can_limit_workspace = WORKSPACE_LIMITS in perms
    extra.setdefault(
        "workspace_limits_form",
        LimitsForm(initial=limits_initial(workspace), prefix="workspace")
        if can_limit_workspace
        else None,
    )
    return {
        "workspace": workspace,
        "workspace_quota": usage[workspace_subject(workspace.id)],
        "keys": keys,
        "can_create": can_create,
        "form": KeyCreateForm(user=request.user, workspace=workspace) if can_create else None,
        # The curl examples name a real flow of the workspace when there is one.
        "example_slug": example.slug if example else "assistant",
        "base_url": request.build_absolute_uri("/").rstrip("/"),
        **extra,
    }


@login_required
@require_GET
def key_list(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    return render(request, "workspaces/keys.html", _keys_context(request, workspace))


@never_cache  # the response holds the new key: no copy in any cache
@login_required
@require_POST
def key_create(request: HttpRequest) -> HttpResponse:
    workspace = current_workspace(request)
    access_workspace(request.user, workspace.id, "workspaces.add_apikey")
    form = KeyCreateForm(request.POST, user=request.user, workspace=workspace)
    if form.is_valid():
        try:
            api_key, key = api_key_create(
                workspace=workspace,
                name=form.cleaned_data["name"].strip() or "unnamed",
                user=request.user,
                scopes=form.scopes(),
                **form.limits(),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            # The key is shown in this response only; it is not stored anywhere.
            context = _keys_context(request, workspace, new_key=key, new_key_row=api_key)
            return render(request, "workspaces/keys.html", context)
    context = _keys_context(request, workspace, form=form)
    return render(request, "workspaces/keys.html", context, status=400)


def _key_to_manage(request: HttpRequest, key_id: int):
    """A key the user may change, in a workspace where they may make keys: re-scoping or
    confirming a key hands out access as making one does."""
    api_key = access_key(request.user, key_id, "change")
    access_workspace(request.user, api_key.workspace_id, "workspaces.add_apikey")
    return api_key


@login_required
@require_POST
def key_scopes(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _key_to_manage(request, key_id)
    workspace = api_key.workspace
    form = KeyScopeForm(
        request.POST, user=request.user, workspace=workspace, editing=True, prefix=f"key{key_id}"
    )
    try:
        if not form.is_valid():
            raise ValidationError("; ".join(e for errors in form.errors.values() for e in errors))
        api_key_scopes_update(
            api_key=api_key, scopes=form.scopes(api_key.expires_at), user=request.user
        )
    except ValidationError as exc:
        context = _keys_context(request, workspace, key_error=(api_key.id, exc.messages))
        return render(request, "workspaces/keys.html", context, status=400)
    return redirect("workspaces:key-list")


@login_required
@require_POST
def key_limits(request: HttpRequest, key_id: int) -> HttpResponse:
    """Set a key's requests per minute and tokens per day (empty: no limit)."""
    api_key = _key_to_manage(request, key_id)
    form = LimitsForm(request.POST, prefix=f"limits{key_id}")
    if form.is_valid():
        try:
            api_key_limits_update(api_key=api_key, user=request.user, **form.limits())
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("workspaces:key-list")
    context = _keys_context(request, api_key.workspace, limits_form=(api_key.id, form))
    return render(request, "workspaces/keys.html", context, status=400)


@login_required
@require_POST
def workspace_limits(request: HttpRequest) -> HttpResponse:
    """Set the current workspace's limits over all its keys and members (admins)."""
    workspace = access_workspace(request.user, current_workspace(request).id, WORKSPACE_LIMITS)
    form = LimitsForm(request.POST, prefix="workspace")
    if form.is_valid():
        try:
            workspace_limits_update(workspace=workspace, user=request.user, **form.limits())
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("workspaces:key-list")
    context = _keys_context(request, workspace, workspace_limits_form=form)
    return render(request, "workspaces/keys.html", context, status=400)


@login_required
@require_POST
def key_confirm(request: HttpRequest, key_id: int) -> HttpResponse:
    """Confirm that a key made before scopes keeps the whole workspace."""
    api_key = _key_to_manage(request, key_id)
    try:
        api_key_legacy_confirm(api_key=api_key, user=request.user)
    except ValidationError as exc:
        context = _keys_context(request, api_key.workspace, key_error=(api_key.id, exc.messages))
        return render(request, "workspaces/keys.html", context, status=400)
    return redirect("workspaces:key-list")


@login_required
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = access_key(request.user, key_id, "change")
    api_key_revoke(api_key=api_key, user=request.user)
    return redirect("workspaces:key-list")
