"""The one access layer: every view, API endpoint, consumer and task fetches objects through here.

``access_<entity>(user, id, perm)`` returns the object or raises: ``Http404`` when it does not
exist, lies in a workspace the user is not a member of, or is hidden from a limited member (so ids
of other tenants leak nothing); ``PermissionDenied`` when the user may see it but not do ``perm``.

What a member may do with an object is the union of
- their role's permissions (the role group's set, ``studio.roles``), unless the membership is
  limited, and
- the object's django-guardian grants to them or to one of their teams.

Models are looked up by label, and shareable kinds are registered by their apps, so this module
imports no app.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from studio.models import (
    KEY_PREFIX,
    ApiKey,
    FlowAccess,
    KnowledgeAccess,
    Membership,
    Workspace,
    hash_key_secret,
)
from studio.roles import UNLIMITED_ROLES, role_permissions

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


# --- membership -----------------------------------------------------------------------------


def _active(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def membership(user, workspace_id: int | None) -> Membership | None:
    if not _active(user) or workspace_id is None:
        return None
    return Membership.objects.filter(user=user, workspace_id=workspace_id).first()


def user_workspaces(user) -> QuerySet[Workspace]:
    if not _active(user):
        return Workspace.objects.none()
    return Workspace.objects.filter(memberships__user=user).order_by("name")


def current_workspace(request) -> Workspace:
    """The workspace the request works in: the session's choice, else the user's first."""
    workspaces = user_workspaces(request.user)
    chosen = request.session.get("workspace_id")
    workspace = (workspaces.filter(id=chosen).first() if chosen else None) or workspaces.first()
    if workspace is None:
        raise PermissionDenied("You are not a member of any workspace.")
    return workspace


def workspace_perms(user, workspace_id: int) -> frozenset[str]:
    """The ``app_label.codename`` permissions ``user``'s role gives across the workspace."""
    found = membership(user, workspace_id)
    return role_permissions(found.role) if found else frozenset()


def access_workspace(user, workspace_id: int, perm: str) -> Workspace:
    """The workspace if ``user``'s role holds ``perm`` (``"studio.manage_members"``) in it."""
    found = membership(user, workspace_id)
    if found is None:
        raise Http404
    if perm not in role_permissions(found.role):
        raise PermissionDenied
    return found.workspace


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
    and changed by superusers only. ``user`` may be an API key: see ``_key_actions``.
    """
    if isinstance(user, ApiKey):
        return _key_actions(user, obj)
    suffix = f"_{obj._meta.model_name}"
    if getattr(obj, "workspace_id", None) is None:
        if not _active(user) or not user_workspaces(user).exists():
            raise Http404
        if user.is_superuser:
            return frozenset(p.codename.removesuffix(suffix) for p in _model_permissions(type(obj)))
        return frozenset({"view", "use"})
    found = membership(user, obj.workspace_id)
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


def check(user, obj: Model, action: str) -> Model:
    """``obj`` if ``user`` may take ``action`` on it; Http404 if they may not even see it."""
    actions = object_actions(user, obj)
    if action in actions:
        return obj
    if "view" not in actions:
        raise Http404
    raise PermissionDenied


def _fetch(label: str, *related: str, **lookup: Any) -> Model:
    model = apps.get_model(label)
    try:
        return model.objects.select_related(*related).get(**lookup)
    except (model.DoesNotExist, ValidationError, ValueError):
        raise Http404 from None


def scope(user, workspace_id: int, queryset: QuerySet, action: str = "view") -> QuerySet:
    """``queryset`` narrowed in SQL to the workspace's objects ``user`` may take ``action`` on.

    For retrieval and lists: one query, whatever the number of grants.
    """
    if isinstance(user, ApiKey):
        return _key_scope(user, workspace_id, queryset, action)
    found = membership(user, workspace_id)
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


def access_flow(user, workspace: Workspace, slug: str, perm: str):
    """A flow of ``workspace`` by slug; ``perm`` is an action: view, run, change, publish,
    delete, share."""
    return check(user, _fetch("flows.Flow", workspace=workspace, slug=slug), perm)


def access_run(user, run_id: Any, perm: str):
    """A run, checked against its flow: reading a run needs ``view``, starting one ``run``."""
    run = _fetch("flows.Run", "flow", id=run_id)
    check(user, run.flow, perm)
    return run


def access_model(user, model_id: Any, perm: str):
    """A catalog model; ``perm``: view, use, change, delete, share."""
    return check(user, _fetch("catalog.Model", id=model_id), perm)


def access_adapter(user, adapter_id: Any, perm: str):
    """A LoRA adapter, checked against its base model (``perm`` as for the model)."""
    adapter = _fetch("catalog.LoraAdapter", "base", id=adapter_id)
    check(user, adapter.base, perm)
    return adapter


def access_credential(user, credential_id: Any, perm: str):
    """A stored credential; ``perm`` (view, add, delete) is the role's, workspace-wide: secrets
    are not shared object by object."""
    credential = _fetch("catalog.Credential", id=credential_id)
    access_workspace(user, credential.workspace_id, f"catalog.{perm}_credential")
    return credential


def access_route(user, route_id: Any, perm: str):
    """A route; ``perm``: view, use, change, delete, share."""
    return check(user, _fetch("catalog.Route", id=route_id), perm)


def access_prompt(user, prompt_id: Any, perm: str):
    """A library prompt; ``perm``: view, use, change, approve, delete, share."""
    return check(user, _fetch("catalog.Prompt", id=prompt_id), perm)


def access_prompt_version(user, version_id: Any, perm: str):
    """A version of a library prompt, checked against its prompt."""
    version = _fetch("catalog.PromptVersion", "prompt", id=version_id)
    check(user, version.prompt, perm)
    return version


def access_knowledge_base(user, knowledge_base_id: Any, perm: str):
    """A knowledge base; ``perm``: view, use (retrieve), change (its documents too), delete,
    share."""
    return check(user, _fetch("knowledge.KnowledgeBase", id=knowledge_base_id), perm)


def access_document(user, document_id: Any, perm: str):
    """A document, checked against its knowledge base (``perm`` as for the base)."""
    document = _fetch("knowledge.Document", "knowledge_base", id=document_id)
    check(user, document.knowledge_base, perm)
    return document


def access_chunk(user, chunk_id: Any, perm: str):
    """A chunk, checked against its knowledge base (``perm`` as for the base)."""
    chunk = _fetch("knowledge.Chunk", "knowledge_base", "document", id=chunk_id)
    check(user, chunk.knowledge_base, perm)
    return chunk


def access_api_knowledge_base(api_key: ApiKey, slug: str, perm: str):
    """A knowledge base of the key's workspace by slug, if the key may ``perm`` on it (view:
    read documents; use: retrieve; change: add, re-label and delete documents).
    PermissionDenied (with the reason) when the key has no knowledge scope or too low a one;
    Http404 when the base is not there or not among the key's bases."""
    key_kind_check(api_key, "knowledge.KnowledgeBase")
    base = _fetch("knowledge.KnowledgeBase", workspace_id=api_key.workspace_id, slug=slug)
    try:
        return check(api_key, base, perm)
    except PermissionDenied:
        raise PermissionDenied(f"This API key may not {perm} the knowledge base.") from None


def access_document_for_task(document_id: Any):
    """The document an ingestion task is to process, if whoever added it may still change its
    knowledge base (PermissionDenied with the reason otherwise; Http404 if it is gone)."""
    document = _fetch("knowledge.Document", "knowledge_base", "created_by", id=document_id)
    user = document.created_by
    if user is not None and not has_perm(user, document.knowledge_base, "change"):
        raise PermissionDenied("whoever added the document may no longer change this base")
    return document


def access_knowledge_base_for_task(
    knowledge_base_id: Any, *, user_id: int | None, api_key_id: int | None
):
    """The base a queued retrieval reads, if whoever asked may still ``use`` it: the user, or
    a usable API key whose scope reaches it. PermissionDenied (with the reason) or Http404."""
    base = _fetch("knowledge.KnowledgeBase", "embedding_model", "reranker", id=knowledge_base_id)
    if api_key_id is not None:
        _key_check_for_task(api_key_id, base, "use")
        return base
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(id=user_id).first()
    if user is None or not has_perm(user, base, "use"):
        raise PermissionDenied("you may no longer use this knowledge base")
    return base


def access_key(user, key_id: Any, perm: str) -> ApiKey:
    """An API key; ``perm``: view, change (revoke), delete, share."""
    return check(user, _fetch("studio.ApiKey", id=key_id), perm)


def access_object(user, kind: str, object_id: Any, perm: str) -> Model:
    """Any registered shareable kind by id (the sharing pages)."""
    if kind not in KINDS:
        raise Http404
    return check(user, _fetch(KINDS[kind].label, id=object_id), perm)


def access_membership(user, membership_id: Any, perm: str) -> Membership:
    """A membership of a workspace where ``user`` holds ``perm``
    (``"studio.manage_members"``)."""
    found = _fetch("studio.Membership", id=membership_id)
    access_workspace(user, found.workspace_id, perm)
    return found


def access_team(user, team_id: Any, perm: str):
    """A team; seeing it needs membership, ``perm`` (``"studio.change_team"``) the role's."""
    team = _fetch("studio.Team", id=team_id)
    access_workspace(user, team.workspace_id, perm)
    return team


# --- API keys and tasks ---------------------------------------------------------------------

# What each access level of a key allows on each kind: (level field, chosen ids field, actions
# by level). Kinds missing here are out of every key's reach. A flow's ``write`` differs from
# ``run`` in the runs it reaches, not in actions on the flow: see ``access_api_run``.
KEY_KINDS: dict[str, tuple[str, str, dict[str, frozenset[str]]]] = {
    "flows.Flow": (
        "flow_access",
        "flow_ids",
        {
            FlowAccess.RUN: frozenset({"view", "run"}),
            FlowAccess.WRITE: frozenset({"view", "run"}),
        },
    ),
    "knowledge.KnowledgeBase": (
        "knowledge_access",
        "knowledge_base_ids",
        {
            KnowledgeAccess.READ: frozenset({"view", "use"}),
            KnowledgeAccess.WRITE: frozenset({"view", "use", "change"}),
        },
    ),
}
KIND_NOUNS = {"flows.Flow": "flows", "knowledge.KnowledgeBase": "knowledge bases"}


class KeyRefused(Exception):
    """A real key that may not be used now (expired, unconfirmed, its creator gone); the
    message says why, for the 401 answer."""


def authenticate_api_key(authorization: str | None) -> ApiKey | None:
    """The live key named by an ``Authorization: Bearer <key>`` header, or None for no key, a
    wrong or a revoked one. KeyRefused for a key that exists but may not act now."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    key = authorization.removeprefix("Bearer ").strip()
    if not key.startswith(KEY_PREFIX) or "." not in key:
        return None
    prefix, _, secret = key.removeprefix(KEY_PREFIX).partition(".")
    api_key = (
        ApiKey.objects.select_related("workspace", "created_by")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not _constant_time_equal(api_key.secret_hash, hash_key_secret(secret)):
        return None
    reason = key_refusal(api_key)
    if reason is not None:
        raise KeyRefused(reason)
    ApiKey.objects.filter(id=api_key.id).update(last_used_at=timezone.now())
    return api_key


def _constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def key_refusal(api_key: ApiKey) -> str | None:
    """Why ``api_key`` may not act at all now, or None. A key acts for its creator, so it
    stops with them (deactivated, gone, out of the workspace)."""
    if api_key.revoked_at is not None:
        return "This API key was revoked."
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        return f"This API key expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC."
    if api_key.legacy and api_key.legacy_confirmed_at is None:
        return (
            "This API key was made before keys had scopes: an admin must confirm or re-scope "
            "it on the API keys page."
        )
    creator = api_key.created_by
    if creator is None:
        return None if api_key.host_issued else "The member who made this API key is gone."
    if not creator.is_active:
        return "The member who made this API key is deactivated."
    if membership(creator, api_key.workspace_id) is None:
        return "The member who made this API key has left the workspace."
    return None


def _key_grant(api_key: ApiKey, label: str) -> tuple[frozenset[str], list[int] | None]:
    """The actions the key's own scope gives on objects of ``label``, and the chosen ids (None:
    all of the workspace's)."""
    if label not in KEY_KINDS:
        return frozenset(), []
    level_field, ids_field, by_level = KEY_KINDS[label]
    return by_level.get(getattr(api_key, level_field), frozenset()), getattr(api_key, ids_field)


def _key_actions(api_key: ApiKey, obj: Model) -> frozenset[str]:
    """What the key may do on ``obj``: its scope's actions, within what its creator may do now.
    Http404 for another workspace's object."""
    if getattr(obj, "workspace_id", None) != api_key.workspace_id:
        raise Http404
    actions, ids = _key_grant(api_key, obj._meta.label)
    if ids is not None and obj.pk not in ids:
        return frozenset()
    if actions and api_key.created_by_id is not None:
        try:
            actions &= object_actions(api_key.created_by, obj)
        except Http404:
            return frozenset()
    return actions


def _key_scope(api_key: ApiKey, workspace_id: int, queryset: QuerySet, action: str) -> QuerySet:
    if workspace_id != api_key.workspace_id:
        return queryset.none()
    actions, ids = _key_grant(api_key, queryset.model._meta.label)
    if action not in actions:
        return queryset.none()
    queryset = queryset.filter(workspace_id=workspace_id)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    if api_key.created_by_id is not None:
        creator_may = scope(api_key.created_by, workspace_id, queryset.model.objects.all(), action)
        queryset = queryset.filter(pk__in=creator_may.values("pk"))
    return queryset


def key_kind_check(api_key: ApiKey, label: str) -> None:
    """PermissionDenied (with the reason) when the key has no access at all to ``label``'s
    kind: the 403 that says so before any object is named."""
    if not _key_grant(api_key, label)[0]:
        raise PermissionDenied(f"This API key has no access to {KIND_NOUNS.get(label, label)}.")


def access_published_flow(api_key: ApiKey, slug: str):
    """The published flow ``slug`` of the key's workspace if the key may run it; Http404 for a
    flow that is not there, not published or not among the key's flows, PermissionDenied when
    the key has no flow access at all or its creator may no longer run the flow."""
    key_kind_check(api_key, "flows.Flow")
    flow_model = apps.get_model("flows.Flow")
    flow = (
        flow_model.objects.select_related("published_version")
        .filter(workspace_id=api_key.workspace_id, slug=slug, published_version__isnull=False)
        .first()
    )
    if flow is None:
        raise Http404
    try:
        return check(api_key, flow, "run")
    except PermissionDenied:
        raise PermissionDenied("This API key may not run this flow.") from None


def access_api_run(api_key: ApiKey, run_id: Any, perm: str):
    """A run the key may reach: one it started, or with ``write`` on its flow one any API key
    started; never a person's runs (chat, studio). ``perm``: ``view`` to read or follow it,
    ``run`` to answer its human-input nodes. A confirmed legacy key keeps what keys had before
    scopes: every run of its workspace. Http404 for a run out of reach."""
    key_kind_check(api_key, "flows.Flow")
    run = _fetch("flows.Run", "flow", "flow_version", id=run_id)
    if run.workspace_id != api_key.workspace_id:
        raise Http404
    if not api_key.legacy:
        own = run.api_key_id == api_key.id
        shared = api_key.flow_access == FlowAccess.WRITE and run.api_key_id is not None
        if not (own or shared):
            raise Http404
    try:
        check(api_key, run.flow, perm)
    except PermissionDenied:
        raise PermissionDenied(f"This API key may not {perm} this flow.") from None
    return run


def _key_check_for_task(api_key_id: int, obj: Model | None, action: str) -> None:
    """PermissionDenied with the reason unless the key is still usable and may still take
    ``action`` on ``obj`` (when given): a key narrowed, expired or revoked after a request
    stops the work it queued."""
    api_key = ApiKey.objects.select_related("created_by").filter(id=api_key_id).first()
    if api_key is None:
        raise PermissionDenied("the API key is gone")
    reason = key_refusal(api_key)
    if reason is not None:
        raise PermissionDenied(reason)
    if obj is not None and not has_perm(api_key, obj, action):
        noun = obj._meta.verbose_name
        raise PermissionDenied(f"the API key may no longer {action} this {noun}")


def access_run_for_task(run_id: Any):
    """The run a Celery task is to advance, if whoever started it may still run its flow.

    A run started by a user needs that user active with ``run`` on the flow; one started by an
    API key needs the key still usable (``key_refusal``) and, for a top-level run, its scope.
    Raises PermissionDenied with the reason otherwise (the caller fails the run with it),
    Http404 if the run is gone.
    """
    run = _fetch("flows.Run", "flow", "created_by", id=run_id)
    if run.api_key_id is not None:
        # A sub-flow's run is part of its parent's, which the key was allowed to start.
        _key_check_for_task(run.api_key_id, run.flow if run.parent_id is None else None, "run")
        return run
    if run.created_by_id is None:
        return run  # started by the studio itself (seed, maintenance)
    if not has_perm(run.created_by, run.flow, "run"):
        raise PermissionDenied("the user who started the run may no longer run this flow")
    return run
