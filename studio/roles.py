"""Workspace roles as Django groups with permission sets.

Each role is a group named ``role:<role>`` whose permissions say what the role may do across its
workspace. Members are not put in these groups (that would make the permissions global); a
membership names its role, and the access layer reads the role group's permissions. The sets
below are written to the groups after every ``migrate``; an operator may edit them afterwards in
Django's admin, and the next ``migrate`` restores them.
"""

from __future__ import annotations

import time

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission

from studio.models import Role

_VIEWER = {
    "flows.view_flow",
    "catalog.view_model",
    "catalog.view_route",
    "catalog.view_prompt",
    "catalog.view_usage",
    "knowledge.view_knowledgebase",
    "studio.view_workspace",
    "studio.view_team",
    "studio.view_membership",
}
_OPERATOR = _VIEWER | {
    "flows.run_flow",
    "catalog.use_model",
    "catalog.use_route",
    "catalog.use_prompt",
    "knowledge.use_knowledgebase",
}
_EDITOR = _OPERATOR | {
    "flows.add_flow",
    "flows.change_flow",
    "flows.publish_flow",
    "flows.delete_flow",
    "catalog.add_prompt",
    "catalog.change_prompt",
    "catalog.delete_prompt",
    "knowledge.add_knowledgebase",
    "knowledge.change_knowledgebase",
    "knowledge.delete_knowledgebase",
}
_ADMIN = _EDITOR | {
    "flows.share_flow",
    "catalog.add_model",
    "catalog.change_model",
    "catalog.delete_model",
    "catalog.share_model",
    "catalog.add_route",
    "catalog.change_route",
    "catalog.delete_route",
    "catalog.share_route",
    "catalog.approve_prompt",
    "catalog.share_prompt",
    "knowledge.share_knowledgebase",
    "catalog.view_credential",
    "catalog.add_credential",
    "catalog.delete_credential",
    "studio.add_apikey",
    "studio.view_apikey",
    "studio.change_apikey",
    "studio.delete_apikey",
    "studio.share_apikey",
    "studio.manage_members",
    "studio.view_audit",
    "studio.add_team",
    "studio.change_team",
    "studio.delete_team",
}
_OWNER = _ADMIN | {"studio.change_workspace", "studio.transfer_workspace"}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.EDITOR: frozenset(_EDITOR),
    Role.ADMIN: frozenset(_ADMIN),
    Role.OWNER: frozenset(_OWNER),
}

# Roles whose members always hold the role's permissions on every object of the workspace.
UNLIMITED_ROLES = frozenset({Role.OWNER, Role.ADMIN})


def group_name(role: str) -> str:
    return f"role:{role}"


def roles_sync(**kwargs) -> None:
    """Create the role groups with their permission sets (run after ``migrate``)."""
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name(role))
        wanted = []
        for perm in sorted(perms):
            app_label, codename = perm.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)
    _cache.clear()


# The groups' permissions change only by `migrate` or an operator's edit in the admin; reading
# them for every check would cost a query, so each process keeps them for a few seconds.
_CACHE_TTL_S = 10.0
_cache: dict[str, tuple[float, frozenset[str]]] = {}


def role_permissions(role: str) -> frozenset[str]:
    """The ``app_label.codename`` permissions of ``role``'s group."""
    cached = _cache.get(role)
    if cached and time.monotonic() - cached[0] < _CACHE_TTL_S:
        return cached[1]
    perms = frozenset(
        f"{app_label}.{codename}"
        for app_label, codename in Permission.objects.filter(
            group__name=group_name(role)
        ).values_list("content_type__app_label", "codename")
    )
    _cache[role] = (time.monotonic(), perms)
    return perms
