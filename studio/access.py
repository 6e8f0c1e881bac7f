"""The access mechanism every view, API endpoint, consumer and task goes through.

Each app has its own ``access.py`` with ``access_<entity>(user, id, perm)`` functions built on
``check`` and ``scope`` here; they return the object or raise: ``Http404`` when it does not exist,
lies in a workspace the user is not a member of, or is hidden from a limited member (so ids of
other tenants leak nothing); ``PermissionDenied`` when the user may see it but not do ``perm``.

What a member may do with an object is the union of
- their role's permissions (the role group's set, ``studio.roles``), unless the membership is
  limited, and
- the object's django-guardian grants to them or to one of their teams.

This module imports no app: the tenancy app registers how to find a user's membership
(``register_tenancy``) and the principals that are not users, such as API keys
(``register_principal``); apps register their shareable kinds (``register_kind``) and the objects
whose access is another object's (``register_delegate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, Q, QuerySet
from django.http import Http404
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from studio.roles import UNLIMITED_ROLES, role_permissions

M = TypeVar("M", bound=Model)

# --- shareable kinds ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A type of object that can be shared: its model and the grant levels offered for it.

    ``levels`` maps a level name shown to admins ("view", "use", "edit", "manage") to the
    actions (permission codenames without ``_<model>``) that the level grants.
    """

    name: str
    label: str
    levels: dict[str, tuple[str, ...]]

    @property
    def model(self) -> type[Model]:
        return apps.get_model(self.label)


KINDS: dict[str, Kind] = {}


def register_kind(name: str, label: str, levels: dict[str, tuple[str, ...]]) -> None:
    """Called by an app's ``ready()``: objects of ``label`` can be shared as ``name``."""
    KINDS[name] = Kind(name=name, label=label, levels=levels)


def kind_of(obj: Model) -> Kind:
    label = obj._meta.label
    for kind in KINDS.values():
        if kind.label == label:
            return kind
    raise LookupError(f"{label} is not a shareable kind")


# --- tenancy and principals -----------------------------------------------------------------


class Member(Protocol):
    """A user's standing in one workspace: their role and whether it is limited."""

    role: str
    limited: bool


@dataclass(frozen=True)
class Tenancy:
    """How the tenancy app answers the two questions every check asks."""

    membership: Callable[[Any, int], Member | None]
    in_any_workspace: Callable[[Any], bool]


@dataclass(frozen=True)
class Principal:
    """A kind of actor that is not a user (an API key): what it may do on an object, and the
    objects of a queryset it may reach."""

    actions: Callable[[Any, Model], frozenset[str]]
    scope: Callable[[Any, int, QuerySet, str], QuerySet]


_tenancy: list[Tenancy] = []
_principals: dict[type, Principal] = {}


def register_tenancy(tenancy: Tenancy) -> None:
    """Called by the tenancy app's ``ready()``."""
    _tenancy[:] = [tenancy]


def register_principal(cls: type, principal: Principal) -> None:
    """Called by the app that defines ``cls``: checks on an instance of it use ``principal``."""
    _principals[cls] = principal


def active(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def member(user, workspace_id: int | None) -> Member | None:
    """``user``'s membership of the workspace, or None (inactive user, not a member)."""
    if not active(user) or workspace_id is None:
        return None
    return _tenancy[0].membership(user, workspace_id)


# --- delegated access -----------------------------------------------------------------------


@dataclass(frozen=True)
class Delegate:
    """Objects of a model whose access is another object's: a flow that serves a published agent
    is reached as the agent is. ``delegates(obj)`` says whether ``obj`` is one (its ``rows``,
    as a filter); ``resolve(obj)`` is the object whose grants decide (None when it is gone:
    then nobody reaches ``obj``), reached from the model through the ``link`` lookup; and
    ``actions`` maps each action on that object to the actions it gives on ``obj`` (an action
    left out gives nothing)."""

    delegates: Callable[[Any], bool]
    resolve: Callable[[Any], Model | None]
    rows: Q
    link: str
    target: str
    actions: dict[str, tuple[str, ...]]

    def given(self, target_actions: frozenset[str]) -> frozenset[str]:
        return frozenset(a for t in target_actions for a in self.actions.get(t, ()))

    def sources(self, action: str) -> list[str]:
        """The target's actions that give ``action``."""
        return [t for t, given in self.actions.items() if action in given]


_delegates: dict[str, Delegate] = {}


def register_delegate(label: str, delegate: Delegate) -> None:
    """Called by the app that owns the deciding object: checks on objects of ``label`` that
    ``delegate.delegates`` are decided by ``delegate.resolve(obj)``'s access, for members and,
    through the member who made it, for API keys."""
    _delegates[label] = delegate


# --- objects --------------------------------------------------------------------------------


def _codename(model: type[Model] | Model, action: str) -> str:
    return f"{action}_{model._meta.model_name}"


def _granted(user, obj: Model) -> set[str]:
    """Codenames granted on ``obj`` to ``user`` directly or through one of their teams."""
    user_perms = get_user_obj_perms_model(obj).objects.filter(user=user, content_object=obj)
    group_perms = get_group_obj_perms_model(obj).objects.filter(
        group__user=user, content_object=obj
    )
    return set(user_perms.values_list("permission__codename", flat=True)) | set(
        group_perms.values_list("permission__codename", flat=True)
    )


def object_actions(user, obj: Model) -> frozenset[str]:
    """The actions (``view``, ``run``, ``change`` …) ``user`` may take on ``obj``.

    Raises Http404 when ``user`` is not a member of the object's workspace. Objects without a
    workspace (shared catalog models) can be viewed and used by every member of any workspace
    and changed by superusers only. ``user`` may be a registered principal (an API key).
    """
    principal = _principals.get(type(user))
    if principal is not None:
        return principal.actions(user, obj)
    delegate = _delegates.get(obj._meta.label)
    if delegate is not None and delegate.delegates(obj):
        target = delegate.resolve(obj)
        if target is None:
            raise Http404
        return delegate.given(object_actions(user, target))
    suffix = f"_{obj._meta.model_name}"
    if getattr(obj, "workspace_id", None) is None:
        if not active(user) or not _tenancy[0].in_any_workspace(user):
            raise Http404
        if user.is_superuser:
            return frozenset(p.codename.removesuffix(suffix) for p in _model_permissions(type(obj)))
        return frozenset({"view", "use"})
    found = member(user, obj.workspace_id)
    if found is None:
        raise Http404
    codenames = _granted(user, obj)
    if not found.limited or found.role in UNLIMITED_ROLES:
        prefix = f"{obj._meta.app_label}."
        codenames |= {
            p.removeprefix(prefix)
            for p in role_permissions(found.role)
            if p.startswith(prefix) and p.endswith(suffix)
        }
    return frozenset(c.removesuffix(suffix) for c in codenames if c.endswith(suffix))


def _model_permissions(model: type[Model]):
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    return Permission.objects.filter(content_type=ContentType.objects.get_for_model(model))


def has_perm(user, obj: Model, action: str) -> bool:
    try:
        return action in object_actions(user, obj)
    except Http404:
        return False


def check(user, obj: M, action: str) -> M:
    """``obj`` if ``user`` may take ``action`` on it; Http404 if they may not even see it."""
    actions = object_actions(user, obj)
    if action in actions:
        return obj
    if "view" not in actions:
        raise Http404
    raise PermissionDenied


def fetch(model: type[M], *related: str, **lookup: Any) -> M:
    """The one object ``lookup`` names, or Http404 (missing, or an id that is not one)."""
    try:
        return model.objects.select_related(*related).get(**lookup)
    except (model.DoesNotExist, ValidationError, ValueError):
        raise Http404 from None


def scope(user, workspace_id: int, queryset: QuerySet, action: str = "view") -> QuerySet:
    """``queryset`` narrowed in SQL to the workspace's objects ``user`` may take ``action`` on.

    For retrieval and lists: one query, whatever the number of grants.
    """
    principal = _principals.get(type(user))
    if principal is not None:
        return principal.scope(user, workspace_id, queryset, action)
    delegate = _delegates.get(queryset.model._meta.label)
    if delegate is not None:
        return _delegated_scope(user, workspace_id, queryset, action, delegate)
    return _own_scope(user, workspace_id, queryset, action)


def _delegated_scope(
    user, workspace_id: int, queryset: QuerySet, action: str, delegate: Delegate
) -> QuerySet:
    """``scope`` for a model some of whose objects delegate: the others by their own grants,
    those by their target's (one subquery per target action that gives ``action``)."""
    own = _own_scope(user, workspace_id, queryset.model.objects.exclude(delegate.rows), action)
    reached = Q(pk__in=own.values("pk"))
    target_model = apps.get_model(delegate.target)
    for source in delegate.sources(action):
        targets = scope(user, workspace_id, target_model.objects.all(), source)
        reached |= delegate.rows & Q(**{f"{delegate.link}__in": targets.values("pk")})
    return queryset.filter(reached, workspace_id=workspace_id)


def _own_scope(user, workspace_id: int, queryset: QuerySet, action: str) -> QuerySet:
    found = member(user, workspace_id)
    if found is None:
        return queryset.none()
    model = queryset.model
    queryset = queryset.filter(workspace_id=workspace_id)
    codename = _codename(model, action)
    by_role = f"{model._meta.app_label}.{codename}" in role_permissions(found.role)
    if by_role and (not found.limited or found.role in UNLIMITED_ROLES):
        return queryset
    user_grants = get_user_obj_perms_model(model).objects.filter(
        user=user, permission__codename=codename
    )
    group_grants = get_group_obj_perms_model(model).objects.filter(
        group__user=user, permission__codename=codename
    )
    return queryset.filter(
        Q(pk__in=user_grants.values("content_object_id"))
        | Q(pk__in=group_grants.values("content_object_id"))
    )
