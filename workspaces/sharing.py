"""Per-object grants: share one flow, model, key (or, later, knowledge base, prompt, agent) with a
member or a team at a level (view, use, edit, manage), and read who can access an object.

Grants are django-guardian rows in the object's direct foreign-key permission tables, so deleting
the object deletes them. Who may grant is checked by the caller (``share`` on the object).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from studio.access import KINDS, Kind, kind_of
from studio.roles import UNLIMITED_ROLES, role_permissions
from workspaces import notify
from workspaces.audit import audit_record
from workspaces.models import Membership, Role, Team


def _subject_label(subject) -> str:
    return f"team {subject.name}" if isinstance(subject, Team) else subject.get_username()


def _perm_rows(obj: Model, subject):
    if isinstance(subject, Team):
        return get_group_obj_perms_model(obj).objects.filter(
            group=subject.group, content_object=obj
        )
    return get_user_obj_perms_model(obj).objects.filter(user=subject, content_object=obj)


def level_of(kind: Kind, codenames: set[str], model_name: str) -> str | None:
    """The highest level whose actions are all among ``codenames``."""
    actions = {c.removesuffix(f"_{model_name}") for c in codenames}
    best = None
    for level, level_actions in kind.levels.items():  # ordered lowest to highest
        if set(level_actions) <= actions:
            best = level
    return best


def creator_grant(*, obj: Model, user) -> None:
    """Give a limited member "manage" on what they just created: they see only what is shared
    with them, and would otherwise lose sight of their own work. Others need no grant."""
    found = (
        Membership.objects.filter(workspace_id=obj.workspace_id, user=user).first()
        if user
        else None
    )
    if found is not None and found.limited and found.role not in UNLIMITED_ROLES:
        object_grant(obj=obj, subject=user, level="manage", actor=user)


def object_grant(*, obj: Model, subject, level: str, actor) -> None:
    """Give ``subject`` (a member or a team of the object's workspace) ``level`` on ``obj``,
    replacing what they had."""
    kind = kind_of(obj)
    if level not in kind.levels:
        raise ValidationError(f"{level!r} is not a level of {kind.name} access.")
    workspace_id = obj.workspace_id
    if isinstance(subject, Team):
        if subject.workspace_id != workspace_id:
            raise ValidationError("That team belongs to another workspace.")
    elif not Membership.objects.filter(workspace_id=workspace_id, user=subject).exists():
        raise ValidationError(f"{subject.get_username()} is not a member of this workspace.")
    model_name = obj._meta.model_name
    codenames = [f"{action}_{model_name}" for action in kind.levels[level]]
    perms = Permission.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), codename__in=codenames
    )
    with transaction.atomic():
        rows = _perm_rows(obj, subject)
        before = level_of(
            kind, set(rows.values_list("permission__codename", flat=True)), model_name
        )
        rows.delete()
        if isinstance(subject, Team):
            model, owner = get_group_obj_perms_model(obj), {"group": subject.group}
        else:
            model, owner = get_user_obj_perms_model(obj), {"user": subject}
        model.objects.bulk_create(
            model(permission=perm, content_object=obj, **owner) for perm in perms
        )
        audit_record(
            workspace=workspace_id,
            actor=actor,
            action="permission.grant",
            target=obj,
            target_type=kind.name,
            before={"subject": _subject_label(subject), "level": before},
            after={"subject": _subject_label(subject), "level": level},
        )
        notify.access_changed(_user_ids(subject))


def object_revoke(*, obj: Model, subject, actor) -> None:
    kind = kind_of(obj)
    with transaction.atomic():
        rows = _perm_rows(obj, subject)
        before = level_of(
            kind, set(rows.values_list("permission__codename", flat=True)), obj._meta.model_name
        )
        if before is None and not rows.exists():
            raise ValidationError(f"{_subject_label(subject)} holds no grant on this {kind.name}.")
        rows.delete()
        audit_record(
            workspace=obj.workspace_id,
            actor=actor,
            action="permission.revoke",
            target=obj,
            target_type=kind.name,
            before={"subject": _subject_label(subject), "level": before},
            after={"subject": _subject_label(subject), "level": None},
        )
        notify.access_changed(_user_ids(subject))


def _user_ids(subject) -> list[int]:
    if isinstance(subject, Team):
        return list(subject.group.user_set.values_list("id", flat=True))
    return [subject.pk]


def grants_remove_for_user(*, workspace_id: int, user) -> None:
    """Drop ``user``'s direct grants on every object of a workspace (they are leaving it)."""
    for kind in KINDS.values():
        perms_model = get_user_obj_perms_model(kind.model)
        perms_model.objects.filter(user=user, content_object__workspace_id=workspace_id).delete()


# --- reads ----------------------------------------------------------------------------------


@dataclass
class Grant:
    subject_type: str  # "user" or "team"
    subject_id: int
    label: str
    level: str | None


@dataclass
class Access:
    """One member's effective access to an object, and where it comes from."""

    username: str
    role: str
    limited: bool
    actions: list[str]
    sources: list[str] = field(default_factory=list)


def grants_on(obj: Model) -> list[Grant]:
    kind = kind_of(obj)
    model_name = obj._meta.model_name
    by_user: dict[int, set[str]] = {}
    labels: dict[tuple[str, int], str] = {}
    for user_id, username, codename in (
        get_user_obj_perms_model(obj)
        .objects.filter(content_object=obj)
        .values_list("user_id", "user__username", "permission__codename")
    ):
        by_user.setdefault(user_id, set()).add(codename)
        labels[("user", user_id)] = username
    by_team: dict[int, set[str]] = {}
    for team_id, name, codename in (
        get_group_obj_perms_model(obj)
        .objects.filter(content_object=obj, group__team__isnull=False)
        .values_list("group__team__id", "group__team__name", "permission__codename")
    ):
        by_team.setdefault(team_id, set()).add(codename)
        labels[("team", team_id)] = name
    grants = [
        Grant("user", uid, labels[("user", uid)], level_of(kind, cs, model_name))
        for uid, cs in by_user.items()
    ] + [
        Grant("team", tid, labels[("team", tid)], level_of(kind, cs, model_name))
        for tid, cs in by_team.items()
    ]
    return sorted(grants, key=lambda g: (g.subject_type, g.label))


def who_can_access(obj: Model) -> list[Access]:
    """Every member of the object's workspace who can at least view it, with their actions and
    why (their role, a direct grant, a team's grant)."""
    suffix = f"_{obj._meta.model_name}"
    prefix = f"{obj._meta.app_label}."
    user_grants: dict[int, set[str]] = {}
    for user_id, codename in (
        get_user_obj_perms_model(obj)
        .objects.filter(content_object=obj)
        .values_list("user_id", "permission__codename")
    ):
        user_grants.setdefault(user_id, set()).add(codename)
    team_grants: dict[int, tuple[str, set[str]]] = {}
    for group_id, name, codename in (
        get_group_obj_perms_model(obj)
        .objects.filter(content_object=obj, group__team__isnull=False)
        .values_list("group_id", "group__team__name", "permission__codename")
    ):
        team_grants.setdefault(group_id, (name, set()))[1].add(codename)
    rows: list[Access] = []
    memberships = (
        Membership.objects.filter(workspace_id=obj.workspace_id)
        .select_related("user")
        .prefetch_related("user__groups")
    )
    for m in memberships.order_by("user__username"):
        if not m.user.is_active:
            continue
        codenames: set[str] = set()
        sources: list[str] = []
        if not m.limited or m.role in UNLIMITED_ROLES:
            by_role = {
                p.removeprefix(prefix)
                for p in role_permissions(m.role)
                if p.startswith(prefix) and p.endswith(suffix)
            }
            if by_role:
                codenames |= by_role
                sources.append(f"role {Role(m.role).label.lower()}")
        if m.user_id in user_grants:
            codenames |= user_grants[m.user_id]
            sources.append("shared with them")
        for group_id in (group.id for group in m.user.groups.all()):
            if group_id in team_grants:
                name, team_codenames = team_grants[group_id]
                codenames |= team_codenames
                sources.append(f"team {name}")
        actions = sorted(c.removesuffix(suffix) for c in codenames if c.endswith(suffix))
        if "view" in actions:
            rows.append(Access(m.user.get_username(), m.role, m.limited, actions, sources))
    return rows
