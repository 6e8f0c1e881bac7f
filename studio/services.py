"""Writes of workspaces, members and API keys."""

from __future__ import annotations

from django.utils import timezone

from studio.models import ApiKey, Membership, Role, Workspace


def workspace_create(*, slug: str, name: str, owner=None) -> Workspace:
    workspace = Workspace.objects.create(slug=slug, name=name)
    if owner is not None:
        Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    return workspace


def member_add(*, workspace: Workspace, user, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    return membership


def api_key_create(*, workspace: Workspace, name: str, user=None) -> tuple[ApiKey, str]:
    """A new key for ``workspace``. Returns the row and the key, which is never stored."""
    key, prefix, secret_hash = ApiKey.generate()
    api_key = ApiKey.objects.create(
        workspace=workspace, name=name, prefix=prefix, secret_hash=secret_hash, created_by=user
    )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
