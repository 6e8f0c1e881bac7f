"""The request and token limits of API keys and workspaces: which subjects a request counts
against, the tokens a model call spends, the usage shown on the keys page, and the audited
changes of the limits. The counting itself is ``studio.quotas``'s.

Every API request counts against its key and its workspace; a member's run from the studio
(chat, editor) counts against the workspace (``workspace_admit``), and every model call's
tokens count against its workspace and, when a key started it, its key: a workspace's quota
bounds all its use, as Dify's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from studio.quotas import (
    Admission,
    Limit,
    Refusal,
    aquota_spend,
    quota_admission,
    quota_spend,
    quota_usage_many,
)
from workspaces.audit import audit_record, snapshot
from workspaces.models import MAX_REQUESTS_PER_MINUTE as MAX_RPM
from workspaces.models import MAX_TOKENS_PER_DAY, ApiKey, Workspace

LIMIT_FIELDS = ("requests_per_minute", "tokens_per_day")


def key_subject(api_key_id: int) -> str:
    return f"key:{api_key_id}"


def workspace_subject(workspace_id: int) -> str:
    return f"workspace:{workspace_id}"


def workspace_limit(workspace: Workspace) -> Limit:
    return Limit(
        workspace_subject(workspace.id),
        workspace.requests_per_minute,
        workspace.tokens_per_day,
        label="This workspace",
    )


def api_key_limits(api_key: ApiKey) -> list[Limit]:
    """The key's own limit, then its workspace's (``api_key.workspace`` is read)."""
    own = Limit(
        key_subject(api_key.id),
        api_key.requests_per_minute,
        api_key.tokens_per_day,
        label="This API key",
    )
    return [own, workspace_limit(api_key.workspace)]


def api_key_admit(api_key: ApiKey) -> Admission:
    """Count one API request against the key and its workspace (one Redis round trip), or
    the refusal, which counts against neither."""
    return quota_admission(api_key_limits(api_key))


def workspace_admit(workspace: Workspace | int) -> Refusal | None:
    """Count one request of a member (a chat message, an editor run) against the workspace,
    or the refusal. Given an id, the workspace's limits are read first (one query)."""
    if not isinstance(workspace, Workspace):
        workspace = Workspace.objects.only(*LIMIT_FIELDS).get(id=workspace)
    return quota_admission([workspace_limit(workspace)]).refusal


def _subjects(workspace_id: int, api_key_id: int | None) -> list[str]:
    subjects = [workspace_subject(workspace_id)]
    if api_key_id is not None:
        subjects.append(key_subject(api_key_id))
    return subjects


def tokens_spend(*, workspace_id: int, api_key_id: int | None, tokens: int) -> None:
    """Add a model call's tokens to today's count of its workspace and key."""
    quota_spend(_subjects(workspace_id, api_key_id), tokens)


async def atokens_spend(*, workspace_id: int, api_key_id: int | None, tokens: int) -> None:
    await aquota_spend(_subjects(workspace_id, api_key_id), tokens)


@dataclass(frozen=True)
class QuotaUsage:
    """A subject's use now against its limits (None: no limit), for the keys page."""

    requests: int
    requests_per_minute: int | None
    tokens: int
    tokens_per_day: int | None


def quota_usage_of(workspace: Workspace, keys: list[ApiKey]) -> dict[str, QuotaUsage]:
    """The usage of the workspace and of each key, by subject, in one Redis round trip."""
    owners: dict[str, Any] = {workspace_subject(workspace.id): workspace}
    owners |= {key_subject(key.id): key for key in keys}
    counts = quota_usage_many(list(owners))
    return {
        subject: QuotaUsage(requests, owner.requests_per_minute, tokens, owner.tokens_per_day)
        for subject, (requests, tokens) in counts.items()
        for owner in (owners[subject],)
    }


def limits_clean(requests_per_minute: Any, tokens_per_day: Any) -> dict[str, int | None]:
    """The limit fields, each None (no limit) or a whole number within its bounds;
    ValidationError saying which is wrong otherwise."""
    bounds = {
        "requests_per_minute": ("Requests per minute", requests_per_minute, MAX_RPM),
        "tokens_per_day": ("Tokens per day", tokens_per_day, MAX_TOKENS_PER_DAY),
    }
    cleaned: dict[str, int | None] = {}
    for field, (label, value, most) in bounds.items():
        if value is None or value == "":
            cleaned[field] = None
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise ValidationError(f"{label} must be a whole number from 1 to {most:,}, or empty.")
        cleaned[field] = value
    return cleaned


def _limits_change(*, target: ApiKey | Workspace, user, action: str, limits: dict) -> None:
    with transaction.atomic():
        before = snapshot(target, LIMIT_FIELDS)
        for name, value in limits.items():
            setattr(target, name, value)
        target.save(update_fields=list(limits))
        audit_record(
            workspace=target.workspace_id if isinstance(target, ApiKey) else target,
            actor=user,
            action=action,
            target=target,
            before=before,
            after=snapshot(target, LIMIT_FIELDS),
        )


def api_key_limits_update(
    *, api_key: ApiKey, requests_per_minute: int | None, tokens_per_day: int | None, user
) -> ApiKey:
    """Set a key's limits (None: none), audited as ``key.limits``. ValidationError for a value
    out of bounds; nothing changes then."""
    limits = limits_clean(requests_per_minute, tokens_per_day)
    _limits_change(target=api_key, user=user, action="key.limits", limits=limits)
    return api_key


def workspace_limits_update(
    *, workspace: Workspace, requests_per_minute: int | None, tokens_per_day: int | None, user
) -> Workspace:
    """Set the workspace's limits over all its keys and members, audited as
    ``workspace.limits``; ValidationError as ``api_key_limits_update``."""
    limits = limits_clean(requests_per_minute, tokens_per_day)
    _limits_change(target=workspace, user=user, action="workspace.limits", limits=limits)
    return workspace
