"""What every page's top bar needs: the user's workspaces (to switch) and their permissions in
the current one (to show only the links that work). Lazy: pages that do not ask pay nothing."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.functional import SimpleLazyObject

from workspaces.access import current_workspace, user_workspaces, workspace_perms


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def perms() -> frozenset[str]:
        try:
            return workspace_perms(user, current_workspace(request).id)
        except PermissionDenied:
            return frozenset()

    return {
        "nav_workspaces": SimpleLazyObject(lambda: list(user_workspaces(user))),
        "nav_perms": SimpleLazyObject(perms),
    }
