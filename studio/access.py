"""The one access layer: every view, API endpoint, consumer and task fetches objects through here.

``access_<entity>(user, id, perm)`` returns the object or raises: ``Http404`` when it does not
exist or lies in a workspace the user is not a member of (so ids of other tenants leak nothing),
``PermissionDenied`` when the user's role in that workspace is too low for ``perm``.
Models are looked up by label so that this module imports no app.
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404
from django.utils import timezone

from studio.models import KEY_PREFIX, ApiKey, Membership, Role, Workspace, hash_key_secret

Perm = Literal["view", "run", "change", "admin"]

# The lowest role that holds each permission.
_ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.EDITOR: 2, Role.ADMIN: 3, Role.OWNER: 4}
_PERM_RANK = {"view": 0, "run": 1, "change": 2, "admin": 3}


def role_allows(role: str, perm: Perm) -> bool:
    return _ROLE_RANK[Role(role)] >= _PERM_RANK[perm]


def user_workspaces(user) -> QuerySet[Workspace]:
    if not user.is_authenticated or not user.is_active:
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def user_role(user, workspace_id: int) -> str | None:
    if not user.is_authenticated or not user.is_active:
        return None
    return (
        Membership.objects.filter(user=user, workspace_id=workspace_id)
        .values_list("role", flat=True)
        .first()
    )


def current_workspace(request) -> Workspace:
    """The workspace the request works in: the session's choice, else the user's first."""
    workspaces = user_workspaces(request.user)
    chosen = request.session.get("workspace_id")
    workspace = (workspaces.filter(id=chosen).first() if chosen else None) or workspaces.first()
    if workspace is None:
        raise PermissionDenied("You are not a member of any workspace.")
    return workspace


def _check(user, workspace_id: int | None, perm: Perm) -> None:
    if workspace_id is None:  # shared across workspaces (a system catalog model): read-only
        if perm != "view" and not user.is_superuser:
            raise PermissionDenied
        return
    role = user_role(user, workspace_id)
    if role is None:
        raise Http404
    if not role_allows(role, perm):
        raise PermissionDenied


def _access(user, label: str, perm: Perm, **lookup: Any) -> Model:
    model = apps.get_model(label)
    try:
        obj = model.objects.get(**lookup)
    except (model.DoesNotExist, ValidationError, ValueError):
        raise Http404 from None
    _check(user, obj.workspace_id, perm)
    return obj


def access_workspace(user, workspace_id: int, perm: Perm) -> Workspace:
    _check(user, workspace_id, perm)
    return Workspace.objects.get(id=workspace_id)


def access_flow(user, workspace: Workspace, slug: str, perm: Perm):
    return _access(user, "flows.Flow", perm, workspace=workspace, slug=slug)


def access_run(user, run_id: Any, perm: Perm):
    return _access(user, "flows.Run", perm, id=run_id)


# --- API keys -------------------------------------------------------------------------------


def authenticate_api_key(authorization: str | None) -> ApiKey | None:
    """The live key named by an ``Authorization: Bearer <key>`` header, or None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    key = authorization.removeprefix("Bearer ").strip()
    if not key.startswith(KEY_PREFIX) or "." not in key:
        return None
    prefix, _, secret = key.removeprefix(KEY_PREFIX).partition(".")
    api_key = (
        ApiKey.objects.select_related("workspace")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not _constant_time_equal(api_key.secret_hash, hash_key_secret(secret)):
        return None
    ApiKey.objects.filter(id=api_key.id).update(last_used_at=timezone.now())
    return api_key


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def access_published_flow(api_key: ApiKey, slug: str):
    """The published flow ``slug`` of the key's workspace; Http404 for anything else."""
    flow_model = apps.get_model("flows.Flow")
    flow = (
        flow_model.objects.select_related("published_version")
        .filter(workspace_id=api_key.workspace_id, slug=slug, published_version__isnull=False)
        .first()
    )
    if flow is None:
        raise Http404
    return flow


def access_key(user, key_id: int, perm: Perm) -> ApiKey:
    return _access(user, "studio.ApiKey", perm, id=key_id)
