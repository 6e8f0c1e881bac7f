"""Access to the tenancy's own objects (workspaces, memberships, teams, API keys) and what an API
key may do: the key is a principal of ``studio.access``, bounded by its scopes and by what its
creator may do now. Apps whose objects keys may reach register them with ``register_key_kind``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404
from django.utils import timezone

from studio.access import KINDS, active, check, fetch, has_perm, member, object_actions, scope
from studio.roles import role_permissions
from workspaces.models import KEY_PREFIX, ApiKey, Membership, Team, Workspace, hash_key_secret

# --- workspaces and members -----------------------------------------------------------------


def membership(user, workspace_id: int | None) -> Membership | None:
    if not active(user) or workspace_id is None:
        return None
    return Membership.objects.filter(user=user, workspace_id=workspace_id).first()


def in_any_workspace(user) -> bool:
    return user_workspaces(user).exists()


def user_workspaces(user) -> QuerySet[Workspace]:
    if not active(user):
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def current_workspace(request) -> Workspace:
    """The workspace the request works in: the session's choice, else the user's first."""
    workspaces = user_workspaces(request.user)
    chosen = request.session.get("workspace_id")
    workspace = (workspaces.filter(id=chosen).first() if chosen else None) or workspaces.first()
    if workspace is None:
        raise PermissionDenied("You are not a member of any workspace.")
    return workspace


def workspace_perms(user, workspace_id: int) -> frozenset[str]:
    """The ``app_label.codename`` permissions ``user``'s role gives across the workspace."""
    found = member(user, workspace_id)
    return role_permissions(found.role) if found else frozenset()


def access_workspace(user, workspace_id: int, perm: str) -> Workspace:
    """The workspace if ``user``'s role holds ``perm`` (``"workspaces.manage_members"``) in it."""
    found = membership(user, workspace_id)
    if found is None:
        raise Http404
    if perm not in role_permissions(found.role):
        raise PermissionDenied
    return found.workspace


def access_key(user, key_id: Any, perm: str) -> ApiKey:
    """An API key; ``perm``: view, change (revoke), delete, share."""
    return check(user, fetch(ApiKey, id=key_id), perm)


def access_object(user, kind: str, object_id: Any, perm: str) -> Model:
    """Any registered shareable kind by id (the sharing pages)."""
    if kind not in KINDS:
        raise Http404
    return check(user, fetch(KINDS[kind].model, id=object_id), perm)


def access_membership(user, membership_id: Any, perm: str) -> Membership:
    """A membership of a workspace where ``user`` holds ``perm``
    (``"workspaces.manage_members"``)."""
    found = fetch(Membership, id=membership_id)
    access_workspace(user, found.workspace_id, perm)
    return found


def access_team(user, team_id: Any, perm: str) -> Team:
    """A team; seeing it needs membership, ``perm`` (``"workspaces.change_team"``) the role's."""
    team = fetch(Team, id=team_id)
    access_workspace(user, team.workspace_id, perm)
    return team


# --- API keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyKind:
    """What each access level of a key allows on one kind of object: the key's field holding
    the level, the field holding the chosen ids (None: all of the workspace's), the actions by
    level, and the noun its refusals use."""

    level_field: str
    ids_field: str
    actions: dict[str, frozenset[str]]
    noun: str


# Kinds missing here are out of every key's reach.
KEY_KINDS: dict[str, KeyKind] = {}


def register_key_kind(label: str, kind: KeyKind) -> None:
    """Called by an app's ``ready()``: keys may reach objects of ``label`` as ``kind`` says."""
    KEY_KINDS[label] = kind


class KeyRefused(Exception):
    """A real key that may not be used now (expired, unconfirmed, its creator gone); the
    message says why, for the 401 answer."""


# How fresh a key's "last used" time is kept: a busy key writes its row once a minute, not on
# every request.
LAST_USED_STEP = timedelta(minutes=1)


def authenticate_api_key(authorization: str | None) -> ApiKey | None:
    """The live key named by an ``Authorization: Bearer <key>`` header, or None for no key, a
    wrong or a revoked one. KeyRefused for a key that exists but may not act now."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    key = authorization.removeprefix("Bearer ").strip()
    if not key.startswith(KEY_PREFIX) or "." not in key:
        return None
    prefix, _, secret = key.removeprefix(KEY_PREFIX).partition(".")
    api_key = (
        ApiKey.objects.select_related("workspace", "created_by")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not _constant_time_equal(api_key.secret_hash, hash_key_secret(secret)):
        return None
    reason = key_refusal(api_key)
    if reason is not None:
        raise KeyRefused(reason)
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_STEP:
        ApiKey.objects.filter(id=api_key.id).update(last_used_at=now)
    return api_key


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def key_refusal(api_key: ApiKey) -> str | None:
    """Why ``api_key`` may not act at all now, or None. A key acts for its creator, so it
    stops with them (deactivated, gone, out of the workspace)."""
    if api_key.revoked_at is not None:
        return "This API key was revoked."
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        return f"This API key expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC."
    if api_key.legacy and api_key.legacy_confirmed_at is None:
        return (
            "This API key was made before keys had scopes: an admin must confirm or re-scope "
            "it on the API keys page."
        )
    creator = api_key.created_by
    if creator is None:
        return None if api_key.host_issued else "The member who made this API key is gone."
    if not creator.is_active:
        return "The member who made this API key is deactivated."
    if membership(creator, api_key.workspace_id) is None:
        return "The member who made this API key has left the workspace."
    return None


def _key_grant(api_key: ApiKey, label: str) -> tuple[frozenset[str], list[int] | None]:
    """The actions the key's own scope gives on objects of ``label``, and the chosen ids (None:
    all of the workspace's)."""
    kind = KEY_KINDS.get(label)
    if kind is None:
        return frozenset(), []
    level = getattr(api_key, kind.level_field)
    return kind.actions.get(level, frozenset()), getattr(api_key, kind.ids_field)


def key_actions(api_key: ApiKey, obj: Model) -> frozenset[str]:
    """What the key may do on ``obj``: its scope's actions, within what its creator may do now.
    Http404 for another workspace's object."""
    if getattr(obj, "workspace_id", None) != api_key.workspace_id:
        raise Http404
    actions, ids = _key_grant(api_key, obj._meta.label)
    if ids is not None and obj.pk not in ids:
        return frozenset()
    if actions and api_key.created_by_id is not None:
        try:
            actions &= object_actions(api_key.created_by, obj)
        except Http404:
            return frozenset()
    return actions


def key_scope(api_key: ApiKey, workspace_id: int, queryset: QuerySet, action: str) -> QuerySet:
    if workspace_id != api_key.workspace_id:
        return queryset.none()
    actions, ids = _key_grant(api_key, queryset.model._meta.label)
    if action not in actions:
        return queryset.none()
    queryset = queryset.filter(workspace_id=workspace_id)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    if api_key.created_by_id is not None:
        creator_may = scope(api_key.created_by, workspace_id, queryset.model.objects.all(), action)
        queryset = queryset.filter(pk__in=creator_may.values("pk"))
    return queryset


def key_kind_check(api_key: ApiKey, label: str) -> None:
    """PermissionDenied (with the reason) when the key has no access at all to ``label``'s
    kind: the 403 that says so before any object is named."""
    if not _key_grant(api_key, label)[0]:
        kind = KEY_KINDS.get(label)
        raise PermissionDenied(f"This API key has no access to {kind.noun if kind else label}.")


def key_check_for_task(api_key_id: int, obj: Model | None, action: str) -> None:
    """PermissionDenied with the reason unless the key is still usable and may still take
    ``action`` on ``obj`` (when given): a key narrowed, expired or revoked after a request
    stops the work it queued."""
    api_key = ApiKey.objects.select_related("created_by").filter(id=api_key_id).first()
    if api_key is None:
        raise PermissionDenied("the API key is gone")
    reason = key_refusal(api_key)
    if reason is not None:
        raise PermissionDenied(reason)
    if obj is not None and not has_perm(api_key, obj, action):
        noun = obj._meta.verbose_name
        raise PermissionDenied(f"the API key may no longer {action} this {noun}")
