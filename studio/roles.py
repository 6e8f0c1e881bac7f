"""Workspace roles as Django groups with permission sets.

Each role is a group named ``role:<role>`` whose permissions say what the role may do across its
workspace. Members are not put in these groups (that would make the permissions global); a
membership names its role, and the access layer reads the role group's permissions. The sets
each app registers from its ``ready()`` (``register``) are written to the groups after every
``migrate``; an operator may edit them afterwards in
Django's admin, and the next ``migrate`` restores them.
"""

from __future__ import annotations

import time

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission

# The role ladder, lowest first: each role holds its own permissions and every lower role's.
ROLES = ("viewer", "operator", "editor", "admin", "owner")
# Roles whose members always hold the role's permissions on every object of the workspace.
UNLIMITED_ROLES = frozenset({"owner", "admin"})

_OWN: dict[str, set[str]] = {role: set() for role in ROLES}
# ``app_label.codename`` permissions of each role, lower roles' included: what the role groups
# are set to after ``migrate``. Filled by the apps' ``ready()`` through ``register``.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = dict.fromkeys(ROLES, frozenset())


def register(grants: dict[str, set[str]]) -> None:
    """Called by an app's ``ready()``: the permissions each role gains from that app (a role
    also holds whatever is registered for the roles below it)."""
    for role, perms in grants.items():
        if role not in _OWN:
            raise ValueError(f"unknown role {role!r}")
        _OWN[role].update(perms)
    held: set[str] = set()
    for role in ROLES:
        held |= _OWN[role]
        ROLE_PERMISSIONS[role] = frozenset(held)


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
