"""The audit log: services call ``audit_record`` inside the transaction of each change, so an
entry exists exactly when its change does. There are no signals: a change that does not go
through a service is not a supported change."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from django.db.models import Model, QuerySet

from workspaces.models import ApiKey, AuditEvent, Workspace


def actor_label(actor: Any) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, ApiKey):
        return f"API key {actor}"
    return actor.get_username()


def snapshot(obj: Model | None, fields: Iterable[str]) -> dict[str, Any] | None:
    """The named fields of ``obj`` as JSON-ready values (foreign keys as ids)."""
    if obj is None:
        return None
    data: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        value = getattr(obj, field.attname)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        data[name] = value
    return data


def audit_record(
    *,
    workspace: Workspace | int | None,
    actor: Any,
    action: str,
    target: Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_label: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one entry. ``action`` reads ``<kind>.<verb>`` (``flow.publish``)."""
    user = actor if actor is not None and not isinstance(actor, ApiKey) else None
    return AuditEvent.objects.create(
        workspace_id=workspace.id if isinstance(workspace, Workspace) else workspace,
        actor=user if user is not None and user.is_authenticated else None,
        actor_label=actor_label(actor)[:200],
        action=action,
        target_type=target_type or (target._meta.model_name if target is not None else ""),
        target_id=target_id or (str(target.pk) if target is not None else ""),
        target_label=(target_label or (str(target) if target is not None else ""))[:200],
        before=before,
        after=after,
    )


CSV_COLUMNS = [
    "time",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target",
    "before",
    "after",
]


def audit_csv_rows(events: QuerySet[AuditEvent]) -> Iterable[str]:
    """The entries as CSV lines, header first, streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(row: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for event in events.iterator(chunk_size=500):
        yield line(
            [
                event.created_at.isoformat(),
                csv_safe(event.actor_label),
                event.action,
                event.target_type,
                event.target_id,
                csv_safe(event.target_label),
                json.dumps(event.before, sort_keys=True) if event.before is not None else "",
                json.dumps(event.after, sort_keys=True) if event.after is not None else "",
            ]
        )


def csv_safe(value: str) -> str:
    # A cell that starts with = + - @ is run as a formula by spreadsheets (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
