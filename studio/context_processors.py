"""What every page's top bar needs: the user's workspaces (to switch) and their permissions in
the current one (to show only the links that work). Lazy: pages that do not ask pay nothing."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.functional import SimpleLazyObject

from studio import access


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def perms() -> frozenset[str]:
        try:
            return access.workspace_perms(user, access.current_workspace(request).id)
        except PermissionDenied:
            return frozenset()

    return {
        "nav_workspaces": SimpleLazyObject(lambda: list(access.user_workspaces(user))),
        "nav_perms": SimpleLazyObject(perms),
    }
