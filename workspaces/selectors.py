"""Reads of workspaces: members, teams, invitations, keys and the audit log."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.db.models import QuerySet
from django.utils import timezone

from studio import access
from workspaces.models import ApiKey, AuditEvent, Invitation, Membership, Team, Workspace


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


def invitation_open(invitation_id: Any) -> Invitation | None:
    """The open, unexpired invitation with this id (one whose token the session proved)."""
    return (
        Invitation.objects.select_related("workspace")
        .filter(id=invitation_id, accepted_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


def teams_of(workspace: Workspace) -> QuerySet[Team]:
    return Team.objects.filter(workspace=workspace).prefetch_related("group__user_set")


def keys_for(user, workspace: Workspace) -> QuerySet[ApiKey]:
    """The workspace's keys that ``user`` may see (all of them for admins)."""
    return access.scope(user, workspace.id, ApiKey.objects.all(), "view").order_by("-created_at")


KEY_SCOPE_LISTS = (
    ("flows.Flow", "flow_ids", "flow_names"),
    ("knowledge.KnowledgeBase", "knowledge_base_ids", "knowledge_base_names"),
)


def keys_listed(user, workspace: Workspace) -> list[ApiKey]:
    """``keys_for``, each with ``flow_names`` and ``knowledge_base_names``: the slugs of the
    objects its scope chose that still exist (None where it reaches all of them)."""
    keys = list(keys_for(user, workspace).select_related("created_by"))
    for label, ids_field, names_field in KEY_SCOPE_LISTS:
        chosen = {i for key in keys for i in getattr(key, ids_field) or ()}
        objects = apps.get_model(label).objects.filter(workspace=workspace, pk__in=chosen)
        slugs = dict(objects.values_list("pk", "slug"))
        for key in keys:
            ids = getattr(key, ids_field)
            setattr(
                key, names_field, None if ids is None else [slugs[i] for i in ids if i in slugs]
            )
    return keys


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
