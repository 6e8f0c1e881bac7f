"""Reads of workspaces: members, teams, invitations, keys and the audit log."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from studio import access
from studio.models import ApiKey, AuditEvent, Invitation, Membership, Team, Workspace


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(workspace=workspace)
        .select_related("user")
        .order_by("user__username")
    )


def open_invitations(workspace: Workspace) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        workspace=workspace, accepted_at__isnull=True, expires_at__gt=timezone.now()
    )


def teams_of(workspace: Workspace) -> QuerySet[Team]:
    return Team.objects.filter(workspace=workspace).prefetch_related("group__user_set")


def keys_for(user, workspace: Workspace) -> QuerySet[ApiKey]:
    """The workspace's keys that ``user`` may see (all of them for admins)."""
    return access.scope(user, workspace.id, ApiKey.objects.all(), "view").order_by("-created_at")


def audit_events(workspace: Workspace, filters: dict[str, Any]) -> QuerySet[AuditEvent]:
    """The workspace's audit entries, newest first, narrowed by the filter form's fields."""
    events = AuditEvent.objects.filter(workspace=workspace)
    if filters.get("action"):
        events = events.filter(action__startswith=filters["action"])
    if filters.get("actor"):
        events = events.filter(actor_label__iexact=filters["actor"])
    if filters.get("target_type"):
        events = events.filter(target_type=filters["target_type"])
    if filters.get("since"):
        events = events.filter(created_at__gte=_day_start(filters["since"]))
    if filters.get("until"):
        events = events.filter(created_at__lt=_day_start(filters["until"]) + timedelta(days=1))
    return events


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
